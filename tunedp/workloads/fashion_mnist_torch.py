"""The torch half of the Fashion-MNIST workload (see :mod:`tunedp.workloads.fashion_mnist`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tunedp.workloads.contract import Split, Splits, require_rows
from tunedp.workloads.fashion_mnist import CNN_VARIANTS, MEAN, SPLIT_SEED, STD, WORKLOAD
from tunedp.workloads.files import fashion_mnist_files, read_idx
from tunedp.workloads.layout import channels_last
from tunedp.workloads.splits import carve

__all__ = [
    "RawRows",
    "TemperedSigmoid",
    "TramerBonehCnn",
    "build_model",
    "inputs_of_images",
    "load",
    "read_rows",
    "split_indices",
    "standardised_pixels",
    "tramer_boneh_cnn",
]


class TemperedSigmoid(nn.Module):
    """φ(x) = s·sigmoid(T·x) − o: the bounded activations of Papernot et al. (AAAI 2021).

    Bounded activations keep the pre-clipping gradient norms small, so less
    signal is lost to clipping under DP-SGD. s = 2, T = 2, o = 1 is exactly
    tanh (the ``cnn`` variant); the ``cnn_tempered`` variant uses the flatter
    member s = 2, T = 1, o = 1 (= tanh(x/2)), whose slope is at most 1/2.
    """

    def __init__(self, *, scale: float, inverse_temperature: float, offset: float) -> None:
        super().__init__()
        if scale <= 0 or inverse_temperature <= 0:
            raise ValueError("TemperedSigmoid: scale and inverse_temperature must be > 0")
        self.scale, self.inverse_temperature, self.offset = scale, inverse_temperature, offset

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.sigmoid(self.inverse_temperature * inputs) - self.offset

    def extra_repr(self) -> str:
        return f"scale={self.scale}, inverse_temperature={self.inverse_temperature}, offset={self.offset}"


class TramerBonehCnn(nn.Module):
    """conv16 8x8/2 → tanh → maxpool2/1 → conv32 4x4/2 → tanh → maxpool2/1 → fc32 → tanh → fc10.

    Tramèr & Boneh found tanh (bounded activations) better than ReLU under
    DP-SGD, and the small width keeps the per-example gradient cheap.
    ``activation`` builds each activation (default ``nn.Tanh``).
    """

    def __init__(self, num_classes: int = 10, activation: Callable[[], nn.Module] = nn.Tanh) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=8, stride=2, padding=2),  # 28 → 13
            activation(),
            nn.MaxPool2d(kernel_size=2, stride=1),  # 13 → 12
            nn.Conv2d(16, 32, kernel_size=4, stride=2),  # 12 → 5
            activation(),
            nn.MaxPool2d(kernel_size=2, stride=1),  # 5 → 4
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 32),
            activation(),
            nn.Linear(32, num_classes),
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(inputs))  # type: ignore[no-any-return]


def tramer_boneh_cnn(variant: str, *, classes: int, workload: str) -> nn.Module:
    """One of :data:`CNN_VARIANTS`, which every 28×28 image workload offers under the same names.

    ``cnn``: the Tramèr–Boneh network (tanh); ``cnn_tempered``: the same with tempered sigmoids (2, 1, 1).
    Both are channels-last (:mod:`tunedp.workloads.layout`: about twice as fast a step on CPU).
    """
    if variant == "cnn":
        return channels_last(TramerBonehCnn(classes))
    if variant == "cnn_tempered":
        tempered = TramerBonehCnn(classes, lambda: TemperedSigmoid(scale=2.0, inverse_temperature=1.0, offset=1.0))
        return channels_last(tempered)
    raise ValueError(f"{workload} has no model variant {variant!r}; known: {', '.join(CNN_VARIANTS)}")


def build_model(variant: str) -> nn.Module:
    """``cnn`` or ``cnn_tempered`` (see :func:`tramer_boneh_cnn`)."""
    return tramer_boneh_cnn(variant, classes=WORKLOAD.sizes.classes, workload=WORKLOAD.name)


def standardised_pixels(pixels: torch.Tensor, *, mean: float, std: float) -> torch.Tensor:
    """Pixels 0..255 ``(n, rows, cols)`` → float32 ``(n, 1, rows, cols)``: scaled to [0, 1], then (x − mean) / std.

    ``mean`` and ``std`` are published constants of the image collection,
    never computed at run time. The input is not modified.
    """
    images = pixels.to(torch.float32, copy=True).unsqueeze(1)
    return images.div_(255.0).sub_(mean).div_(std)


def inputs_of_images(pixels: torch.Tensor) -> torch.Tensor:
    """Raw images ``(n, 28, 28)``, pixels 0..255 as stored → the CNN's inputs ``(n, 1, 28, 28)``.

    The workload's declared ``preprocess``: the loader and the released model both call it.
    """
    return standardised_pixels(pixels, mean=MEAN, std=STD)


def _images(raw: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) as read → the network's inputs (the read-only idx buffer is copied first)."""
    return inputs_of_images(torch.from_numpy(raw.copy()))


def _labels(raw: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(raw.astype(np.int64))


def split_indices() -> dict[str, npt.NDArray[np.int64]]:
    """Rows of the 60000-image training file that form the train and validation splits."""
    sizes = WORKLOAD.sizes
    return carve({"train": sizes.train, "validation": sizes.validation}, SPLIT_SEED)


@dataclass(frozen=True)
class RawRows:
    """The four idx files as arrays, row counts checked against the declared sizes."""

    train_images: npt.NDArray[np.generic]
    train_labels: npt.NDArray[np.generic]
    test_images: npt.NDArray[np.generic]
    test_labels: npt.NDArray[np.generic]


def read_rows() -> RawRows:
    """Read the idx files (uint8) and refuse a release whose row counts differ from the declaration."""
    files = fashion_mnist_files()
    rows = RawRows(
        train_images=read_idx(files.train_images),
        train_labels=read_idx(files.train_labels),
        test_images=read_idx(files.test_images),
        test_labels=read_idx(files.test_labels),
    )
    sizes = WORKLOAD.sizes
    require_rows(WORKLOAD.name, str(files.train_labels), rows.train_labels.shape[0], sizes.train + sizes.validation)
    require_rows(WORKLOAD.name, str(files.test_labels), rows.test_labels.shape[0], sizes.test)
    return rows


@lru_cache(maxsize=1)
def load() -> Splits:
    """Read the idx files once per process and carve the fixed train/validation split."""
    raw = read_rows()
    train_images, train_labels, test_images, test_labels = (
        raw.train_images, raw.train_labels, raw.test_images, raw.test_labels,
    )  # fmt: skip
    blocks = split_indices()
    return Splits(
        train=Split(_images(train_images[blocks["train"]]), _labels(train_labels[blocks["train"]])),
        validation=Split(_images(train_images[blocks["validation"]]), _labels(train_labels[blocks["validation"]])),
        test=Split(_images(test_images), _labels(test_labels)),
    )
