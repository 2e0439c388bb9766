"""Planning: config → calibrated σ → the search's DpEvent and every figure of its cost.

A plan reads no data. It needs only the sizes the workload *declares*
(:class:`tunedp.workloads.DatasetSizes`, resolved torch-free), so ``tunedp plan`` is instant and the ledger can be
charged before any trial touches the data. The same :class:`SearchPlan` later
produces each trial's :class:`~tunedp.accounting.trial_event.TrialPlan`, so what the
optimizer runs and what the ledger was charged are derived from one object.

This module imports neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from dp_accounting import dp_event

from tunedp.accounting.calibration import Calibration, calibrate_noise_multiplier
from tunedp.accounting.calibration_memo import user_memo
from tunedp.accounting.epsilon import RDP_ORDERS, pld_epsilon, rdp_epsilon
from tunedp.accounting.schedule import noise_segments
from tunedp.accounting.search_event import SearchShape, naive_event, search_event, tnb_gamma
from tunedp.accounting.trial_event import TrialPlan
from tunedp.config import ChoiceParam, ConfigError, FixedParam, PrivateValidation, SearchConfig
from tunedp.workloads.contract import DatasetSizes, Workload
from tunedp.workloads.registry import resolve_workload

__all__ = [
    "PlanFigures",
    "SearchPlan",
    "TrialGeometry",
    "calibrate_single_stage",
    "check_public_validation",
    "grid_points",
    "no_trial_note",
    "trial_geometry",
    "trial_plan",
]

#: More grid points than this is almost certainly a mistake (and a huge charge).
MAX_GRID_POINTS = 10_000
#: Below this σ (any segment or the score noise) the PLD second opinion is skipped (null).
PLD_MIN_NOISE_MULTIPLIER = 0.1


def grid_points(config: SearchConfig) -> list[dict[str, float]]:
    """The cartesian product of a grid search's ``choice``/``fixed`` parameters, in order."""
    points: list[dict[str, float]] = [{}]
    for name, param in config.space.params.items():
        if isinstance(param, FixedParam):
            values: tuple[float, ...] = (param.value,)
        elif isinstance(param, ChoiceParam):
            values = param.values
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                # Priced per listed value but run once per distinct point by Tune:
                # the charge and the run would disagree. Refuse instead of guessing.
                raise ConfigError(
                    f"space.params.{name}.values: {repeated[0]:g} is listed more than once; "
                    "a grid runs each point once, so list each value once"
                )
        else:
            raise ConfigError(f"space.params.{name}: grid search needs distribution choice or fixed")
        points = [{**point, name: value} for point in points for value in values]
    if len(points) > MAX_GRID_POINTS:
        raise ConfigError(f"space.params: the grid has {len(points)} points; at most {MAX_GRID_POINTS}")
    return points


@dataclass(frozen=True, kw_only=True)
class TrialGeometry:
    """Sampling rate, length and evaluation points: fixed for every trial of a search."""

    sampling_rate: float
    steps: int
    steps_per_epoch: int
    segment_steps: int
    evaluation_steps: tuple[int, ...]


def trial_geometry(config: SearchConfig, sizes: DatasetSizes) -> TrialGeometry:
    training = config.training
    n = sizes.training_rows(on_validation=training.train_on_validation)
    if training.sampling_rate is not None:
        q = training.sampling_rate
    else:
        assert training.expected_batch_size is not None
        if training.expected_batch_size > n:
            raise ConfigError(
                f"training.expected_batch_size={training.expected_batch_size:g} exceeds the "
                f"training split ({n} examples); lower it"
            )
        q = training.expected_batch_size / n
    steps_per_epoch = max(1, round(1.0 / q))
    if training.steps is not None:
        steps = training.steps
    else:
        assert training.epochs is not None
        steps = max(1, math.ceil(training.epochs * steps_per_epoch))
    segment_steps = training.segment_steps or steps_per_epoch
    evaluations = training.evaluations
    if evaluations > steps:
        raise ConfigError(f"training.evaluations={evaluations} exceeds the trial's {steps} steps; lower it")
    evaluation_steps = tuple(math.ceil(steps * (i + 1) / evaluations) for i in range(evaluations))
    return TrialGeometry(
        sampling_rate=q,
        steps=steps,
        steps_per_epoch=steps_per_epoch,
        segment_steps=segment_steps,
        evaluation_steps=evaluation_steps,
    )


