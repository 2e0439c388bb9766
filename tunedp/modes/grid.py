"""``grid``: every point of the cartesian product of the ``choice`` parameters, with every searched variant.

- **shape** — the composition of every grid point's trial (the grid's size
  times the number of model variants), each with its score releases.
- **disclosure** — every trial (a composition was charged).
- **run** — Tune's ``grid_search`` over each axis, each point run once.
  A grid search with finished trials cannot be resumed: Tune would run every
  point again, more trials than were charged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunedp.accounting.search_event import SearchShape
from tunedp.config import GridSearch, SearchConfig
from tunedp.modes.base import SingleStageMode, register
from tunedp.planning.single_stage import SearchPlan, grid_points
from tunedp.release.disclosure import Disclosure

if TYPE_CHECKING:
    from tunedp.run.resume import ResumeState

__all__ = ["GridMode"]


class GridMode(SingleStageMode[GridSearch]):
    """Grid search; see the module docstring."""

    name = "grid"
    settings_type = GridSearch

    def shape(self, config: SearchConfig) -> SearchShape:
        count = len(grid_points(config)) * len(config.variants)  # Tune runs every point with every variant
        return SearchShape(mode="grid", release="all", expected_trials=count, max_trials=count)

    def disclosure(self, plan: SearchPlan) -> Disclosure:
        return Disclosure(releases_all=True)

    def param_space(self, config: SearchConfig) -> dict[str, Any]:
        from ray import tune

        from tunedp.run.ray_backend import MODEL_KEY

        space = {name: tune.grid_search(values) for name, values in _grid_axes(config).items()}
        if config.space.model is not None:
            space[MODEL_KEY] = tune.grid_search(list(config.space.model.values))
        return space

    def tune_config(self, plan: SearchPlan, trial_count: int, concurrency: int, sampler_seed: int) -> Any:
        from ray import tune

        return tune.TuneConfig(num_samples=1, max_concurrent_trials=concurrency)

    def check_resumable(self, state: ResumeState, output: Path) -> None:
        from tunedp.run.resume import ResumeError

        if state.completed:
            # Tune's grid runs every point again: more trials than were charged. Refused, not approximated.
            raise ResumeError(
                f"--resume: grid searches cannot be resumed yet; abandon it with `tunedp search --abandon {output}`"
            )


def _grid_axes(config: SearchConfig) -> dict[str, list[float]]:
    """Each parameter's values, in the order the grid lists them."""
    axes: dict[str, list[float]] = {}
    for point in grid_points(config):
        for name, value in point.items():
            if value not in axes.setdefault(name, []):
                axes[name].append(value)
    return axes


register(GridMode())
