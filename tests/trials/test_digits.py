"""Workload contract on scikit-learn's bundled digits (always available: no skip)."""

from __future__ import annotations

import torch
from workload_contract import WorkloadContract

from trials import digits


class TestDigits(WorkloadContract):
    name = "digits"
    input_shape = (1, 8, 8)


def test_pixels_standardised_with_the_fixed_constants() -> None:
    splits = digits.load()
    everything = torch.cat([splits.train.inputs, splits.validation.inputs, splits.test.inputs])
    assert abs(float(everything.mean())) < 1e-3
    assert abs(float(everything.std()) - 1.0) < 1e-3


def test_mlp_is_the_default_and_small() -> None:
    model = digits.WORKLOAD.build_model()
    assert sum(p.numel() for p in model.parameters()) == 64 * 64 + 64 + 64 * 10 + 10
