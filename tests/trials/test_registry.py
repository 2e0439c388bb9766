"""The workload registry and declared sizes: importable by the accounting without torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trials import DECLARED_SIZES, WORKLOADS, get_workload


def test_registry_and_sizes_do_not_import_torch() -> None:
    code = "import sys, trials, trials.sizes; assert not {'torch', 'numpy'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_registered_workload_resolves_and_is_declared() -> None:
    assert set(WORKLOADS) == set(DECLARED_SIZES)
    for name in WORKLOADS:
        workload = get_workload(name)
        assert workload.name == name
        assert workload.dataset == DECLARED_SIZES[name]["dataset"]


def test_declared_sizes_are_positive_and_consistent() -> None:
    for name, sizes in DECLARED_SIZES.items():
        assert set(sizes) == {"dataset", "train", "validation", "test", "classes"}, name
        assert min(sizes["train"], sizes["validation"], sizes["test"]) > 0
        assert sizes["classes"] >= 2


def test_unknown_workload_is_a_one_line_error_listing_the_known_ones() -> None:
    with pytest.raises(ValueError) as error:
        get_workload("cifar10")
    message = str(error.value)
    assert "\n" not in message
    assert "'cifar10'" in message and "adult, digits, fashion_mnist" in message
