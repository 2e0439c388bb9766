"""The per-layer arithmetic of book-keeping ghost clipping, for ``nn.Linear`` and ``nn.Conv2d``.

Why a module of its own: :mod:`tunedp.optim.ghost` decides *whether* a model
can be clipped this way and captures each layer's input ``a`` and output
gradient ``g`` from one batched backward; this module holds only what is done
with one layer's ``a`` and ``g`` — the formulas, and how their memory is kept
small — so either can change without the other.

For a layer with T positions (1 for a plain linear layer; the output pixels of
a convolution, whose input is then unfolded into patches of width d), example
i's weight gradient is ``g_iᵀ a_i`` (p × d). Its squared norm comes either from
that per-example gradient, which is then kept and reused for the clipped sum
(one matrix-vector product with the clip factors), or — when keeping it would
take too much memory and it costs less — from two T × T Gram matrices
(``⟨a_i a_iᵀ, g_i g_iᵀ⟩``, the *ghost norm*), the sum then being one ordinary
weight-gradient product with ``g`` scaled by the factors (Bu et al.'s mixed
book-keeping, 2022/2023); where the Gram matrices would cost more, the
per-example gradients are built slice by slice for the norms only and the
sum is that same product. With T = 1 the norm is ``‖g_i‖·‖a_i‖``
(:func:`_route` picks).

Memory: every temporary this module creates (a slice of patches, of
per-example gradients, of Gram matrices) holds at most ``_SLICE_ELEMENTS``
numbers, so the batch is walked in slices of examples. 16 MiB in float32 is
below glibc's 32 MiB ``mmap`` threshold under
:func:`tunedp.optim.keep_freed_memory`: a block that size is served from the
heap and reused step after step, while a larger one is a fresh ``mmap``
whose pages are faulted in again at every step (measured: a 64 MiB
per-example gradient made a 2048-example pass 1.3–1.85× slower).

Nothing here adds noise, updates parameters or checks the model; results
match the vmap path up to floating-point rounding (``tests/unit/optim/test_ghost.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, vjp, vmap
from torch.nn import functional

__all__ = ["LayerGradients", "conv2d_gradients", "fallback_gradients", "linear_gradients"]

_PER_EXAMPLE_BUDGET = 2**24
"""Elements of one layer's per-example gradients that may be kept for the clipped sum (64 MiB in float32)."""

_SLICE_ELEMENTS = 2**22
"""Elements of one temporary: 16 MiB in float32, below glibc's 32 MiB mmap threshold (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class LayerGradients:
    """One layer's part of a chunk: per-example squared norms, and its clipped sum given the factors."""

    squared_norms: Tensor
    weighted_sum: Callable[[Tensor], dict[str, Tensor]]


