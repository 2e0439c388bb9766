"""The built-in digits workload: the contract on scikit-learn's bundled digits (always available: no skip)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from tunedp.testing import WorkloadContract
from tunedp.workloads import TEST_OUTSIDE_GUARANTEE, digits, digits_torch


class TestDigits(WorkloadContract):
    reference = "digits"


def test_pixels_are_scaled_by_the_documented_range_not_by_the_images() -> None:
    """Issue 10 §6: 0..16 → [-1, 1] by the range; no mean or std of the protected images."""
    splits = digits_torch.load()
    raw = np.asarray(load_digits().data, dtype=np.float32).reshape(-1, 1, 8, 8)
    first = digits_torch.split_indices()["validation"][0]
    torch.testing.assert_close(splits.validation.inputs[0], torch.from_numpy(raw[first] / 8.0 - 1.0))
    assert digits_torch.scale_pixels(torch.tensor([0.0, 8.0, 16.0, 40.0])).tolist() == [-1.0, 0.0, 1.0, 1.0]


def test_the_test_split_is_carved_from_the_protected_images_and_says_so() -> None:
    """Issue 10 §6: the digits test split is a subset of the same 1797 images."""
    assert digits.WORKLOAD.test_source == "protected"
    assert digits.WORKLOAD.test_label == TEST_OUTSIDE_GUARANTEE == "exact, outside the ε guarantee"
    assert digits.WORKLOAD.validation_source == "protected"


def test_mlp_is_the_default_and_small() -> None:
    model = digits.WORKLOAD.build_model()
    assert sum(p.numel() for p in model.parameters()) == 64 * 64 + 64 + 64 * 10 + 10
