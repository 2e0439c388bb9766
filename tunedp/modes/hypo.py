"""``hypo``: adaptive proposals at nearly the price of random search (DP-HyPO, Wang et al., NeurIPS 2023).

- **shape** — K drawn as in ``random``/``release: best`` (truncated negative
  binomial), and DP-HyPO's bound for proposals whose density ratio to the
  prior stays within ``density_ratio`` (:mod:`tunedp.accounting.hypo`).
- **disclosure** — K and every trial but the released one stay hidden, as
  under ``release: best``.
- **run** — the driver draws K; a :class:`~tunedp.run.ray_backend.HypoSearcher`
  proposes each point from :mod:`tunedp.modes.hypo_proposal`'s bounded
  density given the finished trials' released scores (the metric Tune hands
  back, nothing else), so proposals adapt while the charge stays DP-HyPO's.
"""

from __future__ import annotations

from typing import Any

from tunedp.accounting.search_event import SearchShape
from tunedp.config import HypoSearch, SearchConfig
from tunedp.errors import CalibrationError
from tunedp.modes.base import SingleStageMode, register
from tunedp.planning.single_stage import SearchPlan
from tunedp.release.disclosure import Disclosure

__all__ = ["HypoMode"]


class HypoMode(SingleStageMode[HypoSearch]):
    """DP-HyPO; see the module docstring."""

    name = "hypo"
    settings_type = HypoSearch

    def shape(self, config: SearchConfig) -> SearchShape:
        search = self.settings(config)
        return SearchShape(
            mode="hypo",
            release="best",
            expected_trials=search.expected_trials,
            max_trials=None,
            count_shape=search.shape,
            density_ratio=search.density_ratio,
        )

    def plan(self, config: SearchConfig) -> SearchPlan:
        try:
            return super().plan(config)
        except CalibrationError as error:  # log(C/c) is charged whatever σ: name the knob
            raise CalibrationError(f"{error}; or lower search.density_ratio") from None

    def disclosure(self, plan: SearchPlan) -> Disclosure:
        return Disclosure(releases_all=False)

    def param_space(self, config: SearchConfig) -> dict[str, Any]:
        return {}  # the HypoSearcher draws every coordinate (the model variant too) itself

    def tune_config(self, plan: SearchPlan, trial_count: int, concurrency: int, sampler_seed: int) -> Any:
        from ray import tune

        from tunedp.modes.hypo_proposal import BoundedProposal
        from tunedp.run.ray_backend import METRIC, MODEL_KEY, HypoSearcher

        # Tune wraps the searcher in a ConcurrencyLimiter; the searcher itself fixes which
        # earlier trials each point learns from (by position, lagging by the concurrency).
        return tune.TuneConfig(
            metric=METRIC,
            mode="max",
            search_alg=HypoSearcher(
                BoundedProposal.of_config(plan.config, model_key=MODEL_KEY), seed=sampler_seed, lag=concurrency
            ),
            num_samples=trial_count,
            max_concurrent_trials=concurrency,
        )


register(HypoMode())
