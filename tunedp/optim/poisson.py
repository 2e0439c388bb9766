"""Poisson-sampled batches: each step includes each example independently with probability q.

This is the sampling the accountant assumes (``PoissonSampledDpEvent``):
batch sizes vary from step to step and empty batches happen — they must be
trained on, not skipped, or the accounting no longer describes what ran.
Batches are gathered with ``index_select`` from the caller's tensors, so the
dataset is never copied or shuffled as a whole. This module never touches
gradients or noise.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

__all__ = ["poisson_batches", "poisson_indices"]


def _check_rate(sampling_rate: float) -> None:
    if isinstance(sampling_rate, bool) or not (isinstance(sampling_rate, numbers.Real) and 0 < sampling_rate <= 1):
        raise ValueError(f"Expected sampling_rate={sampling_rate!r} in (0, 1]")


def poisson_indices(dataset_size: int, sampling_rate: float, *, generator: torch.Generator) -> Tensor:
    """Sorted int64 indices of one Poisson batch: each of ``dataset_size`` examples in w.p. q."""
    _check_rate(sampling_rate)
    if dataset_size < 0:
        raise ValueError(f"Expected dataset_size={dataset_size} >= 0")
    included = torch.rand(dataset_size, generator=generator, device=generator.device) < sampling_rate
    return included.nonzero().flatten()


def poisson_batches(
    tensors: Sequence[Tensor], *, sampling_rate: float, steps: int, generator: torch.Generator
) -> Iterator[tuple[Tensor, ...]]:
    """``steps`` Poisson batches, each a tuple with one row selection per tensor (rows = examples).

    All tensors must hold the same number of examples (their first dimension).
    The sampling is driven by ``generator`` alone, so a seeded generator gives
    reproducible batches.
    """
    _check_rate(sampling_rate)
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
        raise ValueError(f"Expected steps={steps!r} to be an integer >= 0")
    if not tensors:
        raise ValueError("Expected at least one tensor to sample from")
    size = tensors[0].shape[0]
    for index, tensor in enumerate(tensors):
        if tensor.shape[0] != size:
            raise ValueError(
                f"tensors[{index}] holds {tensor.shape[0]} examples but tensors[0] {size}; they must match"
            )
    for _ in range(steps):
        rows = poisson_indices(size, sampling_rate, generator=generator)
        yield tuple(tensor.index_select(0, rows.to(tensor.device)) for tensor in tensors)
