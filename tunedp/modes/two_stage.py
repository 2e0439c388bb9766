"""``two_stage``: a private search of short trials on a share of the budget, then ONE full-length run.

- **shape** — one released run; the charge is ``ComposedDpEvent([stage-1
  search, stage-2 run])``, stage 1 priced by its own mode (random or adaptive)
  at ``stage1_budget_share`` of the budget.
- **disclosure** — only the final model and its hyperparameters leave;
  stage 1's K, trials and scores stay inside, as under ``release: best``.
- **run** — :func:`tunedp.run.staged.run_stages`: stage 1 on the protected data
  (trials ``stage1_training_fraction`` as long), the selected learning rate
  transferred, then the final run at σ₂.
"""

from __future__ import annotations

from tunedp.config import SearchConfig, TwoStageSearch
from tunedp.modes.base import StagedMode, register
from tunedp.planning.single_stage import TrialGeometry
from tunedp.planning.staged import stage1_search_data
from tunedp.workloads import DatasetSizes

__all__ = ["TwoStageMode"]


class TwoStageMode(StagedMode[TwoStageSearch]):
    """Two-stage search; see the module docstring."""

    name = "two_stage"
    settings_type = TwoStageSearch

    def stage1_config(self, config: SearchConfig, sizes: DatasetSizes, geometry: TrialGeometry) -> SearchConfig:
        data = stage1_search_data(config, self.settings(config), geometry)
        return SearchConfig.model_validate(data, strict=False)

    def stage1_share(self, settings: TwoStageSearch) -> float | None:
        return settings.stage1_budget_share


register(TwoStageMode())
