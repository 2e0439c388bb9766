"""Re-export of the built-in Adult workload (:mod:`tunedp.workloads.adult` and its torch half)."""

from tunedp.workloads.adult import CATEGORIES, COLUMNS, FEATURES, NUMERIC, NUMERIC_RANGES, SPLIT_SEED, WORKLOAD
from tunedp.workloads.adult_torch import build_model, encode_rows, label_of, load, read_rows, split_indices

__all__ = [
    "CATEGORIES",
    "COLUMNS",
    "FEATURES",
    "NUMERIC",
    "NUMERIC_RANGES",
    "SPLIT_SEED",
    "WORKLOAD",
    "build_model",
    "encode_rows",
    "label_of",
    "load",
    "read_rows",
    "split_indices",
]
