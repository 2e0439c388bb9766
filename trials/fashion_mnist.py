"""Re-export of the built-in Fashion-MNIST workload (:mod:`tunedp.workloads.fashion_mnist` and its torch half)."""

from tunedp.workloads.fashion_mnist import MEAN, SPLIT_SEED, STD, WORKLOAD
from tunedp.workloads.fashion_mnist_torch import TramerBonehCnn, build_model, load, split_indices

__all__ = ["MEAN", "SPLIT_SEED", "STD", "WORKLOAD", "TramerBonehCnn", "build_model", "load", "split_indices"]
