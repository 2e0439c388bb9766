"""Book-keeping ghost clipping: per-example norms and the clipped sum from ONE batched backward.

The vmap path (:mod:`tunedp.optim.per_sample`) materialises every example's
whole gradient. For a linear or convolution layer that is wasteful: example
i's weight gradient is ``Σ_t g_it a_itᵀ`` (``a`` the layer's input, unfolded
into T positions of width d for a convolution; ``g`` the gradient of the
layer's output, width p), so from the stored ``a`` and ``g`` of one ordinary
batched backward we can get

* its squared norm either as a *ghost norm* ``⟨a_i a_iᵀ, g_i g_iᵀ⟩`` (two T×T
  Gram matrices; Goodfellow 2015, Li et al. 2022) or from the per-example
  gradient ``g_iᵀ a_i`` (T·d·p), whichever is cheaper for that layer — Bu et
  al.'s *mixed* ghost clipping (2022);
* after the clip factors ``c_i = min(1, C/‖∇ℓ_i‖)`` are known, the clipped sum
  ``Σ_i c_i g_iᵀ a_i`` as ONE ordinary weight-gradient product of the stored
  tensors with ``g`` scaled by ``c`` — Bu et al.'s *book-keeping* (ICML 2023),
  which saves the second backward pass of plain ghost clipping — or, where the
  per-example gradients were built for the norm, one matrix-vector product
  with them. That arithmetic, and how its memory is kept in small slices, is
  :mod:`tunedp.optim.ghost_layers`; this module captures ``a`` and ``g`` and
  checks that the model allows it.

Any other module that owns trainable parameters (LayerNorm, Embedding, a
custom layer...) gets its per-example parameter gradients from its stored
input and output gradient with ``torch.func`` (``vmap`` of the module's own
``vjp``), so the method is chosen per layer and every parameter is covered.
The flat norm over all parameters, the factors and the sum are exactly those
of the vmap path, up to floating-point rounding.

Why this is only correct under conditions, which are checked: the batched
forward must treat examples independently in training mode, as it trains (a
model that mixes them is refused on every path:
:func:`~tunedp.optim.independence.check_batch_independence` changes one example
of a few from the first batch and compares the others, and compares them with
one example at a time), row i of every layer's input must be example i's (the
same probe, layer by layer), every layer must be called once
per forward with one tensor in and one tensor out, and no parameter may be
shared between modules. When a check fails :class:`GhostUnsupported` says why,
and the privatizer either falls back to the vmap path (``clipping="auto"``) or
refuses (``clipping="ghost"``). This module never adds noise or updates
parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import vmap

from tunedp.optim.ghost_layers import LayerGradients, conv2d_gradients, fallback_gradients, linear_gradients
from tunedp.optim.independence import check_batch_independence
from tunedp.optim.per_sample import LossFn
from tunedp.workloads.metrics import cross_entropy_per_example

__all__ = ["GhostClipper", "GhostUnsupported", "LayerGradients", "summed_loss"]


def summed_loss(loss_fn: LossFn, outputs: Tensor, targets: Tensor) -> Tensor:
    """Σᵢ ℓ(outputᵢ, targetᵢ), each example's loss as the vmap path computes it (a batch of one).

    A user's loss may reduce over its batch (a mean, a normalisation), so in general it is
    called on one example at a time through ``vmap``, exactly as the vmap path calls it. The
    workloads' per-example cross entropy (``reduction="none"``, what the trial loop passes)
    acts row by row, so for it one batched call gives the same sum without vmap's per-example
    calls (profile: ≈ 1 ms against 0.1 ms of a 28 ms CNN step at batch 256, issue 28; too
    small for the interleaved benchmark to resolve). Torch's ``cross_entropy`` with its mean
    is not taken this way: on a batch of one its ignored-index target gives 0/0, which a
    batched sum would not reproduce.
    """
    if loss_fn is cross_entropy_per_example:
        return loss_fn(outputs, targets).sum()

    def example_loss(output: Tensor, target: Tensor) -> Tensor:
        return loss_fn(output.unsqueeze(0), target.unsqueeze(0)).sum()

    total: Tensor = vmap(example_loss)(outputs, targets).sum()
    return total


class GhostUnsupported(ValueError):
    """The model breaks a condition of the ghost path; the message says which (one line)."""


@dataclass(slots=True)
class _Layer:
    """A module that owns trainable parameters: ``names`` maps its local parameter names to full ones."""

    module: nn.Module
    names: dict[str, str]
    inputs: Tensor | None = None
    output: Tensor | None = None
    input_version: int = 0
    output_version: int = 0
    calls: int = 0
    handles: list[Any] = field(default_factory=list)


def _plain(module: nn.Module, kind: type[nn.Module]) -> bool:
    """Exactly ``kind``'s forward (a subclass that overrides ``forward`` is a custom layer)."""
    return isinstance(module, kind) and type(module).forward is kind.forward


