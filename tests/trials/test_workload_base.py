"""trials.base: the guards that keep loaded data consistent with what the accounting assumed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trials.base import Split, Splits, Workload, accuracy, carve, check_sizes, correct_count, require_rows


def _splits(train: int, validation: int, test: int) -> Splits:
    def split(n: int) -> Split:
        return Split(torch.zeros(n, 3), torch.zeros(n, dtype=torch.int64))

    return Splits(train=split(train), validation=split(validation), test=split(test))


def test_check_sizes_refuses_a_split_of_another_size() -> None:
    check_sizes("digits", _splits(1200, 297, 300))
    with pytest.raises(ValueError, match=r"validation split has 296 examples but trials/sizes\.py declares 297"):
        check_sizes("digits", _splits(1200, 296, 300))


def test_check_sizes_refuses_wrong_dtypes() -> None:
    splits = _splits(1200, 297, 300)
    bad = Splits(
        train=Split(splits.train.inputs.double(), splits.train.targets), validation=splits.validation, test=splits.test
    )
    with pytest.raises(TypeError, match="float32 inputs and int64 targets"):
        check_sizes("digits", bad)


def test_require_rows_is_a_one_line_error() -> None:
    require_rows("adult", "adult.data", 32561, 32561)
    with pytest.raises(ValueError) as error:
        require_rows("adult", "adult.data", 32560, 32561)
    assert "\n" not in str(error.value) and "32560 rows" in str(error.value)


def test_carve_depends_on_sizes_and_seed_only() -> None:
    blocks = carve({"a": 5, "b": 3, "c": 2}, seed=7)
    assert [len(v) for v in blocks.values()] == [5, 3, 2]
    assert np.array_equal(np.sort(np.concatenate(list(blocks.values()))), np.arange(10))
    assert all(np.array_equal(v, np.sort(v)) for v in blocks.values())
    again = carve({"a": 5, "b": 3, "c": 2}, seed=7)
    assert all(np.array_equal(blocks[k], again[k]) for k in blocks)
    other = carve({"a": 5, "b": 3, "c": 2}, seed=8)
    assert not all(np.array_equal(blocks[k], other[k]) for k in blocks)


def test_accuracy_and_correct_count() -> None:
    outputs = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    targets = torch.tensor([0, 1, 1])
    assert correct_count(outputs, targets) == 2
    assert accuracy(outputs, targets) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="empty"):
        accuracy(outputs[:0], targets[:0])


def test_workload_must_match_its_declaration() -> None:
    def loader() -> Splits:
        return _splits(1200, 297, 300)

    def factory(variant: str) -> nn.Module:
        return nn.Linear(3, 10)

    with pytest.raises(ValueError, match=r"no entry in trials/sizes\.py"):
        Workload(name="cifar10", dataset="cifar10", variants=("a",), loader=loader, model_factory=factory)
    with pytest.raises(ValueError, match="dataset differs"):
        Workload(name="digits", dataset="mnist", variants=("a",), loader=loader, model_factory=factory)
    with pytest.raises(ValueError, match="no model variants"):
        Workload(name="digits", dataset="digits", variants=(), loader=loader, model_factory=factory)
    workload = Workload(name="digits", dataset="digits", variants=("a",), loader=loader, model_factory=factory)
    assert workload.load().train.inputs.shape == (1200, 3)
    assert workload.predict(nn.Linear(3, 10), torch.zeros(5, 3), batch_size=2).shape == (5, 10)
