"""Re-export of the built-in public MNIST proxy workload (:mod:`tunedp.workloads.mnist_public` and its torch half)."""

from tunedp.workloads.mnist_public import MEAN, SPLIT_SEED, STD, WORKLOAD
from tunedp.workloads.mnist_public_torch import build_model, load, split_indices

__all__ = ["MEAN", "SPLIT_SEED", "STD", "WORKLOAD", "build_model", "load", "split_indices"]
