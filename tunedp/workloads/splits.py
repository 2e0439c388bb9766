"""Fixed splits: row indices that depend on the row count and a seed, never on the rows."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["carve", "fixed_permutation"]


def fixed_permutation(n: int, seed: int) -> npt.NDArray[np.int64]:
    """A permutation of ``range(n)`` that depends on ``n`` and ``seed`` only (never on the data)."""
    return np.random.default_rng(seed).permutation(n).astype(np.int64)


def carve(sizes: dict[str, int], seed: int) -> dict[str, npt.NDArray[np.int64]]:
    """Row indices of each named split: consecutive blocks of one fixed-seed permutation, each sorted.

    The rows a file holds must number exactly ``sum(sizes.values())`` (see
    :func:`tunedp.workloads.contract.require_rows`), so the split is a
    function of the declared sizes and the seed alone.
    """
    order = fixed_permutation(sum(sizes.values()), seed)
    blocks: dict[str, npt.NDArray[np.int64]] = {}
    start = 0
    for name, size in sizes.items():
        blocks[name] = np.sort(order[start : start + size])
        start += size
    return blocks