class GhostClipper:
    """Per-example norms and clipped sums of ``model``'s trainable parameters by book-keeping.

    Construction plans the layers and raises :class:`GhostUnsupported` for a
    model it cannot handle; :meth:`layers` then runs one chunk.
    """

    def __init__(self, model: nn.Module, parameter_names: list[str]) -> None:
        self.model = model
        self._layers: list[_Layer] = []
        self._independence_checked = False
        self._layer_problem: str | None = None
        self._copy_outputs = False
        owners: dict[int, str] = {}
        for module_name, module in model.named_modules(remove_duplicate=False):
            names = {}
            for local, param in module.named_parameters(recurse=False):
                full = f"{module_name}.{local}" if module_name else local
                if id(param) in owners and owners[id(param)] != full:
                    raise GhostUnsupported(f"parameter {full} is shared with {owners[id(param)]}")
                owners[id(param)] = full
                if param.requires_grad:
                    names[local] = full
            if names and all(layer.module is not module for layer in self._layers):
                self._layers.append(_Layer(module=module, names=names))
        covered = sorted(name for layer in self._layers for name in layer.names.values())
        if covered != sorted(parameter_names):
            raise GhostUnsupported("the model's modules do not own its trainable parameters one to one")
        self.ghost_layers = [layer for layer in self._layers if self._supported(layer.module)]
        if not self.ghost_layers:
            raise GhostUnsupported("the model has no nn.Linear or nn.Conv2d layer with trainable parameters")

    @staticmethod
    def _supported(module: nn.Module) -> bool:
        if _plain(module, nn.Linear):
            return True
        return (
            _plain(module, nn.Conv2d)
            and isinstance(module, nn.Conv2d)
            and module.groups == 1
            and module.padding_mode == "zeros"
            and not isinstance(module.padding, str)
        )

    def check_independence(self, inputs: Tensor) -> bool:
        """Refuse a model whose batched forward mixes or reorders examples (probed on up to 4 of ``inputs``).

        :func:`~tunedp.optim.independence.check_batch_independence` runs the
        model as it trains (training mode, dropout on under a fixed seed) and
        raises :class:`~tunedp.optim.independence.BatchMixingError` for a model
        whose examples affect one another's outputs or that keeps statistics
        of them: no clipping path can train that one. Beyond that, row i of
        every layer's input must be example i's alone (the per-layer
        book-keeping relies on it), else :class:`GhostUnsupported`. Runs once;
        returns whether it ran (a batch of fewer than 2 examples is not
        enough). The model is left as it was.
        """
        if self._independence_checked:
            if self._layer_problem is not None:
                raise GhostUnsupported(self._layer_problem)
            return True
        probe = check_batch_independence(self.model, inputs, watch=[layer.module for layer in self._layers])
        if probe is None:
            return False
        self._independence_checked = True
        if probe.layer_problems:
            self._layer_problem = probe.layer_problems[0]
            raise GhostUnsupported(self._layer_problem)
        return True

    def _hook(self, layer: _Layer) -> Callable[..., Tensor | None]:
        def capture(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Tensor | None:
            del module
            layer.calls += 1
            if layer.calls > 1:
                raise GhostUnsupported(f"a layer ({', '.join(layer.names.values())}) is called twice per forward")
            if kwargs or len(args) != 1 or not isinstance(args[0], Tensor) or not isinstance(output, Tensor):
                raise GhostUnsupported(
                    f"a layer ({', '.join(layer.names.values())}) does not map one tensor to one tensor"
                )
            layer.inputs, layer.input_version = args[0], args[0]._version
            layer.output, layer.output_version = output, output._version
            # Once an in-place op after a layer was seen, the model continues with a copy of each output,
            # so what is kept (and differentiated against) is the layer's own output.
            return output.clone() if self._copy_outputs else None

        return capture

    def _backward(
        self, inputs: Tensor, targets: Tensor, loss_fn: LossFn
    ) -> tuple[list[_Layer], tuple[Tensor | None, ...]] | None:
        """Forward with capture hooks, then ∂(Σᵢ ℓᵢ)/∂(each layer's output); None: run it again."""
        for layer in self._layers:
            layer.calls, layer.inputs, layer.output = 0, None, None
            layer.handles.append(layer.module.register_forward_hook(self._hook(layer), with_kwargs=True))
        try:
            with torch.enable_grad():
                outputs = self.model(inputs)
                if not isinstance(outputs, Tensor):
                    raise GhostUnsupported("the model's output is not one tensor")
                if any(
                    layer.output is not None and layer.output._version != layer.output_version for layer in self._layers
                ):
                    if self._copy_outputs:
                        raise GhostUnsupported("a layer's output is still modified in place after copying it")
                    self._copy_outputs = True  # the graph holds the modified tensors: run again with copies
                    return None

                total = summed_loss(loss_fn, outputs, targets)
                called = [layer for layer in self._layers if layer.output is not None]
                captured = [layer.output for layer in called if layer.output is not None]
                return called, (torch.autograd.grad(total, captured, allow_unused=True) if captured else ())
        finally:
            for layer in self._layers:
                for handle in layer.handles:
                    handle.remove()
                layer.handles.clear()

    def layers(self, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> list[LayerGradients]:
        """One batched forward and backward of ``inputs``; every layer's squared norms and weighted sum."""
        self.check_independence(inputs)
        done = self._backward(inputs, targets, loss_fn)
        if done is None:
            done = self._backward(inputs, targets, loss_fn)
        assert done is not None
        called, grads = done
        result = []
        with torch.no_grad():
            for layer, grad in zip(called, grads, strict=True):
                assert layer.inputs is not None and layer.output is not None
                if layer.inputs._version != layer.input_version:
                    raise GhostUnsupported(
                        f"a layer's input ({', '.join(layer.names.values())}) is modified in place after the layer"
                    )
                if layer.inputs.shape[0] != inputs.shape[0] or layer.output.shape[0] != inputs.shape[0]:
                    raise GhostUnsupported(
                        f"a layer ({', '.join(layer.names.values())}) does not keep the batch as its first dimension"
                    )
                g = torch.zeros_like(layer.output) if grad is None else grad
                result.append(self._layer_gradients(layer, layer.inputs.detach(), g))
                layer.inputs, layer.output = None, None
        return result

    def _layer_gradients(self, layer: _Layer, a: Tensor, g: Tensor) -> LayerGradients:
        if self._supported(layer.module):
            if isinstance(layer.module, nn.Linear):
                return linear_gradients(layer.module, layer.names, a, g)
            assert isinstance(layer.module, nn.Conv2d)
            return conv2d_gradients(layer.module, layer.names, a, g)
        return fallback_gradients(layer.module, layer.names, a, g)

    def norms(self, inputs: Tensor, targets: Tensor, loss_fn: LossFn) -> Tensor:
        """Each example's flat gradient norm over all trainable parameters (for tests and diagnostics)."""
        parts = self.layers(inputs, targets, loss_fn)
        return torch.stack([part.squared_norms for part in parts]).sum(0).sqrt()