def _slices(batch: int, per_example: int) -> list[slice]:
    """Consecutive slices of the batch whose temporaries of ``per_example`` numbers each fit ``_SLICE_ELEMENTS``."""
    step = max(1, _SLICE_ELEMENTS // max(1, per_example))
    return [slice(start, min(start + step, batch)) for start in range(0, batch, step)]


def _route(batch: int, positions: int, d: int, p: int) -> str:
    """How a layer's weight norms are computed: ``"outer"``, ``"gram"``, ``"kept"`` or ``"per-example"``.

    * ``"outer"``: T = 1, ``‖g_i a_iᵀ‖ = ‖g_i‖·‖a_i‖``, nothing to build.
    * ``"kept"``: the per-example gradients ``g_iᵀ a_i`` (T·d·p per example)
      fit ``_PER_EXAMPLE_BUDGET`` for the whole chunk: they are built for the
      norms and reused for the clipped sum (a matrix-vector product with the
      factors), the cheapest route.
    * ``"gram"``: beyond the budget, the ghost norm (T²(d + p) per example)
      where it costs less than the per-example gradient (Bu et al.'s mixed
      rule); the sum is then one batched weight-gradient product.
    * ``"per-example"``: beyond the budget where the ghost norm costs more:
      the per-example gradients are built slice by slice for the norms only,
      and the sum is the batched weight-gradient product.
    """
    if positions == 1:
        return "outer"
    if batch * d * p <= _PER_EXAMPLE_BUDGET:
        return "kept"
    return "gram" if positions * (d + p) <= d * p else "per-example"


@dataclass(frozen=True, slots=True)
class _Weight:
    """A layer's weight part: per-example squared norms, and the kept per-example gradients (None: not kept)."""

    squared_norms: Tensor
    kept: list[Tensor] | None

    def weighted(self, factors: Tensor) -> Tensor:
        """Σᵢ cᵢ g_iᵀ a_i (p × d) from the kept slices."""
        assert self.kept is not None
        total: Tensor | None = None
        start = 0
        for part in self.kept:
            term = torch.tensordot(factors[start : start + part.shape[0]], part, dims=1)
            total = term if total is None else total.add_(term)
            start += part.shape[0]
        assert total is not None
        return total


def _weight(batch: int, positions: int, d: int, g: Tensor, inputs_of: Callable[[slice], Tensor]) -> _Weight:
    """Squared norms of ``g_iᵀ a_i`` for ``g`` (b, T, p) and ``a`` = ``inputs_of(rows)`` (rows, T, d), by slices.

    ``inputs_of`` builds each slice of ``a`` when it is needed (a convolution's
    patches), so ``a`` never exists for the whole batch at once.
    """
    p = g.shape[2]
    route = _route(batch, positions, d, p)
    if route == "outer":
        parts = [inputs_of(rows).square().sum((1, 2)) for rows in _slices(batch, d)]
        return _Weight(_cat(parts, g) * g.square().sum((1, 2)), None)
    if route == "gram":
        parts = []
        for rows in _slices(batch, positions * max(d, positions)):
            a, gs = inputs_of(rows), g[rows]
            parts.append((torch.bmm(a, a.mT) * torch.bmm(gs, gs.mT)).sum((1, 2)))
        return _Weight(_cat(parts, g), None)
    kept: list[Tensor] = []
    parts = []
    for rows in _slices(batch, max(p, positions) * d):
        per_example = torch.bmm(g[rows].mT, inputs_of(rows))  # (rows, p, d)
        parts.append(torch.linalg.vector_norm(per_example, dim=(1, 2)).square())
        kept += [per_example] if route == "kept" else []
    return _Weight(_cat(parts, g), kept if route == "kept" else None)


def _cat(parts: list[Tensor], like: Tensor) -> Tensor:
    return torch.cat(parts) if parts else like.new_zeros(0)


def _total(parts: list[Tensor], batch: int, like: Tensor) -> Tensor:
    if not parts:
        return torch.zeros(batch, dtype=like.dtype, device=like.device)
    return parts[0] if len(parts) == 1 else torch.stack(parts).sum(0)


def linear_gradients(module: nn.Linear, names: Mapping[str, str], a: Tensor, g: Tensor) -> LayerGradients:
    """A linear layer on inputs ``a`` (b, ..., d) with output gradients ``g`` (b, ..., p); ``names``: local → full."""
    batch = a.shape[0]
    a = a.reshape(batch, -1, module.in_features)
    g = g.reshape(batch, -1, module.out_features)
    positions = a.shape[1]
    parts: list[Tensor] = []
    weight: _Weight | None = None
    if "weight" in names:
        weight = _weight(batch, positions, a.shape[2], g, lambda rows: a[rows])
        parts.append(weight.squared_norms)
    bias = g.sum(1) if "bias" in names else None  # (b, p): each example's bias gradient
    if bias is not None:
        parts.append(bias.square().sum(1))

    def weighted_sum(factors: Tensor) -> dict[str, Tensor]:
        result = {}
        if weight is not None:
            if weight.kept is not None:
                result[names["weight"]] = weight.weighted(factors)
            elif a.shape[2] < g.shape[2]:  # scale the smaller of the two
                scaled_a = a * factors[:, None, None]
                result[names["weight"]] = g.reshape(-1, g.shape[2]).mT @ scaled_a.reshape(-1, a.shape[2])
            else:
                scaled_g = g * factors[:, None, None]
                result[names["weight"]] = scaled_g.reshape(-1, g.shape[2]).mT @ a.reshape(-1, a.shape[2])
        if bias is not None:
            result[names["bias"]] = factors @ bias
        return result

    return LayerGradients(_total(parts, batch, g), weighted_sum)


def _patches(a: Tensor, module: nn.Conv2d, padding: tuple[int, ...]) -> Tensor:
    """The input patches of each output position, (b, T, d) with d ordered (kernel row, column, channel).

    Built as one strided view of the channels-last input, copied once: on CPU
    this is several times faster than ``functional.unfold`` (im2col) for the
    large kernels of small networks, and channels-last makes the copied runs long.
    """
    if any(padding):
        a = functional.pad(a, (padding[1], padding[1], padding[0], padding[0]))
    a = a.contiguous(memory_format=torch.channels_last)
    batch, channels, height, width = a.shape
    (kh, kw), (sh, sw), (dh, dw) = module.kernel_size, module.stride, module.dilation
    out_h, out_w = (height - dh * (kh - 1) - 1) // sh + 1, (width - dw * (kw - 1) - 1) // sw + 1
    sb, sc, sy, sx = a.stride()
    view = a.as_strided(
        (batch, out_h, out_w, kh, kw, channels), (sb, sy * sh, sx * sw, sy * dh, sx * dw, sc), a.storage_offset()
    )
    return view.reshape(batch, out_h * out_w, kh * kw * channels)


def conv2d_gradients(module: nn.Conv2d, names: Mapping[str, str], a: Tensor, g: Tensor) -> LayerGradients:
    """A 2-D convolution (groups 1, zero padding given as numbers) on ``a`` with output gradients ``g`` (b, p, H, W)."""
    padding = module.padding
    assert not isinstance(padding, str)  # refused when planning
    batch, channels = g.shape[0], g.shape[1]
    kh, kw = module.kernel_size
    parts: list[Tensor] = []
    weight: _Weight | None = None
    if "weight" in names:
        flat = g.reshape(batch, channels, -1).mT  # (b, T, p), a view
        d = kh * kw * a.shape[1]
        weight = _weight(batch, flat.shape[1], d, flat, lambda rows: _patches(a[rows], module, padding))
        parts.append(weight.squared_norms)
    bias = g.sum((2, 3)) if "bias" in names else None  # (b, p)
    if bias is not None:
        parts.append(bias.square().sum(1))

    def weighted_sum(factors: Tensor) -> dict[str, Tensor]:
        result = {}
        if weight is not None:
            if weight.kept is not None:
                summed = weight.weighted(factors)  # (p, kh·kw·c)
                result[names["weight"]] = summed.reshape(channels, kh, kw, -1).permute(0, 3, 1, 2).contiguous()
            else:
                # What torch.nn.grad.conv2d_weight does: the weight half of the convolution's backward.
                result[names["weight"]] = torch.ops.aten.convolution_backward(
                    g * factors[:, None, None, None],
                    a,
                    module.weight,
                    None,
                    module.stride,
                    padding,
                    module.dilation,
                    False,
                    [0, 0],
                    module.groups,
                    (False, True, False),
                )[1]
        if bias is not None:
            result[names["bias"]] = factors @ bias
        return result

    return LayerGradients(_total(parts, batch, g), weighted_sum)


def fallback_gradients(module: nn.Module, names: Mapping[str, str], a: Tensor, g: Tensor) -> LayerGradients:
    """Any other layer: per-example gradients of its own parameters, ``vmap`` of its ``vjp`` on each example.

    Built slice by slice; kept for the clipped sum while all of them fit
    ``_PER_EXAMPLE_BUDGET``, else built again, slice by slice, when the sum is formed.
    """
    params = {local: getattr(module, local).detach() for local in names}

    def one(x: Tensor, gy: Tensor) -> dict[str, Tensor]:
        def forward(p: dict[str, Tensor]) -> Tensor:
            out: Tensor = functional_call(module, p, (x.unsqueeze(0),))
            return out

        pullback = vjp(forward, params)[1]
        grads: dict[str, Tensor] = pullback(gy.unsqueeze(0))[0]
        return grads

    def per_example(rows: slice) -> dict[str, Tensor]:
        with torch.enable_grad():
            result: dict[str, Tensor] = vmap(one, randomness="error")(a[rows], g[rows])
        return result

    batch = a.shape[0]
    size = sum(param.numel() for param in params.values())
    rows_list = _slices(batch, size)
    keep = batch * size <= _PER_EXAMPLE_BUDGET
    kept, parts = [], []
    for rows in rows_list:
        grads = per_example(rows)
        parts.append(_total([grad.flatten(1).square().sum(1) for grad in grads.values()], rows.stop - rows.start, g))
        kept += [grads] if keep else []

    def weighted_sum(factors: Tensor) -> dict[str, Tensor]:
        result: dict[str, Tensor] = {}
        for index, rows in enumerate(rows_list):
            grads = kept[index] if keep else per_example(rows)
            for local, grad in grads.items():
                term = torch.tensordot(factors[rows].to(grad.dtype), grad, dims=1)
                result[names[local]] = term if names[local] not in result else result[names[local]].add_(term)
        return result

    return LayerGradients(_cat(parts, g), weighted_sum)