@dataclass(frozen=True, kw_only=True)
class SearchPlan:
    """A calibrated search: σ, the trial plan, the search event and its cost figures."""

    config: SearchConfig
    sizes: DatasetSizes
    shape: SearchShape
    geometry: TrialGeometry
    calibration: Calibration

    @property
    def noise_multiplier(self) -> float:
        """The calibrated base σ (the schedule multiplies it per segment)."""
        return self.calibration.noise_multiplier

    @property
    def delta(self) -> float:
        return self.config.budget.delta

    @property
    def selection_shape(self) -> SearchShape:
        """The shape the driver draws the secret K from: this search's own (a staged plan: its stage 1's)."""
        return self.shape

    @property
    def earlier_stages(self) -> tuple[SearchPlan, ...]:
        """The plans whose trials run before this plan's own (a staged plan: its stage-1 search); none here."""
        return ()

    @cached_property
    def trial(self) -> TrialPlan:
        return trial_plan(self.config, self.sizes, self.geometry, self.noise_multiplier)

    @cached_property
    def event(self) -> dp_event.DpEvent:
        """What the ledger is charged."""
        return search_event(self.trial.dp_event(), self.shape)

    @cached_property
    def trial_epsilon(self) -> float:
        return rdp_epsilon(self.trial.dp_event(), self.delta)

    @cached_property
    def search_epsilon(self) -> float:
        return rdp_epsilon(self.event, self.delta)

    @cached_property
    def naive_epsilon(self) -> float:
        """RDP ε of composing the same (expected, rounded up) number of trials."""
        return rdp_epsilon(naive_event(self.trial.dp_event(), self.shape), self.delta)

    @cached_property
    def best_release_epsilon(self) -> float | None:
        """For ``release: all``: what ``release: best`` would have cost (the price shown)."""
        if self.shape.mode != "random" or self.shape.release != "all":
            return None
        best = SearchShape(
            mode="random",
            release="best",
            expected_trials=self.shape.expected_trials,
            max_trials=None,
            count_shape=self.shape.count_shape,
        )
        return rdp_epsilon(search_event(self.trial.dp_event(), best), self.delta)

    def figures(self) -> PlanFigures:
        """Every figure of the plan, and what a reviewer needs to recompute ε independently."""
        trial = self.trial
        # PLD's grid grows like 1/σ²: at σ ≈ 0.01 (a budget of ~1e6) one second
        # opinion takes minutes and gigabytes. Below the floor it is left out.
        smallest = min(
            [s.noise_multiplier for s in trial.segments]
            + ([trial.score_noise_multiplier] if trial.score_noise_multiplier is not None else [])
        )
        pld = smallest >= PLD_MIN_NOISE_MULTIPLIER
        composed = self.shape.repeat_and_select
        return PlanFigures(
            mode=self.shape.mode,
            release=self.shape.release,
            workload=self.config.workload_label,
            dataset=self.config.dataset_name,
            optimizer=self.config.optimizer,
            budget_epsilon=self.config.budget.epsilon,
            delta=self.delta,
            noise_multiplier=self.noise_multiplier,
            trial_epsilon=self.trial_epsilon,
            search_epsilon=self.search_epsilon,
            naive_epsilon=self.naive_epsilon,
            basic_composition_epsilon=self.trial_epsilon * self.shape.composed_trials,
            best_release_epsilon=self.best_release_epsilon,
            pld_trial_epsilon=pld_epsilon(trial.dp_event(), self.delta) if pld else None,
            pld_search_epsilon=None if composed or not pld else pld_epsilon(self.event, self.delta),
            pld_naive_epsilon=pld_epsilon(naive_event(trial.dp_event(), self.shape), self.delta) if pld else None,
            fraction_of_budget=self.search_epsilon / self.config.budget.epsilon,
            expected_trials=self.shape.expected_trials,
            max_trials=self.shape.max_trials,
            naive_trials=self.shape.composed_trials,
            count_shape=self.shape.count_shape if self.shape.mode in ("random", "hypo") else None,
            # K's distribution, for the modes that draw K (random, hypo); the others have none.
            distribution=getattr(self.config.search, "distribution", None),
            dataset_size=trial.dataset_size,
            validation_size=self.sizes.validation,
            sampling_rate=trial.sampling_rate,
            expected_batch_size=trial.expected_batch_size,
            steps=trial.steps,
            steps_per_epoch=self.geometry.steps_per_epoch,
            schedule=tuple((segment.noise_multiplier, segment.steps) for segment in trial.segments),
            validation=self.config.validation.policy,
            score_noise_multiplier=trial.score_noise_multiplier,
            score_releases=trial.score_releases,
            evaluation_steps=tuple(trial.evaluation_steps),
            no_trial_probability=self.shape.no_trial_probability,
            trials_median=self.shape.trial_count_quantile(0.5),
            trials_p90=self.shape.trial_count_quantile(0.9),
            density_ratio=self.shape.density_ratio,
            count_gamma=(
                tnb_gamma(self.shape.expected_trials, self.shape.count_shape)
                if self.shape.mode == "hypo" and self.shape.count_shape is not None
                else None
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """:meth:`figures` as the JSON document of ``tunedp plan --json``."""
        return self.figures().to_json()


@dataclass(frozen=True, kw_only=True)
class PlanFigures:
    """The figures of a plan: what ``tunedp plan`` shows and a reviewer recomputes ε from."""

    mode: str
    release: str
    workload: str
    dataset: str
    optimizer: str
    budget_epsilon: float
    delta: float
    noise_multiplier: float
    trial_epsilon: float
    search_epsilon: float
    naive_epsilon: float
    basic_composition_epsilon: float
    best_release_epsilon: float | None
    pld_trial_epsilon: float | None
    pld_search_epsilon: float | None
    pld_naive_epsilon: float | None
    fraction_of_budget: float
    expected_trials: float
    max_trials: int | None
    naive_trials: int
    #: η of the trial-count distribution (random mode); ∞ for Poisson.
    count_shape: float | None
    distribution: str | None
    dataset_size: int
    validation_size: int
    sampling_rate: float
    expected_batch_size: float
    steps: int
    steps_per_epoch: int
    #: (σ, steps) per segment of the noise schedule.
    schedule: tuple[tuple[float, int], ...]
    validation: str
    score_noise_multiplier: float | None
    score_releases: int
    evaluation_steps: tuple[int, ...]
    #: P(K = 0): a Poisson K can draw no trial; the search then releases nothing and keeps its charge.
    no_trial_probability: float = 0.0
    #: The median and the 90th percentile of K's distribution (public: fixed by the plan).
    trials_median: int = 0
    trials_p90: int = 0
    accountant: str = "rdp"
    #: ``hypo``: C/c, the span of the proposal's density ratio to the prior (DP-HyPO's Theorem 1).
    density_ratio: float | None = None
    #: ``hypo``: γ of K's truncated negative binomial (dp_accounting's solution of E[K] = expected_trials).
    count_gamma: float | None = None

    def to_json(self) -> dict[str, Any]:
        document = {name: getattr(self, name) for name in self.__dataclass_fields__}
        # JSON has no infinity: a Poisson K (shape ∞) is "inf", as in the ledger's event JSON.
        document["shape"] = _json_shape(document.pop("count_shape"))
        document["schedule"] = [{"noise_multiplier": sigma, "steps": steps} for sigma, steps in self.schedule]
        document["evaluation_steps"] = list(self.evaluation_steps)
        # The RDP orders every ε above is minimised over (dp_accounting's defaults plus a few
        # large ones): a reviewer recomputing at other orders gets another figure.
        document["rdp_orders"] = list(RDP_ORDERS)
        return document


def cheaper_mode_note(figures: PlanFigures) -> str | None:
    """A suggestion when showing every trial would cost less than hiding K (same σ, same expected trials).

    Repeat-and-select pays for K's randomness; for few, long trials the plain
    composition of ⌈mean⌉ trials can cost less (a wine search: 2.00 against
    1.88). Then ``release: all`` with ``max_trials`` = ⌈mean⌉ buys a smaller σ
    for the same budget — at the price of showing every trial.
    """
    if figures.mode != "random" or figures.release != "best" or figures.naive_epsilon >= figures.search_epsilon:
        return None
    return (
        f"release: all with max_trials: {figures.naive_trials} would cost ε = {figures.naive_epsilon:.4f} instead of "
        f"{figures.search_epsilon:.4f} at this σ (every trial shown, K fixed): cheaper for this search"
    )


def trial_count_note(median: int, p90: int) -> str:
    """How many trials a random K will likely take: what a user waits for (the tail of a geometric K is long)."""
    return f"; median {median}, 90% of draws ≤ {p90}"


def no_trial_note(probability: float) -> str:
    """What a plan row adds when K can be 0 (Poisson K): the user sees the risk before paying."""
    if probability <= 0:
        return ""
    return f"; P(K = 0) = {probability:.2%}: then no trial runs, nothing is released and the charge stays"


def _json_shape(shape: float | None) -> float | str | None:
    return "inf" if shape is not None and math.isinf(shape) else shape


def trial_plan(config: SearchConfig, sizes: DatasetSizes, geometry: TrialGeometry, sigma: float) -> TrialPlan:
    segments = noise_segments(
        config.training.noise_schedule,
        base_noise_multiplier=sigma,
        total_steps=geometry.steps,
        segment_steps=geometry.segment_steps,
    )
    score_noise = config.validation.score_noise_multiplier if isinstance(config.validation, PrivateValidation) else None
    return TrialPlan(
        dataset_size=sizes.training_rows(on_validation=config.training.train_on_validation),
        sampling_rate=geometry.sampling_rate,
        steps=geometry.steps,
        segments=segments,
        evaluation_steps=geometry.evaluation_steps,
        score_noise_multiplier=score_noise,
    )


def check_public_validation(config: SearchConfig, workload: Workload) -> None:
    """``validation: {policy: public}`` releases exact scores uncharged: only for a validation split
    that the workload declares to come from a source separate from its protected data."""
    if config.validation.policy == "public" and workload.validation_source != "public":
        raise ConfigError(
            f"validation.policy: public needs a validation split from a source separate from the protected "
            f"data, but workload {config.workload_label!r} carves it from dataset {workload.dataset!r}; "
            "use policy: private with a score_noise_multiplier"
        )


def calibrate_single_stage(config: SearchConfig, shape_of: Callable[[SearchConfig], SearchShape]) -> SearchPlan:
    """Calibrate σ so the whole single-stage search fits ``config.budget``; reads no data.

    ``shape_of`` is the search mode's :meth:`~tunedp.modes.SearchMode.shape`
    (how many trials run, what is released: what the charge assumes), asked
    after the checks every mode shares. Every single-stage mode's plan is made
    here, a staged one's in :func:`tunedp.planning.staged.calibrate_staged`;
    :func:`tunedp.planning.plan_search` is the one public planner (every mode).
    """
    if config.training.train_on_validation:
        raise ConfigError(
            f"training.train_on_validation: a {config.search.mode} search selects on the validation split, "
            "so it cannot train on it; drop it (it is for a staged search's final run with final_score: none)"
        )
    workload = resolve_workload(config.workload)  # the declaration only: no torch, no data
    sizes = workload.sizes
    delta = config.budget.delta
    sizes.check_delta(delta, field="budget.delta")
    check_public_validation(config, workload)
    shape = shape_of(config)
    geometry = trial_geometry(config, sizes)

    def make_event(sigma: float) -> dp_event.DpEvent:
        return search_event(trial_plan(config, sizes, geometry, sigma).dp_event(), shape)

    calibration = calibrate_noise_multiplier(
        make_event, target_epsilon=config.budget.epsilon, delta=delta, memo=user_memo()
    )
    return SearchPlan(config=config, sizes=sizes, shape=shape, geometry=geometry, calibration=calibration)
