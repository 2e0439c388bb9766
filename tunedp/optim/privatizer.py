"""The privatization component: per-example gradients → hook → flat clip → sum → noise → ÷ qN.

Two ways to get the clipped sum, with the same result up to rounding:
``"vmap"`` materialises each example's gradient with ``torch.func``;
``"ghost"`` (:mod:`tunedp.optim.ghost`) gets each example's norm and the
clipped sum from one batched backward of linear and convolution layers
(book-keeping ghost clipping), other layers per layer through ``torch.func``.
``"auto"`` (the default) takes ghost where the model allows it and the vmap
path otherwise; a step with a pre-clip hook always takes the vmap path,
because the hook needs each example's whole gradient.

A model whose training forward mixes examples (a statistic over the batch)
or keeps statistics of them is refused on both paths, on the first batch and
before anything of it is summed (:func:`~tunedp.optim.independence.check_batch_independence`).

This is the whole DP-relevant computation of one step; update rules only
post-process its output. Each example contributes at most ``clip_norm`` (in L2)
to the sum, Gaussian noise of std ``noise_multiplier · clip_norm`` is added to
the sum, and the result is divided by the *expected* batch size qN — never by
the realised Poisson batch size, which would itself leak the batch size and
break the accounting. An empty batch is fine: its gradient is pure noise / qN.

The optional ``hook`` sees each example's gradient *before* clipping (DP²
preconditions there); whatever it returns is clipped, so no hook can raise the
sensitivity. This module never updates parameters and knows nothing of
accounting, Ray or MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from tunedp.optim.clipping import clip_factors, clipped_sum, per_example_norms
from tunedp.optim.ghost import GhostClipper, GhostUnsupported
from tunedp.optim.independence import check_batch_independence, check_model
from tunedp.optim.noise import gaussian_noise_like
from tunedp.optim.per_sample import LossFn, _chunks, _PerExample, trainable_parameters

__all__ = ["CLIPPING_METHODS", "DEFAULT_CHUNK_SIZES", "PerExampleHook", "Privatizer"]

CLIPPING_METHODS: tuple[str, ...] = ("auto", "ghost", "vmap")
"""How per-example clipping is computed (see the module docstring); all give the same sum."""

DEFAULT_CHUNK_SIZES: dict[str, int] = {"vmap": 256, "ghost": 2560}
"""Most examples per pass when ``chunk_size`` is not given, by method; a batch runs in equal passes.

