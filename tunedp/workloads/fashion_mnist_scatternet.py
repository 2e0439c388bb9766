"""Fashion-MNIST on ScatterNet features: Tramèr & Boneh's (ICLR 2021) strongest private model for it (declaration).

Tramèr & Boneh ("Differentially private learning needs better features (or
much more data)") train a linear model on the scattering transform of the
images (J = 2 scales, L = 8 orientations: 81 channels × 7 × 7 for 28 × 28
images) and report 89.7 % test accuracy at ε ≈ 3, against 86.0 % for the
best end-to-end CNN. The transform is a fixed, data-independent map of one
image (:mod:`tunedp.workloads.scattering`), so computing it on the private
images costs no privacy: it is the same per-example preprocessing on
neighbouring datasets.

Same protected dataset as :mod:`tunedp.workloads.fashion_mnist` (one ledger,
``fashion_mnist``; the fingerprint is of the same images, so one ledger
serves both workloads), the same 55000/5000 train/validation carve of the
training file (same seed: the two workloads' validation images are the same
rows) and the public t10k test split.

Normalisation: Tramèr & Boneh normalise the scattering features either with
a private per-channel mean/variance (whose cost they charge) or with
GroupNorm. Every model here begins with ``GroupNorm(27, 81, affine=False)``:
each example's features are standardised over groups of 3 channels using
that example's own values only — no statistic of the dataset, nothing
learned. A function of one example does not change what DP-SGD's
per-example clipping bounds, so it costs nothing and nothing is charged for
it.

Features are computed once per machine and cached on disk (~1.1 GB float32;
about 2.5 minutes on 2 idle cores, 12 under heavy load) under
``$TUNEDP_CACHE_DIR``, else ``$XDG_CACHE_HOME/tunedp``, else
``~/.cache/tunedp``, in a file named by the SHA-256 of the four idx files,
the transform's parameters and the split seed, so a changed file or
transform never reads stale features. ``python -m
tunedp.workloads.fashion_mnist_scatternet_torch`` builds it ahead of a search.
The cache holds features of the protected images: it is private data and
must be kept like the idx files themselves.

The released model takes the raw images (28 × 28 pixels 0..255, as the idx
files store them) and computes their features itself with
:func:`tunedp.workloads.fashion_mnist_scatternet_torch.features_of_images`,
the function the cache is built with.

This module is torch-free; the loader, cache and models live in
:mod:`tunedp.workloads.fashion_mnist_scatternet_torch`.
"""

from __future__ import annotations

from tunedp.workloads.contract import DatasetSizes, Workload
from tunedp.workloads.fashion_mnist import WORKLOAD as IMAGES
from tunedp.workloads.files import fashion_mnist_paths

__all__ = ["CHANNELS", "GROUPS", "ORIENTATIONS", "SCALES", "SIDE", "WORKLOAD"]

SCALES, ORIENTATIONS = 2, 8
"""J and L of the transform (Tramèr & Boneh's choice for 28 × 28 images)."""
CHANNELS, SIDE = 81, 7
"""1 + J·L + L²·J(J−1)/2 channels of (28 / 2^J)² pixels."""
GROUPS = 27
"""GroupNorm groups (of 3 channels), as Tramèr & Boneh use for scattering features."""

WORKLOAD = Workload(
    name="fashion_mnist_scatternet",
    sizes=DatasetSizes(
        dataset=IMAGES.sizes.dataset,
        train=IMAGES.sizes.train,
        validation=IMAGES.sizes.validation,
        test=IMAGES.sizes.test,
        classes=IMAGES.sizes.classes,
    ),
    input_shape=(CHANNELS, SIDE, SIDE),
    variants=("linear", "cnn"),
    loader="tunedp.workloads.fashion_mnist_scatternet_torch:load",
    model_factory="tunedp.workloads.fashion_mnist_scatternet_torch:build_model",
    validation_source="protected",
    test_source="public",
    fingerprint_workload="fashion_mnist",
    data_files=fashion_mnist_paths,  # the images the features are computed from
    raw_input_shape=IMAGES.raw_input_shape,
    raw_input_range=IMAGES.raw_input_range,
    preprocess="tunedp.workloads.fashion_mnist_scatternet_torch:features_of_images",
)
