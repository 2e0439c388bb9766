"""The torch half of the digits workload: loader and models (see :mod:`tunedp.workloads.digits`)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tunedp.workloads.contract import Split, Splits, require_rows
from tunedp.workloads.digits import PIXEL_MAX, RAW_SHAPE, SPLIT_SEED, WORKLOAD
from tunedp.workloads.layout import channels_last
from tunedp.workloads.mlp import TanhMlp
from tunedp.workloads.splits import carve

__all__ = ["build_model", "inputs_of_images", "load", "scale_pixels", "split_indices"]


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
    classes = WORKLOAD.sizes.classes
    if variant == "mlp":
        return TanhMlp(64, 64, classes, flatten=True)
    if variant == "cnn":
        return channels_last(_Cnn(classes))  # tunedp.workloads.layout: a faster step on CPU
    raise ValueError(f"digits has no model variant {variant!r}; known: mlp, cnn")


def split_indices() -> dict[str, npt.NDArray[np.int64]]:
    """Rows of the 1797 bundled images that form the train, validation and test splits."""
    sizes = WORKLOAD.sizes
    return carve({"train": sizes.train, "validation": sizes.validation, "test": sizes.test}, SPLIT_SEED)


def scale_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """0..16 → [-1, 1] by the documented range (clipped first, so the map is fixed for any input)."""
    return pixels.clamp(0.0, PIXEL_MAX).mul(2.0 / PIXEL_MAX).sub(1.0)


def inputs_of_images(pixels: torch.Tensor) -> torch.Tensor:
    """Raw images ``(n, 8, 8)``, values 0..16 → the networks' inputs ``(n, 1, 8, 8)`` in [-1, 1].

    The workload's declared ``preprocess``: the loader and the released model both call it.
    """
    return scale_pixels(pixels.to(torch.float32).unsqueeze(1))


@lru_cache(maxsize=1)
def load() -> Splits:
    """Load the bundled digits once per process and carve the fixed three-way split."""
    from sklearn.datasets import load_digits  # deferred: scikit-learn takes ~1 s to import

    bunch = load_digits()
    pixels = np.asarray(bunch.data, dtype=np.float32).reshape(-1, *RAW_SHAPE)
    images = inputs_of_images(torch.from_numpy(pixels))
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    sizes = WORKLOAD.sizes
    require_rows(WORKLOAD.name, "sklearn load_digits", labels.shape[0], sizes.train + sizes.validation + sizes.test)
    blocks = {name: torch.from_numpy(rows) for name, rows in split_indices().items()}
    return Splits(
        train=Split(images[blocks["train"]], labels[blocks["train"]]),
        validation=Split(images[blocks["validation"]], labels[blocks["validation"]]),
        test=Split(images[blocks["test"]], labels[blocks["test"]]),
    )
