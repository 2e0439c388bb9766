"""Planning any search: the search's mode prices it (:mod:`tunedp.modes`) with the planners here.

``tunedp.plan_search``, the driver and ``tunedp plan`` call :func:`plan_search`:
it asks the config's search mode for its plan, and every mode plans with
:func:`~tunedp.planning.single_stage.calibrate_single_stage` (random,
adaptive, grid, hypo) or :func:`~tunedp.planning.staged.calibrate_staged`
(two_stage, public_proxy). Neither planner imports a mode or this module,
and this module imports the modes only when asked for a plan (the modes
import the planners, so ``import tunedp.modes`` runs this file first).

This module imports neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

from tunedp.config import ConfigError, SearchConfig
from tunedp.planning.single_stage import SearchPlan

__all__ = ["plan_search", "plan_single_stage"]


def plan_search(config: SearchConfig) -> SearchPlan:
    """Calibrate the search ``config`` describes so it fits ``config.budget``; reads no data."""
    from tunedp.modes import search_mode  # the modes import the planners below this package

    return search_mode(config).plan(config)


def plan_single_stage(config: SearchConfig) -> SearchPlan:
    """:func:`plan_search` for a single-stage search; a staged one is refused in one line.

    The audit's planner: it audits one trial of the search's plan, which a
    staged search (two trial kinds) does not have.
    """
    from tunedp.modes import search_mode

    mode = search_mode(config)
    if mode.staged:
        raise ConfigError(
            f"search.mode: {config.search.mode} is a staged search; plan it with tunedp.plan_search "
            "(tunedp.planning), which plans every mode"
        )
    return mode.plan(config)
