"""The search-mode protocol (:class:`SearchMode`), its registry, and what single-stage and staged modes share.

A search mode is everything that differs between ``random``, ``adaptive``,
``grid``, ``hypo``, ``two_stage`` and ``public_proxy``; each is one module of
:mod:`tunedp.modes` holding one :class:`SearchMode`, registered under the
config's ``search.mode`` literal and found by :func:`search_mode`. A mode owns:

- its **shape** — how many trials run and what is released, which the charge
  assumes (:class:`~tunedp.accounting.search_event.SearchShape`);
- its **plan** — σ calibrated so the whole search fits its budget, reading no
  data: :class:`SingleStageMode` through
  :func:`~tunedp.planning.single_stage.calibrate_single_stage`,
  :class:`StagedMode` through :func:`~tunedp.planning.staged.calibrate_staged`;
- its **disclosure** rule — what may leave the driver
  (:class:`~tunedp.release.disclosure.Disclosure`; docs/architecture.md §4);
- its **run** — the trials of a charged plan: a single-stage mode's Tune
  configuration (:meth:`SingleStageMode.param_space`,
  :meth:`SingleStageMode.tune_config`), a staged mode's stages
  (:func:`tunedp.run.staged.run_stages`).

Ray, Tune and Optuna are imported only inside the functions that configure
Tune: importing a mode loads neither Ray nor torch. Every mode passes
:class:`tunedp.testing.SearchModeContract`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from tunedp.accounting.search_event import SearchShape
from tunedp.config import ChoiceParam, FixedParam, LogUniformParam, SearchConfig, StagedSearch, UniformParam
from tunedp.planning.single_stage import SearchPlan, TrialGeometry, calibrate_single_stage
from tunedp.planning.staged import StagedPlan, calibrate_staged
from tunedp.release.disclosure import Disclosure
from tunedp.release.records import TrialRecord
from tunedp.run.mode_run import RunContext, TrialsRun
from tunedp.workloads import DatasetSizes

if TYPE_CHECKING:
    from tunedp.run.resume import ResumeState

__all__ = [
    "SearchMode",
    "SingleStageMode",
    "StagedMode",
    "register",
    "registered_modes",
    "search_mode",
    "single_stage_mode",
    "tune_domain",
]

#: The ``search:`` section's model of a mode (``RandomSearch``, ``TwoStageSearch``, …).
S = TypeVar("S", bound=BaseModel)
#: A staged mode's model (``TwoStageSearch``, ``PublicProxySearch``).
ST = TypeVar("ST", bound=StagedSearch)
M = TypeVar("M", bound="SearchMode[Any]")

_MODES: dict[str, SearchMode[Any]] = {}


class SearchMode(ABC, Generic[S]):
    """One way of choosing, pricing, running and releasing a search's trials (see the module docstring)."""

    #: The config's ``search.mode`` literal this mode is registered under.
    name: ClassVar[str]
    #: The model of its ``search:`` section.
    settings_type: ClassVar[type[BaseModel]]
    #: Whether it runs a selection search, then one final run (:class:`~tunedp.planning.staged.StagedPlan`).
    staged: ClassVar[bool] = False

    def settings(self, config: SearchConfig) -> S:
        """``config.search``, as this mode's model (a config of another mode is a programming error)."""
        search = config.search
        if not isinstance(search, self.settings_type):
            raise TypeError(f"mode {self.name!r} was given a {search.mode!r} search")
        return search  # type: ignore[return-value]  # settings_type is S's class

    @abstractmethod
    def shape(self, config: SearchConfig) -> SearchShape:
        """How many trials run and what is released: the shape of the event the ledger is charged."""

    @abstractmethod
    def plan(self, config: SearchConfig) -> SearchPlan:
        """σ calibrated so the whole search fits ``config.budget``; reads no data."""

    @abstractmethod
    def disclosure(self, plan: SearchPlan) -> Disclosure:
        """What may leave the driver: every trial (a composition was charged) or the released one only (K hidden)."""

    @abstractmethod
    def run(self, plan: SearchPlan, context: RunContext) -> TrialsRun:
        """Run the charged ``plan``'s trials (the secret K is ``context.recorder.state.trial_count``)."""

    def check_resumable(self, state: ResumeState, output: Path) -> None:
        """Refuse (:class:`~tunedp.run.resume.ResumeError`) resuming ``output`` where it would not run as charged.

        Most modes resume anywhere: the finished trials are kept, the others run.
        """


def register(mode: M) -> M:
    """Add ``mode`` to the registry under its literal (each mode module calls this once)."""
    if mode.name in _MODES:
        raise ValueError(f"search mode {mode.name!r} is registered twice")
    _MODES[mode.name] = mode
    return mode


def search_mode(config: SearchConfig) -> SearchMode[Any]:
    """The mode of ``config``'s search (by its ``search.mode`` literal)."""
    return _MODES[config.search.mode]


def registered_modes() -> dict[str, SearchMode[Any]]:
    """Every registered mode by its literal."""
    return dict(_MODES)


def single_stage_mode(config: SearchConfig) -> SingleStageMode[Any]:
    """The mode of a single-stage search (a staged search's stage 1, or its final run)."""
    mode = search_mode(config)
    if not isinstance(mode, SingleStageMode):
        raise TypeError(f"search mode {mode.name!r} is staged; a stage runs a single-stage search")
    return mode


# ---------------------------------------------------------------------------- single-stage modes


