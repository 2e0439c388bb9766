"""The torch half of the ScatterNet Fashion-MNIST workload: feature cache, loader, models.

See :mod:`tunedp.workloads.fashion_mnist_scatternet` for what and why.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sys
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from tunedp.workloads.contract import Split, Splits
from tunedp.workloads.fashion_mnist import RAW_SHAPE, SPLIT_SEED
from tunedp.workloads.fashion_mnist_scatternet import CHANNELS, GROUPS, ORIENTATIONS, SCALES, SIDE, WORKLOAD
from tunedp.workloads.fashion_mnist_torch import read_rows, split_indices
from tunedp.workloads.files import fashion_mnist_files
from tunedp.workloads.layout import channels_last
from tunedp.workloads.scattering import Scattering2d

__all__ = [
    "CACHE_DIR_ENV",
    "ScatterCnn",
    "ScatterLinear",
    "build_model",
    "cache_dir",
    "feature_cache_path",
    "features",
    "features_of_images",
    "load",
    "scatter",
]

CACHE_DIR_ENV = "TUNEDP_CACHE_DIR"
_FORMAT = "scatternet-v1"
"""Bumped whenever the transform or the file layout changes (part of the cache key)."""
_CHUNK = 1024


def cache_dir() -> Path:
    """Where cached features live: ``$TUNEDP_CACHE_DIR``, else ``$XDG_CACHE_HOME/tunedp``, else ``~/.cache/tunedp``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tunedp"


def _digest(paths: list[Path]) -> str:
    hasher = hashlib.sha256(f"{_FORMAT} J={SCALES} L={ORIENTATIONS} seed={SPLIT_SEED}".encode())
    for path in paths:
        hasher.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
    return hasher.hexdigest()[:24]


def feature_cache_path() -> Path:
    """The cache file for the idx files now found (its name is their content hash)."""
    files = fashion_mnist_files()
    digest = _digest([files.train_images, files.train_labels, files.test_images, files.test_labels])
    return cache_dir() / f"fashion_mnist_scatternet-{digest}.npy"


@lru_cache(maxsize=1)
def _transform() -> Scattering2d:
    """The transform (its filters depend on the image size, J and L only), built once per process."""
    return Scattering2d(RAW_SHAPE, scales=SCALES, orientations=ORIENTATIONS)


def features_of_images(pixels: torch.Tensor) -> torch.Tensor:
    """Raw images ``(n, 28, 28)``, pixels 0..255 as stored → scattering features ``(n, 81, 7, 7)``.

    Pixels are scaled to [0, 1] and transformed; nothing else (the models'
    GroupNorm standardises each example's features). The workload's declared
    ``preprocess``: the cache builder (:func:`scatter`) and the released model
    both call it. Memory grows with ``n`` (≈ 1 MB per image): pass chunks.
    """
    with torch.no_grad():
        return _transform()(pixels.to(torch.float32) / 255.0)


def scatter(images: npt.NDArray[np.uint8], *, chunk: int = _CHUNK) -> Iterator[npt.NDArray[np.float32]]:
    """Scattering features of uint8 (n, 28, 28) images (:func:`features_of_images`), in chunks of ``chunk``."""
    for start in range(0, images.shape[0], chunk):
        yield features_of_images(torch.from_numpy(np.array(images[start : start + chunk]))).numpy()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock beside ``path``: concurrent trial processes compute the cache once."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build_cache(path: Path, ordered_images: npt.NDArray[np.uint8]) -> None:
    """Write the features of ``ordered_images`` to ``path`` atomically (temporary file, then rename).

    The file is created mode 0600: it holds features of the protected images.
    """
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npy")
    partial.touch(mode=0o600)
    out = np.lib.format.open_memmap(
        partial, mode="w+", dtype=np.float32, shape=(ordered_images.shape[0], CHANNELS, SIDE, SIDE)
    )
    try:
        start = 0
        for block in scatter(ordered_images):
            out[start : start + block.shape[0]] = block
            start += block.shape[0]
        out.flush()
        del out
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def features(path: Path, ordered_images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """The cached features, computed first if absent; memory-mapped copy-on-write (shared, never written back)."""
    if not path.is_file():
        with _locked(path):
            if not path.is_file():
                _build_cache(path, ordered_images)
    found = np.load(path, mmap_mode="c")
    if found.shape != (ordered_images.shape[0], CHANNELS, SIDE, SIDE) or found.dtype != np.float32:
        raise ValueError(f"{path}: cached features have shape {found.shape}; delete the file to recompute it")
    return found  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def load() -> Splits:
    """Scattering features of the fixed train/validation carve and of the t10k test split."""
    raw = read_rows()
    train_labels, test_labels = raw.train_labels, raw.test_labels
    sizes = WORKLOAD.sizes
    blocks = split_indices()
    ordered = np.concatenate(
        [raw.train_images[blocks["train"]], raw.train_images[blocks["validation"]], raw.test_images]
    )
    table = torch.from_numpy(features(feature_cache_path(), ordered))
    n_train, n_validation = sizes.train, sizes.validation

    def labels(raw: npt.NDArray[np.generic]) -> torch.Tensor:
        return torch.from_numpy(raw.astype(np.int64))

    return Splits(
        train=Split(table[:n_train], labels(train_labels[blocks["train"]])),
        validation=Split(table[n_train : n_train + n_validation], labels(train_labels[blocks["validation"]])),
        test=Split(table[n_train + n_validation :], labels(test_labels)),
    )


class ScatterLinear(nn.Module):
    """Per-example GroupNorm (no learned or data statistics) → linear classifier on 81 × 7 × 7 features."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(GROUPS, CHANNELS, affine=False)
        self.classifier = nn.Linear(CHANNELS * SIDE * SIDE, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(inputs).flatten(1))  # type: ignore[no-any-return]


class ScatterCnn(nn.Module):
    """Per-example GroupNorm → conv 32 3×3 → tanh → maxpool 2 → fc 10: a small CNN on the scattering features.

    Tramèr & Boneh also train CNNs on scattering features; under DP-SGD at
    ε ≈ 3 they beat the linear model only on CIFAR-10, so ``linear`` stays
    the default.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(GROUPS, CHANNELS, affine=False)
        self.features = nn.Sequential(
            nn.Conv2d(CHANNELS, 32, kernel_size=3, padding=1),  # 7 → 7
            nn.Tanh(),
            nn.MaxPool2d(kernel_size=2),  # 7 → 3
        )
        self.classifier = nn.Linear(32 * 3 * 3, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.norm(inputs)).flatten(1))  # type: ignore[no-any-return]


def build_model(variant: str) -> nn.Module:
    """``linear`` (Tramèr–Boneh's ScatterNet + linear, the default) or ``cnn``."""
    classes = WORKLOAD.sizes.classes
    if variant == "linear":
        return ScatterLinear(classes)
    if variant == "cnn":
        return channels_last(ScatterCnn(classes))  # tunedp.workloads.layout: a faster private step on CPU
    raise ValueError(f"{WORKLOAD.name} has no model variant {variant!r}; known: linear, cnn")


if __name__ == "__main__":  # python -m tunedp.workloads.fashion_mnist_scatternet_torch: build the cache ahead
    print(f"building {feature_cache_path()} …", file=sys.stderr)
    load()
    print("done", file=sys.stderr)
