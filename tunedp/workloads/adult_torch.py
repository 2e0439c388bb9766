"""The torch half of the Adult workload: parsing, encoding and models (see :mod:`tunedp.workloads.adult`)."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tunedp.workloads.adult import CATEGORIES, COLUMNS, FEATURES, LOG1P, NUMERIC, NUMERIC_RANGES, SPLIT_SEED, WORKLOAD
from tunedp.workloads.columns import one_hot, scale_by_range
from tunedp.workloads.contract import Split, Splits, require_rows
from tunedp.workloads.files import adult_files
from tunedp.workloads.mlp import TanhMlp
from tunedp.workloads.splits import carve

__all__ = ["build_model", "encode_rows", "label_of", "load", "read_rows", "split_indices"]

_INDEX = {name: i for i, name in enumerate(COLUMNS)}


def read_rows(path: Path) -> list[list[str]]:
    """The data rows of an Adult file: comment lines (``|…``) and blank lines skipped."""
    with path.open(newline="") as handle:
        rows = [
            row
            for row in csv.reader(handle, skipinitialspace=True)
            if row and not row[0].startswith("|") and any(cell.strip() for cell in row)
        ]
    for number, row in enumerate(rows, start=1):
        if len(row) != len(COLUMNS):
            raise ValueError(f"{path}: data row {number} has {len(row)} fields, expected {len(COLUMNS)}")
    return rows


def _numerics(rows: list[list[str]]) -> npt.NDArray[np.float64]:
    """The numeric columns, clipped and scaled by their documented ranges."""
    out = np.empty((len(rows), len(NUMERIC)), dtype=np.float64)
    for j, name in enumerate(NUMERIC):
        column = np.array([float(row[_INDEX[name]]) for row in rows], dtype=np.float64)
        low, high = NUMERIC_RANGES[name]
        out[:, j] = scale_by_range(column, low, high, log1p=name in LOG1P)
    return out


def encode_rows(rows: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of strings → (float32 features of width ``len(FEATURES)``, int64 labels with 1 = >50K)."""
    parts = [_numerics(rows)]
    for name, values in CATEGORIES.items():
        parts.append(one_hot([row[_INDEX[name]].strip() for row in rows], values, other=False))
    labels = np.array([label_of(row[_INDEX["income"]]) for row in rows], dtype=np.int64)
    features = np.concatenate(parts, axis=1).astype(np.float32)
    return torch.from_numpy(features), torch.from_numpy(labels)


def label_of(text: str) -> int:
    """'>50K' / '<=50K', with or without the trailing '.' of adult.test."""
    cleaned = text.strip().rstrip(".")
    if cleaned == ">50K":
        return 1
    if cleaned == "<=50K":
        return 0
    raise ValueError(f"unexpected Adult income label {text!r}")


def split_indices() -> dict[str, npt.NDArray[np.int64]]:
    """Rows of ``adult.data`` that form the train and validation splits."""
    sizes = WORKLOAD.sizes
    return carve({"train": sizes.train, "validation": sizes.validation}, SPLIT_SEED)


@lru_cache(maxsize=1)
def load() -> Splits:
    """Parse both files once per process and carve the fixed train/validation split."""
    files = adult_files()
    train_rows, test_rows = read_rows(files.train), read_rows(files.test)
    sizes = WORKLOAD.sizes
    require_rows(WORKLOAD.name, str(files.train), len(train_rows), sizes.train + sizes.validation)
    require_rows(WORKLOAD.name, str(files.test), len(test_rows), sizes.test)
    features, labels = encode_rows(train_rows)
    blocks = {name: torch.from_numpy(rows) for name, rows in split_indices().items()}
    test_features, test_labels = encode_rows(test_rows)
    return Splits(
        train=Split(features[blocks["train"]], labels[blocks["train"]]),
        validation=Split(features[blocks["validation"]], labels[blocks["validation"]]),
        test=Split(test_features, test_labels),
    )


def build_model(variant: str) -> nn.Module:
    """``"logreg"``: one linear layer to 2 logits (softmax = logistic); ``"mlp"``: hidden 64, tanh."""
    classes = WORKLOAD.sizes.classes
    if variant == "logreg":
        return nn.Linear(len(FEATURES), classes)
    if variant == "mlp":
        return TanhMlp(len(FEATURES), 64, classes)
    raise ValueError(f"adult has no model variant {variant!r}; known: logreg, mlp")
