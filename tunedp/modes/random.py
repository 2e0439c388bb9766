"""``random``: a random number of trials K (Papernot & Steinke 2022), each point drawn from the prior.

- **shape** — ``release: best``: repeat-and-select over K's distribution
  (truncated negative binomial, or Poisson), K uncapped; ``release: all``:
  the composition of ``max_trials`` trials (K drawn from the same
  distribution, then capped: composing fewer never costs more).
- **disclosure** — ``release: best`` hides K and every trial but the released
  one (the bound assumes K random *and unseen*); ``release: all`` shows every trial.
- **run** — the driver draws K; Tune's ``BasicVariantGenerator`` draws K
  points i.i.d. from the prior.
"""

from __future__ import annotations

from typing import Any

from tunedp.accounting.search_event import SearchShape
from tunedp.config import RandomSearch, SearchConfig
from tunedp.modes.base import SingleStageMode, register
from tunedp.planning.single_stage import SearchPlan
from tunedp.release.disclosure import Disclosure

__all__ = ["RandomMode"]


class RandomMode(SingleStageMode[RandomSearch]):
    """Random search; see the module docstring."""

    name = "random"
    settings_type = RandomSearch

    def shape(self, config: SearchConfig) -> SearchShape:
        search = self.settings(config)
        return SearchShape(
            mode="random",
            release=search.release,
            expected_trials=search.expected_trials,
            max_trials=search.max_trials if search.release == "all" else None,
            count_shape=search.accountant_shape,
        )

    def disclosure(self, plan: SearchPlan) -> Disclosure:
        return Disclosure(releases_all=self.settings(plan.config).release == "all")

    def tune_config(self, plan: SearchPlan, trial_count: int, concurrency: int, sampler_seed: int) -> Any:
        from ray import tune
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # Reusing trial actors saves a Python start, a torch import and a data
        # load per trial: most of a short trial's overhead.
        return tune.TuneConfig(
            # Tune ignores max_concurrent_trials for a BasicVariantGenerator; it
            # takes its own limit.
            search_alg=BasicVariantGenerator(random_state=sampler_seed, max_concurrent=concurrency),
            num_samples=trial_count,
        )


register(RandomMode())
