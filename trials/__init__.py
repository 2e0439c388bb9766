"""The registry of workloads a trial can train: name → module, imported only when asked for.

The registry is plain data so that planning (``tunedp plan``, the accounting,
config validation) can list and check workload names without importing torch;
:func:`get_workload` imports the one module it needs. Declared split sizes
live in :mod:`trials.sizes`, equally torch-free.

Adding a workload: write ``trials/<name>.py`` defining ``WORKLOAD`` (a
:class:`trials.base.Workload`), declare its sizes in ``trials/sizes.py`` and
add one line to :data:`WORKLOADS`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from trials.sizes import DECLARED_SIZES, DeclaredSizes

if TYPE_CHECKING:
    from trials.base import Workload

__all__ = ["DECLARED_SIZES", "WORKLOADS", "DeclaredSizes", "get_workload"]

WORKLOADS: dict[str, str] = {
    "adult": "trials.adult",
    "digits": "trials.digits",
    "fashion_mnist": "trials.fashion_mnist",
    "mnist_public": "trials.mnist_public",
}
"""Workload name → the module that defines its ``WORKLOAD``."""


def get_workload(name: str) -> Workload:
    """The workload called ``name``; imports its module (and torch) on first use."""
    if name not in WORKLOADS:
        raise ValueError(f"Unknown workload {name!r}; known workloads: {', '.join(sorted(WORKLOADS))}")
    from trials.base import Workload  # deferred: pulls in torch

    workload = getattr(importlib.import_module(WORKLOADS[name]), "WORKLOAD", None)
    if not isinstance(workload, Workload) or workload.name != name:
        raise TypeError(f"{WORKLOADS[name]} does not define WORKLOAD as the Workload {name!r}")
    return workload