class SingleStageMode(SearchMode[S]):
    """A mode whose trials are one Tune run: random, adaptive, grid, hypo.

    Subclasses give :meth:`shape`, :meth:`disclosure` and :meth:`tune_config`;
    :meth:`param_space` defaults to the space as declared (Tune samples it).
    """

    def plan(self, config: SearchConfig) -> SearchPlan:
        return calibrate_single_stage(config, self.shape)

    def param_space(self, config: SearchConfig) -> dict[str, Any]:
        """Tune's ``param_space``: each searched parameter's prior, and the model variant as a choice."""
        from ray import tune

        from tunedp.run.ray_backend import MODEL_KEY

        space = {name: tune_domain(param) for name, param in config.space.params.items()}
        if config.space.model is not None:
            space[MODEL_KEY] = tune.choice(list(config.space.model.values))
        return space

    @abstractmethod
    def tune_config(self, plan: SearchPlan, trial_count: int, concurrency: int, sampler_seed: int) -> Any:
        """The ``tune.TuneConfig`` that runs exactly the ``trial_count`` trials the charge assumed.

        ``concurrency`` trials run at once; ``sampler_seed`` seeds Tune's
        sampler (drawn from the search's generator). Whether workers are
        reused is the cluster's to say, not the mode's (:func:`tunedp.run.ray_backend.cluster.reuse_actors`).
        """

    def run(self, plan: SearchPlan, context: RunContext) -> TrialsRun:
        """The K trials on Ray Tune; a resumed search runs only those its first run did not finish."""
        from tunedp.run.ray_backend import run_trials  # Ray loads only once trials run

        previous = context.recorder.state.completed  # a resumed search's finished trials: never rerun
        remaining = context.recorder.state.trial_count - len(previous)
        chosen: list[TrialRecord | None] = [None]

        def select(new: Sequence[TrialRecord]) -> TrialRecord | None:
            chosen[0] = context.select([*previous, *new])  # the best of all K, whichever run finished it
            return chosen[0]

        new_records: tuple[TrialRecord, ...] = ()
        nodes: tuple[str, ...] = ()
        if remaining > 0:
            run = run_trials(
                plan,
                tune_hooks=self,
                trial_count=remaining,
                rng=context.rng,
                seed=context.seed,
                ray_address=context.ray_address,
                max_concurrent=context.max_concurrent,
                disclosure=context.disclosure,
                select=select,
                on_trial_done=context.on_trial_done,
                on_record=context.recorder.record,
            )
            best, nodes, new_records = run.best, run.nodes, run.records
        else:
            best = select([])
        kept = [best if best is not None and r is chosen[0] else replace(r, checkpoint_path=None) for r in previous]
        return TrialsRun(records=(*kept, *new_records), best=best, nodes=nodes)


def tune_domain(param: Any) -> Any:
    """Tune's domain of one parameter's prior (a fixed value is a constant)."""
    from ray import tune

    if isinstance(param, LogUniformParam):
        return tune.loguniform(param.low, param.high)
    if isinstance(param, UniformParam):
        return tune.uniform(param.low, param.high)
    if isinstance(param, ChoiceParam):
        return tune.choice(list(param.values))
    assert isinstance(param, FixedParam)
    return param.value


# ---------------------------------------------------------------------------- staged modes


class StagedMode(SearchMode[ST]):
    """A selection search (stage 1), then ONE final run at the transferred point: two_stage, public_proxy.

    Charged as one event and released as one run: stage 1's K, trials and
    scores never leave the driver. Subclasses say how stage 1 is configured
    (:meth:`stage1_config`) and what share of the budget it is charged
    (:meth:`stage1_share`).
    """

    staged = True

    def shape(self, config: SearchConfig) -> SearchShape:
        """One released run; its stage-1 search has its own shape (that search's mode's)."""
        return SearchShape(mode=self.name, release="best", expected_trials=1, max_trials=1)  # type: ignore[arg-type]

    @abstractmethod
    def stage1_config(self, config: SearchConfig, sizes: DatasetSizes, geometry: TrialGeometry) -> SearchConfig:
        """The stage-1 search as an ordinary single-stage config (``geometry``: the final run's)."""

    @abstractmethod
    def stage1_share(self, settings: ST) -> float | None:
        """Stage 1's share of the budget; ``None`` when it reads only public data (charged nothing)."""

    def plan(self, config: SearchConfig) -> StagedPlan:
        settings = self.settings(config)
        return calibrate_staged(
            config,
            settings,
            shape=self.shape(config),
            stage1_config=self.stage1_config,
            stage1_shape=lambda config1: search_mode(config1).shape(config1),
            stage1_share=self.stage1_share(settings),
        )

    def disclosure(self, plan: SearchPlan) -> Disclosure:
        """Only the final run leaves: stage 1's K and trials stay hidden, as under ``release: best``."""
        return Disclosure(releases_all=False)

    def run(self, plan: SearchPlan, context: RunContext) -> TrialsRun:
        """Stage 1 (its mode's Tune configuration), the selection, then the final run (a one-point grid)."""
        from tunedp.run.staged import run_stages  # Ray loads only once trials run

        assert isinstance(plan, StagedPlan)
        return run_stages(
            plan,
            tune_hooks_of=single_stage_mode,
            rng=context.rng,
            seed=context.seed,
            ray_address=context.ray_address,
            max_concurrent=context.max_concurrent,
            select=context.select,
            recorder=context.recorder,
        )
