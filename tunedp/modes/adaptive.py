"""``adaptive``: Optuna TPE proposes each point from the noisy scores of the trials before it.

- **shape** — the adaptive composition of ``max_trials`` trials at full
  planned length, with every score release; early stopping (ASHA) saves
  time, never budget.
- **disclosure** — every trial (a composition was charged).
- **run** — ``OptunaSearch`` with a seeded TPE sampler (``max_concurrent_trials``
  set, as Ray otherwise drops to one trial at a time), optionally ASHA, whose
  rungs read only the released scores.
"""

from __future__ import annotations

from typing import Any

from tunedp.accounting.search_event import SearchShape
from tunedp.config import AdaptiveSearch, SearchConfig
from tunedp.modes.base import SingleStageMode, register
from tunedp.planning.single_stage import SearchPlan
from tunedp.release.disclosure import Disclosure

__all__ = ["AdaptiveMode"]


class AdaptiveMode(SingleStageMode[AdaptiveSearch]):
    """Optuna TPE (optionally ASHA); see the module docstring."""

    name = "adaptive"
    settings_type = AdaptiveSearch

    def shape(self, config: SearchConfig) -> SearchShape:
        trials = self.settings(config).max_trials
        return SearchShape(mode="adaptive", release="all", expected_trials=trials, max_trials=trials)

    def disclosure(self, plan: SearchPlan) -> Disclosure:
        return Disclosure(releases_all=True)

    def tune_config(self, plan: SearchPlan, trial_count: int, concurrency: int, sampler_seed: int) -> Any:
        import optuna
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.optuna import OptunaSearch

        from tunedp.run.ray_backend import METRIC

        search = self.settings(plan.config)
        evaluations = plan.config.training.evaluations
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        searcher = OptunaSearch(
            metric=METRIC,
            mode="max",
            sampler=optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=search.startup_trials),
        )
        scheduler = None
        if search.scheduler == "asha":
            scheduler = ASHAScheduler(
                time_attr="evaluation",
                max_t=evaluations,
                grace_period=min(search.grace_period, evaluations),
                reduction_factor=search.reduction_factor,
            )
        return tune.TuneConfig(
            metric=METRIC,
            mode="max",
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=trial_count,
            max_concurrent_trials=concurrency,
        )


register(AdaptiveMode())
