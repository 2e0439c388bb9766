"""Data-independent encoding of table columns: declared ranges and declared categories.

Both the built-in ``adult`` workload and the ``csv`` workload encode rows with
these functions. Each is a fixed function of one value and of what was
*declared* (a range, a vocabulary) — never of statistics of the protected
rows — so the encoding is the same on neighbouring datasets and the DP
guarantee covers it. Imports numpy only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["one_hot", "scale_by_range"]


def scale_by_range(
    values: npt.NDArray[np.float64], low: float, high: float, *, log1p: bool = False
) -> npt.NDArray[np.float64]:
    """Clip to ``[low, high]`` and map that range linearly onto [-1, 1] (after ``log1p`` if asked).

    Clipping first makes the map bounded for any input, so one extreme row
    cannot dominate a gradient beyond what the declared range allows.
    """
    if not high > low:
        raise ValueError(f"range [{low}, {high}] must have low < high")
    clipped = np.clip(values, low, high)
    if log1p:
        if low <= -1:
            raise ValueError(f"log1p needs a range above -1, got low={low}")
        clipped, low, high = np.log1p(clipped), float(np.log1p(low)), float(np.log1p(high))
    return 2.0 * (clipped - low) / (high - low) - 1.0


def one_hot(values: list[str], categories: tuple[str, ...], *, other: bool) -> npt.NDArray[np.float64]:
    """One column per declared category; an undeclared value goes to a final "other" column
    (``other=True``) or encodes as all zeros (``other=False``)."""
    width = len(categories) + (1 if other else 0)
    position = {value: k for k, value in enumerate(categories)}
    out = np.zeros((len(values), width), dtype=np.float64)
    for i, value in enumerate(values):
        k = position.get(value)
        if k is not None:
            out[i, k] = 1.0
        elif other:
            out[i, len(categories)] = 1.0
    return out
