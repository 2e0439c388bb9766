"""Flat per-example clipping: each example's whole gradient (all parameters together) to norm C.

Flat clipping bounds the L2 norm of one example's contribution to the summed
gradient by ``clip_norm``, which is exactly the sensitivity the Gaussian noise
is calibrated to. The norm is taken over the concatenation of all parameters,
computed per parameter and combined, so no concatenated copy is ever built.
This module never adds noise and never updates parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["clip_factors", "clipped_sum", "per_example_norms"]

# Guards 0/0 for an all-zero gradient; its factor is then 1 and it contributes nothing anyway.
_TINY = 1e-12


def per_example_norms(gradients: Sequence[Tensor]) -> Tensor:
    """L2 norm of each example's flattened gradient (all parameters): shape ``(batch,)``."""
    per_param = [torch.linalg.vector_norm(g.flatten(1), dim=1) for g in gradients]
    norms: Tensor = torch.linalg.vector_norm(torch.stack(per_param, dim=1), dim=1)
    return norms


def clip_factors(norms: Tensor, clip_norm: float) -> Tensor:
    """min(1, C/‖g‖) per example: the scale that brings each gradient's norm to at most C."""
    if not clip_norm > 0:
        raise ValueError(f"Expected clip_norm={clip_norm} > 0")
    return (clip_norm / norms.clamp_min(_TINY)).clamp_max(1.0)


def clipped_sum(gradients: Sequence[Tensor], clip_norm: float) -> list[Tensor]:
    """Σᵢ clip(gᵢ): per parameter, one matrix-vector product of the factors with the gradients."""
    factors = clip_factors(per_example_norms(gradients), clip_norm)
    return [torch.tensordot(factors.to(g.dtype), g, dims=1) for g in gradients]
