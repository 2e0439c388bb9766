"""tunedp: differentially private hyperparameter tuning charged against one global privacy budget.

The Python entry points::

    import tunedp
    config = tunedp.load_config("search_spaces/example.yaml")
    plan = tunedp.plan_search(config)          # σ and the search's ε; reads no data
    outcome = tunedp.search(config)            # charge the ledger, run on Ray Tune, release the best

plus the private optimizers in :mod:`tunedp.optim` and the accounting in
:mod:`tunedp.accounting`. Names resolve lazily, so ``import tunedp`` imports
neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "PrivacyLedger",
    "SearchConfig",
    "load_config",
    "parse_config",
    "plan_search",
    "search",
]

__version__ = "0.1.0"

_LAZY = {
    "PrivacyLedger": ("tunedp.accounting.ledger", "PrivacyLedger"),
    "SearchConfig": ("tunedp.config", "SearchConfig"),
    "load_config": ("tunedp.config", "load_config"),
    "parse_config": ("tunedp.config", "parse_config"),
    "plan_search": ("tunedp.plan", "plan_search"),
}


def __getattr__(name: str) -> Any:
    if name == "search":
        # The driver module itself is callable (``tunedp.search(config)``): a
        # package attribute named like a submodule is replaced by the module
        # as soon as anything imports ``tunedp.search``, so the module is the
        # one object both spellings can agree on.
        return importlib.import_module("tunedp.search")
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'tunedp' has no attribute {name!r}")
