"""Fashion-MNIST with the end-to-end tanh CNN of Tramèr & Boneh (ICLR 2021) (declaration).

The standard image benchmark for DP-SGD: Tramèr & Boneh report 86.0% test
accuracy at ε ≈ 3 with this exact network (tanh activations, no BatchNorm),
which makes it the reference point for tunedp's utility benchmark.

Data: Debian's ``dataset-fashion-mnist`` idx files (located by
:mod:`tunedp.workloads.files`). The 60000 training images are split 55000 train /
5000 validation by a fixed-seed permutation; the 10000 t10k images are the
test split (a separate file, treated as public). Pixels are scaled to [0, 1]
and standardised with the published Fashion-MNIST constants (mean 0.2860,
std 0.3530) — public figures, not statistics computed at run time.

The released model takes the raw images a user holds — 28 × 28 pixels
0..255 as the idx files store them — and applies
:func:`tunedp.workloads.fashion_mnist_torch.inputs_of_images`, the loader's
own scaling, itself.

This module is torch-free; the loader and model live in
:mod:`tunedp.workloads.fashion_mnist_torch`.
"""

from __future__ import annotations

from tunedp.workloads.contract import DatasetSizes, Workload
from tunedp.workloads.files import fashion_mnist_paths

__all__ = ["CNN_VARIANTS", "MEAN", "PIXEL_RANGE", "RAW_SHAPE", "SPLIT_SEED", "STD", "WORKLOAD"]

SPLIT_SEED = 20_210_503
"""Seed of the train/validation permutation (fixed: the split must not depend on the data)."""
CNN_VARIANTS = ("cnn", "cnn_tempered")
"""The CNN variants of every 28×28 image workload, under the same names (a public proxy tunes the same net)."""
MEAN = 0.2860
STD = 0.3530
RAW_SHAPE = (28, 28)
"""One raw image: 28 × 28 grey pixels, as the idx files store them."""
PIXEL_RANGE = (0.0, 255.0)
"""Raw pixel values as stored (uint8), before any scaling: what the released model takes."""

WORKLOAD = Workload(
    name="fashion_mnist",
    sizes=DatasetSizes(dataset="fashion_mnist", train=55000, validation=5000, test=10000, classes=10),
    input_shape=(1, 28, 28),
    variants=CNN_VARIANTS,
    loader="tunedp.workloads.fashion_mnist_torch:load",
    model_factory="tunedp.workloads.fashion_mnist_torch:build_model",
    validation_source="protected",
    test_source="public",
    data_files=fashion_mnist_paths,
    raw_input_shape=RAW_SHAPE,
    raw_input_range=PIXEL_RANGE,
    preprocess="tunedp.workloads.fashion_mnist_torch:inputs_of_images",
)