Measured (benchmarks/README.md): the vmap path is fastest at 256. The ghost
path bounds its own temporaries (per-layer slices, :mod:`tunedp.optim.ghost_layers`),
so a pass costs the activations of the batched forward, and every pass costs
hundreds of operations (with two threads, as many parallel regions): one pass
for a whole Poisson batch of expected size 2048 (2560 is more than 10 standard
deviations above it) was 0.9–1.5× non-private against 1.7–2.5× with passes of
512 (issue 28, two threads, loaded machine). Not more: an activation above
32 MiB (ScatterNet features, 15.9 kB per example, past ~2100 rows) is a fresh
``mmap`` faulted in at every pass even under ``keep_freed_memory()``; passes
of 4096 made the ScatterNet linear step at batch 8192 1.8× slower than passes
of 2048. The price is memory: peak RSS at batch 2048 on the reference CNN is
606 MiB, against 488 for the non-private step, 515 for the vmap path and 455
with passes of 512 (``chunk_size=512`` where memory matters more).
"""

PerExampleHook = Callable[[list[Tensor]], list[Tensor]]
"""Transforms one chunk of per-example gradients (``(chunk, *param.shape)`` per parameter) before clipping."""


class Privatizer:
    """Turns a Poisson batch into one privatized gradient per trainable parameter.

    The parameter tensors are the model's own (``detach()`` shares storage), so an
    update rule that changes them in place trains the user's model.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        expected_batch_size: float,
        chunk_size: int | None = None,
        generator: torch.Generator | None = None,
        clipping: str = "auto",
    ) -> None:
        check_model(model)
        if clipping not in CLIPPING_METHODS:
            raise ValueError(f"Expected clipping={clipping!r} to be one of {', '.join(CLIPPING_METHODS)}")
        if not (math.isfinite(expected_batch_size) and expected_batch_size > 0):
            raise ValueError(f"Expected expected_batch_size={expected_batch_size} > 0")
        if chunk_size is not None and (
            isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
        ):
            raise ValueError(f"Expected chunk_size={chunk_size!r} to be an integer >= 1")
        self.model = model
        self.expected_batch_size = float(expected_batch_size)
        self._chunk_size = chunk_size
        self.generator = generator
        self._params = {name: param.detach() for name, param in trainable_parameters(model).items()}
        if not self._params:
            raise ValueError("model has no trainable parameters (all have requires_grad=False)")
        self.clipping = clipping
        self._examples_checked = False
        self._ghost: GhostClipper | None = None
        if clipping != "vmap":
            try:
                self._ghost = GhostClipper(model, self.names)
            except GhostUnsupported as error:
                self._refuse_ghost(error)

    def _refuse_ghost(self, error: GhostUnsupported) -> None:
        """``auto`` falls back to the vmap path for good; ``ghost`` refuses with the reason."""
        if self.clipping == "ghost":
            raise ValueError(
                f"clipping='ghost' cannot run this model: {error}; use clipping='auto' or 'vmap'"
            ) from None
        self._ghost = None

    def _check_examples(self, inputs: Tensor) -> None:
        """Once, on the first batch of 2 or more: refuse a model that mixes examples in training mode.

        Both paths need it: the ghost path's batched backward would sum
        gradients that depend on other examples, and the vmap path would train
        a batch-of-one function that is not the model (and a model that keeps
        statistics of the data would release them). It runs before anything
        of the batch is summed, so the pre-flight's synthetic step refuses such
        a model before a search is charged. The ghost clipper's probe is the
        same, with its layers' inputs compared as well; a layer problem there
        only means the vmap path (``auto``) or a refusal (``ghost``).
        """
        if self._examples_checked:
            return
        if self._ghost is None:
            self._examples_checked = check_batch_independence(self.model, inputs) is not None
            return
        try:
            self._examples_checked = self._ghost.check_independence(inputs)
        except GhostUnsupported as error:
            self._examples_checked = True  # the probe refuses mixing before it judges the layers
            self._refuse_ghost(error)

    def chunk_size(self, *, hooked: bool = False) -> int:
        """Examples per pass: the given ``chunk_size``, else the default of the method a step uses."""
        if self._chunk_size is not None:
            return self._chunk_size
        return DEFAULT_CHUNK_SIZES["vmap" if hooked else self.method]

    @property
    def method(self) -> str:
        """The method hook-free steps use now: ``"ghost"`` or ``"vmap"`` (``auto`` resolved)."""
        return "vmap" if self._ghost is None else "ghost"

    @property
    def names(self) -> list[str]:
        """Names of the trainable parameters, in the order of every gradient list."""
        return list(self._params)

    @property
    def parameters(self) -> list[Tensor]:
        """The trainable parameters (sharing storage with the model), in gradient order."""
        return list(self._params.values())

    def clipped_sum(
        self,
        inputs: Tensor,
        targets: Tensor,
        loss_fn: LossFn,
        *,
        clip_norm: float,
        hook: PerExampleHook | None = None,
    ) -> list[Tensor]:
        """Σᵢ clip(hook(∇ℓᵢ)) over the batch, chunk by chunk; no noise (the sensitivity-C part)."""
        if not (math.isfinite(clip_norm) and clip_norm > 0):
            raise ValueError(f"Expected clip_norm={clip_norm} > 0")
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"inputs hold {inputs.shape[0]} examples but targets {targets.shape[0]}; they must match")
        total = [torch.zeros_like(param) for param in self._params.values()]
        if inputs.shape[0] == 0:
            return total
        self._check_examples(inputs)
        function = _PerExample(self.model, loss_fn)
        for rows in _chunks(inputs.shape[0], self.chunk_size(hooked=hook is not None)):
            if hook is None and self._ghost is not None:
                try:
                    self._ghost_chunk(inputs[rows], targets[rows], loss_fn, clip_norm, total)
                    continue
                except GhostUnsupported as error:
                    self._refuse_ghost(error)  # nothing of this chunk was added: redo it below
            gradients = function(self._params, inputs[rows], targets[rows])
            if hook is not None:
                gradients = hook(gradients)
            for accumulated, part in zip(total, clipped_sum(gradients, clip_norm), strict=True):
                accumulated.add_(part)
        return total

    def _ghost_chunk(
        self, inputs: Tensor, targets: Tensor, loss_fn: LossFn, clip_norm: float, total: list[Tensor]
    ) -> None:
        """Adds Σᵢ clip(∇ℓᵢ) of one chunk to ``total`` by book-keeping: one backward, no second pass."""
        assert self._ghost is not None
        layers = self._ghost.layers(inputs, targets, loss_fn)
        if not layers:  # no layer with parameters was used: every example's gradient is zero
            return
        with torch.no_grad():
            squared = torch.stack([layer.squared_norms for layer in layers]).sum(0)
            factors = clip_factors(squared.sqrt(), clip_norm)
            index = {name: position for position, name in enumerate(self._params)}
            for layer in layers:
                for name, part in layer.weighted_sum(factors).items():
                    total[index[name]].add_(part)

    def per_example_norms(self, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> Tensor:
        """Each example's flat gradient norm by the current method (tests and diagnostics; no hook)."""
        self._check_examples(inputs)
        if self._ghost is not None:
            try:
                return self._ghost.norms(inputs, targets, loss_fn)
            except GhostUnsupported as error:
                self._refuse_ghost(error)
        gradients = _PerExample(self.model, loss_fn)(self._params, inputs, targets)
        return per_example_norms(gradients)

    def privatize(
        self,
        inputs: Tensor,
        targets: Tensor,
        loss_fn: LossFn,
        *,
        clip_norm: float,
        noise_multiplier: float,
        hook: PerExampleHook | None = None,
    ) -> list[Tensor]:
        """(Σᵢ clip(hook(∇ℓᵢ)) + N(0, (σC)² I)) / qN, one tensor per trainable parameter."""
        if not (math.isfinite(noise_multiplier) and noise_multiplier >= 0):
            raise ValueError(f"Expected noise_multiplier={noise_multiplier} >= 0")
        with torch.no_grad():
            summed = self.clipped_sum(inputs, targets, loss_fn, clip_norm=clip_norm, hook=hook)
            std = noise_multiplier * clip_norm
            return [
                (part + gaussian_noise_like(part, std, self.generator)).div_(self.expected_batch_size)
                for part in summed
            ]

    @staticmethod
    def flatten(gradients: Sequence[Tensor]) -> Tensor:
        """All parameters' gradients as one vector (for tests and diagnostics)."""
        return torch.cat([g.reshape(-1) for g in gradients])
