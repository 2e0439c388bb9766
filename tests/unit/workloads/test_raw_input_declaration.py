"""A workload's raw-input declaration (raw_input_shape, raw_input_range, preprocess): validated, and checked
by WorkloadContract on data-free examples — a preprocessing that mixes the examples of a batch is caught."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
from torch import nn

from tunedp.testing import WorkloadContract
from tunedp.workloads import DatasetSizes, Workload, resolve_workload

SIZES = DatasetSizes(dataset="toy", train=12, validation=5, test=4, classes=3)


def _workload(**fields: Any) -> Workload:
    declared = {"name": "toy", "sizes": SIZES, "input_shape": (1, 2, 2), "variants": ("linear",), **fields}
    return Workload(loader="no.such:loader", model_factory=lambda variant: nn.Linear(4, 3), **declared)


def _scaled(raw: torch.Tensor) -> torch.Tensor:
    """0..255 → [0, 1], one example at a time."""
    return (raw / 255.0).unsqueeze(1)


def _scaled_by_the_batch(raw: torch.Tensor) -> torch.Tensor:
    """Divides by the batch's largest value: a statistic of the rows beside each example."""
    return (raw / raw.max().clamp(min=1.0)).unsqueeze(1)


RAW = {"raw_input_shape": (2, 2), "raw_input_range": (0.0, 255.0)}


def test_the_three_fields_are_declared_together_and_validated() -> None:
    assert _workload().raw_input_shape is None  # undeclared: the released model takes input_shape arrays
    with pytest.raises(ValueError, match="declare raw_input_shape, raw_input_range and preprocess together"):
        _workload(raw_input_shape=(2, 2), preprocess=_scaled)
    with pytest.raises(ValueError, match=re.escape("raw_input_range=(5.0, 5.0) must be finite (low, high)")):
        _workload(raw_input_shape=(2, 2), raw_input_range=(5.0, 5.0), preprocess=_scaled)
    with pytest.raises(ValueError, match=re.escape("raw_input_shape=(2, 0) must be positive integers")):
        _workload(raw_input_shape=(2, 0), raw_input_range=(0.0, 1.0), preprocess=_scaled)


def test_preprocessed_refuses_an_output_of_another_shape_than_input_shape() -> None:
    workload = _workload(**RAW, preprocess=lambda raw: raw / 255.0)  # forgot the channel axis
    with pytest.raises(ValueError, match=re.escape("not (n, *input_shape) with input_shape (1, 2, 2)")):
        workload.preprocessed(torch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="declares no preprocess"):
        _workload().preprocessed(torch.zeros(1, 2, 2))


def test_the_contract_passes_a_per_example_map_and_catches_one_that_mixes_the_batch() -> None:
    contract = WorkloadContract()
    contract.test_declared_raw_input_is_preprocessed_per_example_into_the_input_shape(
        _workload(**RAW, preprocess=_scaled)
    )
    with pytest.raises(AssertionError, match="preprocess mixes the examples of a batch"):
        contract.test_declared_raw_input_is_preprocessed_per_example_into_the_input_shape(
            _workload(**RAW, preprocess=_scaled_by_the_batch)
        )
    with pytest.raises(ValueError, match="not \\(n, \\*input_shape\\)"):
        contract.test_declared_raw_input_is_preprocessed_per_example_into_the_input_shape(
            _workload(**RAW, preprocess=lambda raw: raw)
        )


@pytest.mark.parametrize("name", ["fashion_mnist_scatternet", "fashion_mnist", "digits", "mnist_public"])
def test_the_built_in_image_workloads_pass_it_without_their_data(name: str) -> None:
    """The ScatterNet contract class skips without the 60k feature cache; this check needs no data at all."""
    WorkloadContract().test_declared_raw_input_is_preprocessed_per_example_into_the_input_shape(resolve_workload(name))
