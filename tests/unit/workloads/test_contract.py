"""tunedp.workloads.contract: the guards that keep loaded data consistent with what the accounting assumed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tunedp.errors import ConfigError
from tunedp.workloads import DatasetSizes, Split, Splits, Workload, carve, check_delta, require_rows
from tunedp.workloads.metrics import accuracy, correct_count

SIZES = DatasetSizes(dataset="toy", train=12, validation=5, test=4, classes=3)


def _splits(train: int, validation: int, test: int, width: int = 3) -> Splits:
    def split(n: int) -> Split:
        return Split(torch.zeros(n, width), torch.zeros(n, dtype=torch.int64))

    return Splits(train=split(train), validation=split(validation), test=split(test))


def _workload(splits: Splits, **fields) -> Workload:
    declared = {"name": "toy", "sizes": SIZES, "input_shape": (3,), "variants": ("linear",), **fields}
    return Workload(loader=lambda: splits, model_factory=lambda variant: nn.Linear(3, 3), **declared)


def test_load_refuses_a_split_of_another_size_than_declared() -> None:
    assert len(_workload(_splits(12, 5, 4)).load().train) == 12
    with pytest.raises(ValueError, match=r"validation split has 4 examples but the workload declares 5"):
        _workload(_splits(12, 4, 4)).load()


def test_load_refuses_wrong_dtypes_and_shapes() -> None:
    splits = _splits(12, 5, 4)
    bad = Splits(
        train=Split(splits.train.inputs.double(), splits.train.targets), validation=splits.validation, test=splits.test
    )
    with pytest.raises(TypeError, match="float32 inputs and int64 targets"):
        _workload(bad).load()
    with pytest.raises(ValueError, match=r"declares input_shape \(3,\)"):
        _workload(_splits(12, 5, 4, width=4)).load()


def test_declaration_is_validated() -> None:
    with pytest.raises(ValueError, match="distinct model variants"):
        _workload(_splits(12, 5, 4), variants=())
    with pytest.raises(ValueError, match="validation_source"):
        _workload(_splits(12, 5, 4), validation_source="somewhere")
    with pytest.raises(ValueError, match="train=0"):
        DatasetSizes(dataset="toy", train=0, validation=1, test=1, classes=2)
    with pytest.raises(ValueError, match="classes=1"):
        DatasetSizes(dataset="toy", train=1, validation=1, test=1, classes=1)


def test_the_default_loss_and_count_are_cross_entropy_and_argmax() -> None:
    workload = _workload(_splits(12, 5, 4))
    outputs = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [1.0, 0.0, 0.0]])
    targets = torch.tensor([0, 1, 1])
    assert workload.correct(outputs, targets) == 2
    assert workload.metric(outputs, targets) == pytest.approx(2 / 3)
    torch.testing.assert_close(
        workload.per_example_loss(outputs, targets),
        torch.nn.functional.cross_entropy(outputs, targets, reduction="none"),
    )
    assert workload.predict(nn.Linear(3, 10), torch.zeros(5, 3), batch_size=2).shape == (5, 10)


def test_the_delta_rule_lives_in_one_place() -> None:
    assert SIZES.protected == 17
    SIZES.check_delta(1 / 17)
    with pytest.raises(ConfigError) as error:
        SIZES.check_delta(0.1)
    assert str(error.value) == (
        "budget.delta=0.1 exceeds 1/n = 0.0588 for 17 protected examples of dataset 'toy'; lower budget.delta"
    )
    with pytest.raises(ConfigError, match=r"--delta=0\.5 exceeds"):
        check_delta(0.5, 3, field="--delta", dataset="clinic")


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
