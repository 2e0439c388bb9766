"""Re-export of the built-in digits workload (:mod:`tunedp.workloads.digits` and its torch half)."""

from tunedp.workloads.digits import PIXEL_MAX, SPLIT_SEED, WORKLOAD
from tunedp.workloads.digits_torch import build_model, load, scale_pixels, split_indices

__all__ = ["PIXEL_MAX", "SPLIT_SEED", "WORKLOAD", "build_model", "load", "scale_pixels", "split_indices"]
