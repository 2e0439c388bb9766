"""Fashion-MNIST with the end-to-end tanh CNN of Tramèr & Boneh (ICLR 2021).

The standard image benchmark for DP-SGD: Tramèr & Boneh report 86.0% test
accuracy at ε ≈ 3 with this exact network (tanh activations, no BatchNorm),
which makes it the reference point for tunedp's utility benchmark.

Data: Debian's ``dataset-fashion-mnist`` idx files (located by
:mod:`tunedp.datasets`). The 60000 training images are split 55000 train /
5000 validation by a fixed-seed permutation; the 10000 t10k images are the
test split. Pixels are scaled to [0, 1] and standardised with the published
Fashion-MNIST constants (mean 0.2860, std 0.3530) — fixed numbers, not
statistics computed from the private data at run time.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from trials.base import Split, Splits, Workload, carve, require_rows
from trials.sizes import DECLARED_SIZES
from tunedp.datasets import fashion_mnist_files, read_idx

__all__ = ["MEAN", "SPLIT_SEED", "STD", "WORKLOAD", "TramerBonehCnn", "build_model", "load", "split_indices"]

NAME = "fashion_mnist"
SPLIT_SEED = 20_210_503
"""Seed of the train/validation permutation (fixed: the split must not depend on the data)."""
MEAN = 0.2860
STD = 0.3530


class TramerBonehCnn(nn.Module):
    """conv16 8x8/2 → tanh → maxpool2/1 → conv32 4x4/2 → tanh → maxpool2/1 → fc32 → tanh → fc10.

    Tramèr & Boneh found tanh (bounded activations) better than ReLU under
    DP-SGD, and the small width keeps the per-example gradient cheap.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=8, stride=2, padding=2),  # 28 → 13
            nn.Tanh(),
            nn.MaxPool2d(kernel_size=2, stride=1),  # 13 → 12
            nn.Conv2d(16, 32, kernel_size=4, stride=2),  # 12 → 5
            nn.Tanh(),
            nn.MaxPool2d(kernel_size=2, stride=1),  # 5 → 4
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 32),
            nn.Tanh(),
            nn.Linear(32, num_classes),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(inputs))  # type: ignore[no-any-return]


def build_model(variant: str) -> nn.Module:
    """The model for a variant name (only ``"cnn"``, the Tramèr–Boneh network)."""
    if variant != "cnn":
        raise ValueError(f"fashion_mnist has no model variant {variant!r}; known: cnn")
    return TramerBonehCnn(DECLARED_SIZES[NAME]["classes"])


def _images(raw: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) → standardised float32 (N, 1, 28, 28)."""
    images = torch.from_numpy(raw.copy()).to(torch.float32).unsqueeze(1)
    return images.div_(255.0).sub_(MEAN).div_(STD)


def _labels(raw: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(raw.astype(np.int64))


def split_indices() -> dict[str, npt.NDArray[np.int64]]:
    """Rows of the 60000-image training file that form the train and validation splits."""
    sizes = DECLARED_SIZES[NAME]
    return carve({"train": sizes["train"], "validation": sizes["validation"]}, SPLIT_SEED)


@lru_cache(maxsize=1)
def load() -> Splits:
    """Read the idx files once per process and carve the fixed train/validation split."""
    files = fashion_mnist_files()
    train_images, train_labels = read_idx(files.train_images), read_idx(files.train_labels)
    test_images, test_labels = read_idx(files.test_images), read_idx(files.test_labels)
    sizes = DECLARED_SIZES[NAME]
    require_rows(NAME, str(files.train_labels), train_labels.shape[0], sizes["train"] + sizes["validation"])
    require_rows(NAME, str(files.test_labels), test_labels.shape[0], sizes["test"])
    blocks = split_indices()
    return Splits(
        train=Split(_images(train_images[blocks["train"]]), _labels(train_labels[blocks["train"]])),
        validation=Split(_images(train_images[blocks["validation"]]), _labels(train_labels[blocks["validation"]])),
        test=Split(_images(test_images), _labels(test_labels)),
    )


WORKLOAD = Workload(
    name=NAME,
    dataset=DECLARED_SIZES[NAME]["dataset"],
    variants=("cnn",),
    loader=load,
    model_factory=build_model,
    input_shape=(1, 28, 28),
)
