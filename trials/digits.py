"""scikit-learn's 8×8 handwritten digits: the tiny workload for fast end-to-end checks.

1797 images and a model with a few thousand parameters train in seconds on a
CPU, so tests and demos of the whole search (Ray trials, ledger, MLflow) run
on real data without waiting for Fashion-MNIST.

Data: :func:`sklearn.datasets.load_digits` (bundled with scikit-learn, no
download). There is no separate test file, so a fixed-seed permutation splits
the 1797 images 1200 train / 297 validation / 300 test. Pixels (0..16) are
scaled to [0, 1] and standardised with fixed constants (mean 0.3053, std
0.3760 of the whole bundled set, frozen here as public numbers).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from trials.base import Split, Splits, Workload, carve, require_rows
from trials.sizes import DECLARED_SIZES

__all__ = ["MEAN", "SPLIT_SEED", "STD", "WORKLOAD", "build_model", "load", "split_indices"]

NAME = "digits"
SPLIT_SEED = 19_980_801
"""Seed of the train/validation/test permutation (fixed: the split must not depend on the data)."""
MEAN = 0.3053
STD = 0.3760


class _Mlp(nn.Module):
    """64 → 64 tanh → 10 on the flattened image: the default, cheapest per-example gradient."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)  # type: ignore[no-any-return]


class _Cnn(nn.Module):
    """conv16 3x3 → tanh → maxpool2 → conv32 3x3 → tanh → maxpool2 → fc10: exercises conv layers cheaply."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),  # 8 → 8
            nn.Tanh(),
            nn.MaxPool2d(2),  # 8 → 4
            nn.Conv2d(16, 32, kernel_size=3, padding=1),  # 4 → 4
            nn.Tanh(),
            nn.MaxPool2d(2),  # 4 → 2
            nn.Flatten(),
            nn.Linear(32 * 2 * 2, classes),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)  # type: ignore[no-any-return]


def build_model(variant: str) -> nn.Module:
    """``"mlp"`` (default) or ``"cnn"``; both take (N, 1, 8, 8) inputs."""
    classes = DECLARED_SIZES[NAME]["classes"]
    if variant == "mlp":
        return _Mlp(classes)
    if variant == "cnn":
        return _Cnn(classes)
    raise ValueError(f"digits has no model variant {variant!r}; known: mlp, cnn")


def split_indices() -> dict[str, npt.NDArray[np.int64]]:
    """Rows of the 1797 bundled images that form the train, validation and test splits."""
    sizes = DECLARED_SIZES[NAME]
    return carve({"train": sizes["train"], "validation": sizes["validation"], "test": sizes["test"]}, SPLIT_SEED)


@lru_cache(maxsize=1)
def load() -> Splits:
    """Load the bundled digits once per process and carve the fixed three-way split."""
    from sklearn.datasets import load_digits  # deferred: scikit-learn takes ~1 s to import

    bunch = load_digits()
    pixels = np.asarray(bunch.data, dtype=np.float32).reshape(-1, 1, 8, 8)
    images = torch.from_numpy(pixels).div_(16.0).sub_(MEAN).div_(STD)
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    sizes = DECLARED_SIZES[NAME]
    require_rows(NAME, "sklearn load_digits", labels.shape[0], sizes["train"] + sizes["validation"] + sizes["test"])
    blocks = {name: torch.from_numpy(rows) for name, rows in split_indices().items()}
    return Splits(
        train=Split(images[blocks["train"]], labels[blocks["train"]]),
        validation=Split(images[blocks["validation"]], labels[blocks["validation"]]),
        test=Split(images[blocks["test"]], labels[blocks["test"]]),
    )


WORKLOAD = Workload(
    name=NAME,
    dataset=DECLARED_SIZES[NAME]["dataset"],
    variants=("mlp", "cnn"),
    loader=load,
    model_factory=build_model,
    input_shape=(1, 8, 8),
)
