"""Planning any search: single-stage modes (:mod:`~tunedp.planning.single_stage`), staged ones (:mod:`~.staged`).

``tunedp.plan_search``, the driver and ``tunedp plan`` call :func:`plan_search`
here; it sits above both planners so neither imports the other's caller.

This module imports neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

from tunedp.config import PublicProxySearch, SearchConfig, TwoStageSearch
from tunedp.planning import single_stage
from tunedp.planning.single_stage import SearchPlan
from tunedp.planning.staged import plan_staged

__all__ = ["plan_search"]


def plan_search(config: SearchConfig) -> SearchPlan:
    """Calibrate the search ``config`` describes so it fits ``config.budget``; reads no data."""
    if isinstance(config.search, TwoStageSearch | PublicProxySearch):
        return plan_staged(config)
    return single_stage.plan_single_stage(config)
