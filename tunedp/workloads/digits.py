"""scikit-learn's 8×8 handwritten digits: the tiny workload for fast end-to-end checks (declaration).

1797 images and a model with a few thousand parameters train in seconds on a
CPU, so tests and demos of the whole search (Ray trials, ledger, MLflow) run
on real data without waiting for Fashion-MNIST.

Data: :func:`sklearn.datasets.load_digits` (bundled with scikit-learn, no
download). There is no separate test file: a fixed-seed permutation splits
the 1797 images 1200 train / 297 validation / 300 test, so the test split is
carved from the same protected collection and its exact accuracy is
labelled "exact, outside the ε guarantee" wherever it appears. Pixels are
integers 0..16 (the documented range of the set); they are scaled by that
range to [-1, 1] — no statistic of the images is used. The released model
takes the raw 8 × 8 images (values 0..16, as ``load_digits().images`` holds
them) and applies that scaling itself
(:func:`tunedp.workloads.digits_torch.inputs_of_images`).

This module is torch-free; the loader and models live in
:mod:`tunedp.workloads.digits_torch`, imported on first use.
"""

from __future__ import annotations

from tunedp.workloads.contract import DatasetSizes, Workload
from tunedp.workloads.files import digits_paths

__all__ = ["PIXEL_MAX", "RAW_SHAPE", "SPLIT_SEED", "WORKLOAD"]

SPLIT_SEED = 19_980_801
"""Seed of the train/validation/test permutation (fixed: the split must not depend on the data)."""
PIXEL_MAX = 16.0
"""The documented pixel range of the set is 0..16 (sklearn's ``load_digits``)."""
RAW_SHAPE = (8, 8)
"""One raw image: 8 × 8 pixels (``load_digits().images[i]``)."""

WORKLOAD = Workload(
    name="digits",
    sizes=DatasetSizes(dataset="digits", train=1200, validation=297, test=300, classes=10),
    input_shape=(1, 8, 8),
    variants=("mlp", "cnn"),
    loader="tunedp.workloads.digits_torch:load",
    model_factory="tunedp.workloads.digits_torch:build_model",
    validation_source="protected",
    test_source="protected",
    data_files=digits_paths,
    raw_input_shape=RAW_SHAPE,
    raw_input_range=(0.0, PIXEL_MAX),
    preprocess="tunedp.workloads.digits_torch:inputs_of_images",
)
