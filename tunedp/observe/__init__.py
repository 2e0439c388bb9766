"""Observing a search: who hears about it, within the disclosure rule.

The stage after the driver: it is handed only what :mod:`tunedp.release.disclosure`
lets leave the driver. :mod:`~tunedp.observe.protocol` (the ``SearchObserver``
hooks and ``SearchOutcome``), :mod:`~tunedp.observe.console` (the rich progress
display), :mod:`~tunedp.observe.lines` (plain progress lines for logs), MLflow
(:mod:`~tunedp.observe.mlflow_tracker`: the ``MlflowTracker`` observer;
:mod:`~tunedp.observe.mlflow_records`: what it may log, under the rule;
:mod:`~tunedp.observe.mlflow_times`: the public times it logs;
:mod:`~tunedp.observe.mlflow_model`: the released model as a pyfunc;
:mod:`~tunedp.observe.mlflow_registry`: the Model Registry;
:mod:`~tunedp.observe.mlflow_store`: where the store lives),
:mod:`~tunedp.observe.dashboard` (the server of ``tunedp ui``), :mod:`~tunedp.observe.plots`
and :mod:`~tunedp.observe.budget_page` (the ledger as a page).

May import: ``tunedp.release``, ``tunedp.planning``, ``tunedp.config``, ``tunedp.accounting``,
``tunedp.ledger``, ``tunedp.errors`` and the execution layer's process helpers (the dashboard's
``tunedp.run.interrupts``); never the driver (it calls observers, not the reverse) nor a search mode
(docs/architecture.md §2).
Only the ``mlflow_*`` modules load MLflow (``mlflow_store`` and ``mlflow_times`` none).
``ConsoleProgress``, ``MlflowTracker`` and ``SearchObserver`` are re-exported
here, lazily: ``import tunedp.observe`` loads neither MLflow nor rich.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunedp.observe.console import ConsoleProgress
    from tunedp.observe.mlflow_tracker import MlflowTracker
    from tunedp.observe.protocol import SearchObserver

__all__ = ["ConsoleProgress", "MlflowTracker", "SearchObserver"]

_LAZY = {
    "ConsoleProgress": ("tunedp.observe.console", "ConsoleProgress"),
    "MlflowTracker": ("tunedp.observe.mlflow_tracker", "MlflowTracker"),
    "SearchObserver": ("tunedp.observe.protocol", "SearchObserver"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'tunedp.observe' has no attribute {name!r}")
