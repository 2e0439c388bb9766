"""Re-export of the built-in Adult workload (:mod:`tunedp.workloads.adult` and its torch half)."""

from tunedp.workloads._adult import build_model, encode_rows, label_of, load, read_rows, split_indices
from tunedp.workloads.adult import CATEGORIES, COLUMNS, FEATURES, NUMERIC, NUMERIC_RANGES, SPLIT_SEED, WORKLOAD

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
