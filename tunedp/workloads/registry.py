"""Resolving the workload a config names: a built-in, an entry point, an import path, or a CSV table.

``workload:`` in a config is one of

* a built-in name (``digits``, ``adult``, ``fashion_mnist``, ``fashion_mnist_scatternet``,
  ``mnist_public``, ``mnist_public_scatternet``);
* the name of an entry point in the group ``tunedp.workloads`` (a package
  declares ``[project.entry-points."tunedp.workloads"] blobs = "my_pkg.workload:WORKLOAD"``);
* an import path ``my_pkg.my_module:WORKLOAD``;
* a mapping ``{kind: csv, ...}`` (:mod:`tunedp.workloads.csv_table`).

The driver and every Ray worker resolve the *same reference* with this one
function, so a worker can never train a different workload than the one the
driver priced. A custom module must be importable on every node (installed
in the environment the workers run, or on their ``PYTHONPATH``);
:func:`resolve_workload` runs in the driver at planning, so an unimportable
module fails with one line before anything is charged.

Built-in names are reserved: they resolve to tunedp's own modules even if an
installed package registers an entry point of the same name, so no package
can silently replace ``digits`` (and its ledger's dataset) with other data.
They are also registered as entry points in ``pyproject.toml`` so that tools
listing the group see them.

Resolving imports the declaring module only: built-in declarations are
torch-free, so planning never loads torch for them.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import re
from collections.abc import Mapping

from tunedp.errors import ConfigError
from tunedp.workloads.contract import Workload
from tunedp.workloads.csv_table import CsvWorkloadSpec, csv_workload

__all__ = [
    "BUILTIN_WORKLOADS",
    "ENTRY_POINT_GROUP",
    "WorkloadReference",
    "available_workloads",
    "reference_label",
    "resolve_workload",
]

ENTRY_POINT_GROUP = "tunedp.workloads"

BUILTIN_WORKLOADS: Mapping[str, str] = {
    "adult": "tunedp.workloads.adult:WORKLOAD",
    "digits": "tunedp.workloads.digits:WORKLOAD",
    "fashion_mnist": "tunedp.workloads.fashion_mnist:WORKLOAD",
    "fashion_mnist_scatternet": "tunedp.workloads.fashion_mnist_scatternet:WORKLOAD",
    "mnist_public": "tunedp.workloads.mnist_public:WORKLOAD",
    "mnist_public_scatternet": "tunedp.workloads.mnist_public_scatternet:WORKLOAD",
}
"""Built-in name → the import path of its torch-free declaration."""

WorkloadReference = str | CsvWorkloadSpec
"""What a config's ``workload:`` holds, and what reaches every Ray worker unchanged."""

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_HOW = (
    "name a built-in ({builtins}), an entry point in group tunedp.workloads, "
    "an import path such as my_pkg.my_module:WORKLOAD, or {{kind: csv, ...}}"
)


def reference_label(reference: WorkloadReference) -> str:
    """A short public name of the reference (reports, the ledger label, the plan's title)."""
    return reference.label_text() if isinstance(reference, CsvWorkloadSpec) else reference


def available_workloads() -> dict[str, str]:
    """Name → import path of every workload reachable by name: built-ins, then entry points."""
    found = dict(BUILTIN_WORKLOADS)
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry.value)
    return found


def resolve_workload(reference: WorkloadReference) -> Workload:
    """The :class:`Workload` a config's ``workload:`` names (one-line ConfigError otherwise)."""
    if isinstance(reference, CsvWorkloadSpec):
        return _resolve_csv(reference.model_dump_json())
    return _resolve_named(reference)


@functools.lru_cache(maxsize=8)
def _resolve_csv(spec_json: str) -> Workload:
    return csv_workload(CsvWorkloadSpec.model_validate_json(spec_json))


@functools.lru_cache(maxsize=64)
def _resolve_named(reference: str) -> Workload:
    if reference in BUILTIN_WORKLOADS:
        return _load_path(BUILTIN_WORKLOADS[reference], reference)
    if ":" in reference:
        if not _IMPORT_PATH.match(reference):
            raise ConfigError(f"workload: {reference!r} is not an import path of the form my_pkg.my_module:WORKLOAD")
        return _load_path(reference, reference)
    entries = [e for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if e.name == reference]
    if not entries:
        how = _HOW.format(builtins=", ".join(sorted(BUILTIN_WORKLOADS)))
        raise ConfigError(f"workload: unknown workload {reference!r}; {how}")
    if len({e.value for e in entries}) > 1:
        raise ConfigError(
            f"workload: {len(entries)} installed packages register entry point {reference!r} in group "
            f"{ENTRY_POINT_GROUP} with different targets; name the import path instead"
        )
    return _load_path(entries[0].value, reference)


def _load_path(path: str, reference: str) -> Workload:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"workload: cannot import {module_name!r} for {reference!r} ({type(error).__name__}: {error}); "
            "install its package (on every Ray node) or put it on PYTHONPATH"
        ) from None
    target: object = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
    if not isinstance(target, Workload):
        raise ConfigError(
            f"workload: {path!r} is {type(target).__name__}, not a tunedp.Workload; "
            "define WORKLOAD = tunedp.Workload(...) in that module"
        )
    return target
