"""Fashion-MNIST on ScatterNet features: cache, per-example normalisation, one ledger with the image workload.

The tests that read every feature need the 1.1 GB cache (built on a
machine's first search, ~2.5 min on 2 idle cores): they run where it exists
and skip, saying how to build it, where it does not (a fresh CI machine),
so the default suite stays within its time budget. Everything else here
runs everywhere on real images.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tunedp.ledger.binding import protected_fingerprint
from tunedp.testing import WorkloadContract, load_or_skip
from tunedp.workloads import fashion_mnist, fashion_mnist_scatternet, fashion_mnist_torch, resolve_workload
from tunedp.workloads.fashion_mnist_scatternet_torch import CACHE_DIR_ENV, feature_cache_path, features, scatter
from tunedp.workloads.files import DatasetNotFoundError, fashion_mnist_files, read_idx

REPO = Path(__file__).resolve().parents[3]


def _cache_absent() -> str | None:
    try:
        path = feature_cache_path()
    except DatasetNotFoundError as error:
        return str(error)
    if not path.is_file():
        return f"feature cache {path} absent; build it with `python -m tunedp.workloads.fashion_mnist_scatternet_torch`"
    return None


needs_cache = pytest.mark.skipif(_cache_absent() is not None, reason=str(_cache_absent()))


@needs_cache
class TestFashionMnistScatterNet(WorkloadContract):
    reference = "fashion_mnist_scatternet"


@needs_cache
def test_cached_features_are_the_transform_of_the_right_rows() -> None:
    """Recompute the features of a few rows of each split from the raw images; labels are the image workload's."""
    splits = load_or_skip(fashion_mnist_scatternet.WORKLOAD)
    images = load_or_skip(fashion_mnist.WORKLOAD)
    for name in ("train", "validation", "test"):
        assert torch.equal(getattr(splits, name).targets, getattr(images, name).targets)
    files = fashion_mnist_files()
    train_images, test_images = read_idx(files.train_images), read_idx(files.test_images)
    blocks = fashion_mnist_torch.split_indices()
    for split, raw, rows in (
        (splits.train, train_images[blocks["train"][[0, 777, 54999]]], [0, 777, 54999]),
        (splits.validation, train_images[blocks["validation"][[0, 4999]]], [0, 4999]),
        (splits.test, test_images[[0, 9999]], [0, 9999]),
    ):
        expected = torch.from_numpy(next(scatter(raw)))
        torch.testing.assert_close(split.inputs[rows], expected, rtol=1e-5, atol=1e-6)


def test_one_ledger_fingerprint_for_the_images_and_their_features() -> None:
    """The features are a fixed function of the images: both workloads identify the same protected rows."""
    try:
        fashion_mnist_files()
    except DatasetNotFoundError as error:
        pytest.skip(str(error))
    assert fashion_mnist_scatternet.WORKLOAD.dataset == fashion_mnist.WORKLOAD.dataset == "fashion_mnist"
    assert fashion_mnist_scatternet.WORKLOAD.fingerprint_workload == "fashion_mnist"
    if _cache_absent() is None:  # the fingerprint of the scatternet workload also loads (builds) its features
        key = bytes(range(32))
        assert protected_fingerprint("fashion_mnist_scatternet", key) == protected_fingerprint("fashion_mnist", key)


def test_cache_is_built_once_reused_private_and_copy_on_write(tmp_path: Path) -> None:
    images = (np.arange(5 * 28 * 28) % 251).astype(np.uint8).reshape(5, 28, 28)
    path = tmp_path / "cache" / "features.npy"
    first = features(path, images)
    assert first.shape == (5, 81, 7, 7) and first.dtype == np.float32
    assert path.stat().st_mode & 0o077 == 0, "the cache holds features of protected images: owner-only"
    stamp = path.stat().st_mtime_ns
    second = features(path, images)
    assert path.stat().st_mtime_ns == stamp, "the cache was rebuilt"
    np.testing.assert_array_equal(first, second)
    second[0] = 0.0  # copy-on-write: writing to a loaded array never changes the file
    np.testing.assert_array_equal(np.load(path)[0], first[0])
    assert not list(path.parent.glob("*.partial.npy"))


def test_a_cache_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "features.npy"
    np.save(path, np.zeros((3, 81, 7, 7), np.float32))
    with pytest.raises(ValueError, match="delete the file to recompute it") as error:
        features(path, np.zeros((4, 28, 28), np.uint8))
    assert "\n" not in str(error.value)


def test_cache_name_follows_the_file_contents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        files = fashion_mnist_files()
    except DatasetNotFoundError as error:
        pytest.skip(str(error))
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    original = feature_cache_path()
    assert original.parent == tmp_path / "cache"
    copy = tmp_path / "data"
    copy.mkdir()
    for path in (files.train_images, files.train_labels, files.test_images, files.test_labels):
        shutil.copy(path, copy / path.name)
    monkeypatch.setenv("TUNEDP_FASHION_MNIST_DIR", str(copy))
    assert feature_cache_path() == original
    labels = copy / files.test_labels.name
    data = bytearray(labels.read_bytes())
    data[-1] ^= 1
    labels.write_bytes(bytes(data))
    assert feature_cache_path() != original


@pytest.mark.parametrize("variant", ["linear", "cnn"])
def test_normalisation_is_per_example_and_reads_no_data_statistic(variant: str) -> None:
    """GroupNorm without affine parameters or buffers: an example's output ignores its batch mates."""
    torch.manual_seed(0)
    model = fashion_mnist_scatternet.WORKLOAD.build_model(variant)
    norm = model.get_submodule("norm")
    assert not list(norm.parameters()) and not list(norm.buffers())
    inputs = torch.randn(5, 81, 7, 7) * 3 + 1
    together = model(inputs)
    for i in range(5):
        torch.testing.assert_close(model(inputs[i : i + 1])[0], together[i])


def test_shipped_config_plans_on_the_fashion_mnist_ledger() -> None:
    """The search of the shipped config charges the Fashion-MNIST ledger (the workload's declared dataset)."""
    import tunedp

    config = tunedp.load_config(REPO / "search_spaces" / "fashion_mnist_scatternet.yaml")
    assert resolve_workload(config.workload).dataset == "fashion_mnist"
    assert config.model == "linear"


def test_a_transform_workload_must_match_its_source_declaration() -> None:
    """A fingerprint vouches only for the rows it describes: a mismatched source is refused in one line."""
    from tunedp.errors import DataMismatchError

    with pytest.raises(DataMismatchError, match="fingerprint_workload 'adult' must declare the same") as error:
        protected_fingerprint("workload_fixtures:DIGITS_CLAIMING_ADULT_ROWS", bytes(32))
    assert "\n" not in str(error.value)
