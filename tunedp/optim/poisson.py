"""Poisson-sampled batches: each step includes each example independently with probability q.

This is the sampling the accountant assumes (``PoissonSampledDpEvent``):
batch sizes vary from step to step and empty batches happen — they must be
trained on, not skipped, or the accounting no longer describes what ran.
One step's batch is ONE draw of N uniforms compared with q
(:func:`poisson_indices`, sorted row numbers) and ONE ``index_select`` per
tensor; the dataset is never copied or shuffled as a whole, and no Python
runs per row. :class:`PoissonSampler` (the trial loop's) gathers into buffers
reused from step to step and reads rows split over several tensors (training
and validation rows) without concatenating them; :func:`poisson_batches`
returns fresh tensors that the caller may keep. Both draw the same batches
from the same generator. This module never touches gradients or noise.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

__all__ = ["PoissonSampler", "poisson_batches", "poisson_indices"]


def _check_rate(sampling_rate: float) -> None:
    if isinstance(sampling_rate, bool) or not (isinstance(sampling_rate, numbers.Real) and 0 < sampling_rate <= 1):
        raise ValueError(f"Expected sampling_rate={sampling_rate!r} in (0, 1]")


#: torch.rand's float32 draws are multiples of this (24 random bits): P(draw < t) = t for t on the grid.
DRAW_RESOLUTION = 2.0**-24


def inclusion_threshold(sampling_rate: float) -> float:
    """The largest multiple of :data:`DRAW_RESOLUTION` not above ``sampling_rate``: the rate rows are drawn at.

    It is exact in float32 (k·2⁻²⁴ with k ≤ 2²⁴), so the comparison in
    :func:`poisson_indices` loses nothing to rounding; a rate of 1 stays 1.
    """
    return math.floor(sampling_rate / DRAW_RESOLUTION) * DRAW_RESOLUTION


def poisson_indices(dataset_size: int, sampling_rate: float, *, generator: torch.Generator) -> Tensor:
    """Sorted int64 indices of one Poisson batch: each of ``dataset_size`` examples in w.p. q.

    Row i is in when its own uniform draw (float32, a multiple of 2⁻²⁴) is
    below :func:`inclusion_threshold` — q rounded *down* to that grid — so a
    row is drawn with probability exactly that threshold, never above the q
    the accountant charged for (ε grows with q). Compared with q itself, the
    float32 draw would include a row with probability up to 2⁻²⁴ above q.
    """
    _check_rate(sampling_rate)
    if dataset_size < 0:
        raise ValueError(f"Expected dataset_size={dataset_size} >= 0")
    draws = torch.rand(dataset_size, generator=generator, device=generator.device)
    included = draws < inclusion_threshold(sampling_rate)
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


class PoissonSampler:
    """One Poisson batch per :meth:`draw`, gathered into buffers that are reused from step to step.

    ``columns`` holds, per batch tensor (inputs, targets...), the tensors whose
    rows make up the N examples in order: one tensor, or several whose rows
    follow one another (the training rows, then the validation rows) — read
    where they are, never concatenated, so a memory-mapped feature table is
    not copied. Every column must hold the same N rows; the blocks of a column
    must share a dtype and a device.

    Each draw is :func:`poisson_indices` (the same batches as
    :func:`poisson_batches` from the same generator) and one ``index_select``
    per block into the first rows of a preallocated contiguous buffer. The
    tensors returned are views of those buffers: valid until the next draw,
    which overwrites them — a training loop that finishes each step before
    drawing the next may use them as they are; anything kept must be cloned.
    A buffer holds qN plus six standard deviations of the batch size and grows
    (rarely) when a batch is larger.
    """

    def __init__(
        self,
        columns: Sequence[Tensor | Sequence[Tensor]],
        *,
        sampling_rate: float,
        generator: torch.Generator,
    ) -> None:
        _check_rate(sampling_rate)
        if not columns:
            raise ValueError("Expected at least one column to sample from")
        self._columns = [(column,) if isinstance(column, Tensor) else tuple(column) for column in columns]
        sizes = [sum(block.shape[0] for block in blocks) for blocks in self._columns]
        for index, blocks in enumerate(self._columns):
            if not blocks:
                raise ValueError(f"columns[{index}] holds no tensor")
            if sizes[index] != sizes[0]:
                raise ValueError(
                    f"columns[{index}] holds {sizes[index]} examples but columns[0] {sizes[0]}; they must match"
                )
            for block in blocks[1:]:
                if (
                    block.shape[1:] != blocks[0].shape[1:]
                    or block.dtype != blocks[0].dtype
                    or block.device != blocks[0].device
                ):
                    raise ValueError(f"columns[{index}]: its tensors differ in row shape, dtype or device")
        self.dataset_size = sizes[0]
        self.sampling_rate = float(sampling_rate)
        self.generator = generator
        expected = self.dataset_size * self.sampling_rate
        self._capacity = min(self.dataset_size, math.ceil(expected + 6 * math.sqrt(expected) + 16))
        self._buffers: list[Tensor] = []
        # Row number where each block starts, per column, for splitting the sorted indices.
        self._starts = [
            torch.tensor([0, *itertools.accumulate(b.shape[0] for b in blocks)]) for blocks in self._columns
        ]

    def _grow(self, size: int) -> None:
        if self._buffers and size <= self._capacity:
            return
        if self._buffers:  # a batch above qN + 6 standard deviations: grow by a quarter at least
            self._capacity = min(self.dataset_size, math.ceil(1.25 * self._capacity))
        self._capacity = max(size, self._capacity)
        self._buffers = [
            torch.empty((self._capacity, *blocks[0].shape[1:]), dtype=blocks[0].dtype, device=blocks[0].device)
            for blocks in self._columns
        ]

    def draw(self) -> tuple[Tensor, ...]:
        """The next batch, one tensor per column (views of the reused buffers; see the class docstring)."""
        rows = poisson_indices(self.dataset_size, self.sampling_rate, generator=self.generator)
        size = int(rows.shape[0])
        self._grow(size)
        batch = []
        for blocks, starts, buffer in zip(self._columns, self._starts, self._buffers, strict=True):
            out = buffer[:size]
            if len(blocks) == 1:
                torch.index_select(blocks[0], 0, rows.to(blocks[0].device), out=out)
            else:
                # Sorted rows: each block's share is a contiguous run of them, in block order.
                bounds = torch.searchsorted(rows, starts).tolist()
                offsets = starts.tolist()[:-1]
                for block, offset, (low, high) in zip(blocks, offsets, itertools.pairwise(bounds), strict=True):
                    if high > low:
                        local = (rows[low:high] - offset).to(block.device)
                        torch.index_select(block, 0, local, out=out[low:high])
            batch.append(out)
        return tuple(batch)
