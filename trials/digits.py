"""Re-export of the built-in digits workload (:mod:`tunedp.workloads.digits` and its torch half)."""

from tunedp.workloads._digits import build_model, load, scale_pixels, split_indices
from tunedp.workloads.digits import PIXEL_MAX, SPLIT_SEED, WORKLOAD

__all__ = ["PIXEL_MAX", "SPLIT_SEED", "WORKLOAD", "build_model", "load", "scale_pixels", "split_indices"]
