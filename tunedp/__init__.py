"""tunedp: differentially private hyperparameter tuning charged against one global privacy budget.

The Python entry points::

    import tunedp
    config = tunedp.load_config("search_spaces/example.yaml")
    plan = tunedp.plan_search(config)          # σ and the search's ε; reads no data
    outcome = tunedp.search(config)            # charge the ledger, run on Ray Tune, release the best

plus the workload contract (``tunedp.Workload``, ``tunedp.DatasetSizes``; see
:mod:`tunedp.workloads`), the private optimizers in :mod:`tunedp.optim` and the accounting in
:mod:`tunedp.accounting`. Names resolve lazily, so ``import tunedp`` stays light
(which layer loads which heavy library is asserted by ``tests/integration/test_layers.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what editors and mypy see; at run time each name loads on first use (_LAZY)
    from tunedp.config import SearchConfig, load_config, parse_config
    from tunedp.ledger.sqlite import PrivacyLedger
    from tunedp.observe.protocol import SearchObserver, SearchOutcome
    from tunedp.planning import plan_search
    from tunedp.release.report import SearchReport
    from tunedp.run.driver import SearchError, search
    from tunedp.workloads.contract import DatasetSizes, Split, Splits, Workload
    from tunedp.workloads.splits import carve

__all__ = [
    "DatasetSizes",
    "PrivacyLedger",
    "SearchConfig",
    "SearchError",
    "SearchObserver",
    "SearchOutcome",
    "SearchReport",
    "Split",
    "Splits",
    "Workload",
    "carve",
    "load_config",
    "parse_config",
    "plan_search",
    "search",
]

__version__ = "0.1.0"

_LAZY = {
    "PrivacyLedger": ("tunedp.ledger.sqlite", "PrivacyLedger"),
    "SearchConfig": ("tunedp.config", "SearchConfig"),
    "load_config": ("tunedp.config", "load_config"),
    "parse_config": ("tunedp.config", "parse_config"),
    "plan_search": ("tunedp.planning", "plan_search"),
    "search": ("tunedp.run.driver", "search"),
    "SearchError": ("tunedp.run.driver", "SearchError"),
    "SearchObserver": ("tunedp.observe.protocol", "SearchObserver"),
    "SearchOutcome": ("tunedp.observe.protocol", "SearchOutcome"),
    "SearchReport": ("tunedp.release.report", "SearchReport"),
    "Workload": ("tunedp.workloads.contract", "Workload"),
    "DatasetSizes": ("tunedp.workloads.contract", "DatasetSizes"),
    "Split": ("tunedp.workloads.contract", "Split"),
    "Splits": ("tunedp.workloads.contract", "Splits"),
    "carve": ("tunedp.workloads.splits", "carve"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'tunedp' has no attribute {name!r}")
