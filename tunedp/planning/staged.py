"""Planning a staged search (``two_stage``, ``public_proxy``): both stages priced and calibrated as one plan.

A :class:`StagedPlan` is a :class:`~tunedp.planning.single_stage.SearchPlan` whose own fields
describe the run that is RELEASED — stage 2: the full training length, σ₂,
and no validation release unless ``final_score: released`` — and whose
``event`` is the one event charged (:func:`~tunedp.accounting.staged_event.staged_event`).
Its ``stage1`` is an ordinary ``SearchPlan`` of the selection search: for
``two_stage`` on the protected data at σ₁ (calibrated to the stage-1 share),
for ``public_proxy`` on the declared public workload at σ₂ and the same
expected batch size (charged nothing).

The transfer factor η₂/η₁ is computed here, from plan figures only, so it is
known (and shown) before any data is read.

This module imports neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from dp_accounting import dp_event

from tunedp.accounting.calibration import Calibration
from tunedp.accounting.calibration_memo import user_memo
from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.search_event import SearchShape, naive_event, search_event
from tunedp.accounting.serialization import event_to_json
from tunedp.accounting.staged_event import (
    StagedCalibration,
    calibrate_stages,
    horizon_factor,
    linear_radius_factor,
    staged_event,
)
from tunedp.accounting.trial_event import steps_event
from tunedp.config import ConfigError, FixedParam, SearchConfig, StagedSearch
from tunedp.planning.single_stage import (
    PlanFigures,
    SearchPlan,
    TrialGeometry,
    check_public_validation,
    no_trial_note,
    trial_count_note,
    trial_geometry,
    trial_plan,
)
from tunedp.workloads import DatasetSizes, resolve_workload

__all__ = ["StagedPlan", "StagedPlanFigures", "calibrate_staged", "stage1_search_data", "staged_plan_rows"]

#: Builds the stage-1 search's config from the staged config, its declared sizes and the final run's geometry.
Stage1Config = Callable[[SearchConfig, DatasetSizes, TrialGeometry], SearchConfig]


@dataclass(frozen=True, kw_only=True)
class StagedPlan(SearchPlan):
    """A staged search: the released run's plan (the inherited fields) plus its stage-1 search."""

    stage1: SearchPlan
    staged: StagedCalibration
    #: η₂/η₁: what the transfer rule multiplies the selected learning rate(s) by.
    transfer_factor: float
    #: The ``search:`` section (``config.search``, as the staged mode read it): the transfer and the final score.
    staged_search: StagedSearch
    #: Stage 1's share of the budget; ``None`` when stage 1 reads only public data (charged nothing).
    stage1_share: float | None

    @property
    def charges_stage1(self) -> bool:
        """``two_stage`` reads protected rows in stage 1; ``public_proxy`` does not."""
        return self.stage1_share is not None

    @property
    def selection_shape(self) -> SearchShape:
        """The shape of the stage-1 search (K's distribution); what the driver draws K from."""
        return self.stage1.shape

    @property
    def earlier_stages(self) -> tuple[SearchPlan, ...]:
        """Stage 1's search runs before the final run (this plan's own trial)."""
        return (self.stage1,)

    @cached_property
    def stage1_event(self) -> dp_event.DpEvent | None:
        """What stage 1 contributes to the charge (``None``: public, nothing)."""
        return self.stage1.event if self.charges_stage1 else None

    @cached_property
    def event(self) -> dp_event.DpEvent:
        """What the ledger is charged: ``ComposedDpEvent([stage-1 search, stage-2 run])``."""
        return staged_event(self.stage1_event, self.trial.dp_event())

    @cached_property
    def stage1_epsilon(self) -> float:
        return 0.0 if self.stage1_event is None else rdp_epsilon(self.stage1_event, self.delta)

    @cached_property
    def naive_epsilon(self) -> float:
        """RDP ε if stage 1 had been charged as a composition of ⌈E[K]⌉ trials."""
        if self.stage1_event is None:
            return self.search_epsilon
        naive = naive_event(self.stage1.trial.dp_event(), self.stage1.shape)
        return rdp_epsilon(staged_event(naive, self.trial.dp_event()), self.delta)

    def final_plan(self, point: dict[str, float], variant: str | None = None) -> SearchPlan:
        """The stage-2 run at the transferred ``point`` (and stage 1's model ``variant``): a one-point grid.

        Fails closed if its event is not exactly the stage-2 event that was
        priced into the charge.
        """
        data = self.config.model_dump(mode="python")
        data["search"] = {"mode": "grid"}
        if self.config.space.model is not None:  # the variant stage 1 selected, fixed for the final run
            data["model"] = variant
        data["space"] = {
            "coupling": self.config.space.coupling,
            "params": {name: {"distribution": "fixed", "value": float(value)} for name, value in point.items()},
        }
        config = SearchConfig.model_validate(data, strict=False)
        assert all(isinstance(p, FixedParam) for p in config.space.params.values())
        plan = SearchPlan(
            config=config,
            sizes=self.sizes,
            shape=SearchShape(mode="grid", release="all", expected_trials=1, max_trials=1),
            geometry=self.geometry,
            calibration=self.calibration,
        )
        if event_to_json(plan.trial.dp_event()) != event_to_json(self.trial.dp_event()):
            raise RuntimeError("the final run's event differs from the one charged; refusing to run it")
        return plan

    def figures(self) -> StagedPlanFigures:
        base = super().figures()
        mode = self.staged_search
        stage1 = self.stage1.figures().to_json()
        stage1["charged"] = self.charges_stage1
        stage1["epsilon"] = self.stage1_epsilon
        if not self.charges_stage1:
            # Public data: its ε figures describe no protected row; keep only the geometry.
            for name in list(stage1):
                if (name.endswith("epsilon") and name != "epsilon") or name == "fraction_of_budget":
                    stage1[name] = None
        trial = self.trial
        stage2 = {
            "workload": self.config.workload,
            "noise_multiplier": self.noise_multiplier,
            "epsilon": self.trial_epsilon,
            "sampling_rate": trial.sampling_rate,
            "expected_batch_size": trial.expected_batch_size,
            "dataset_size": trial.dataset_size,
            "train_on_validation": self.config.training.train_on_validation,
            "steps": trial.steps,
            "schedule": [{"noise_multiplier": s.noise_multiplier, "steps": s.steps} for s in trial.segments],
            "score_noise_multiplier": trial.score_noise_multiplier,
            "score_releases": trial.score_releases,
            "evaluation_steps": list(trial.evaluation_steps),
        }
        share = self.stage1_share if self.stage1_share is not None else 0.0
        split = {
            "stage1_budget_share": share,
            "stage1_epsilon": self.stage1_epsilon,
            "stage2_epsilon_alone": self.trial_epsilon,
            "total_epsilon": self.search_epsilon,
            "budget_epsilon": self.config.budget.epsilon,
        }
        transfer = {
            "rule": mode.transfer,
            "factor": self.transfer_factor,
            "exponent": mode.horizon_exponent if mode.transfer == "horizon" else None,
            "stage1_steps": self.stage1.trial.steps,
            "stage2_steps": trial.steps,
            "stage1_steps_epsilon": _steps_epsilon(self.stage1, self.delta) if self.charges_stage1 else None,
            "stage2_steps_epsilon": _steps_epsilon(self, self.delta),
        }
        return StagedPlanFigures(
            **{**vars(base), "naive_trials": self.stage1.shape.composed_trials, "pld_naive_epsilon": None},
            stage1=stage1,
            stage2=stage2,
            split=split,
            transfer=transfer,
        )


@dataclass(frozen=True, kw_only=True)
class StagedPlanFigures(PlanFigures):
    """:class:`PlanFigures` of the released run plus both stages, the split and the transfer.

    ``stage1`` holds the stage-1 search's own plan figures (its σ₁ schedule,
    sampling rate, steps, score releases, and K's distribution: mode,
    expected_trials, shape, max_trials); ``stage2`` the final run's; with
    ``delta`` that is all a reviewer needs to recompute ``search_epsilon``.
    """

    stage1: dict[str, Any]
    stage2: dict[str, Any]
    split: dict[str, Any]
    transfer: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return super().to_json()


def _steps_epsilon(plan: SearchPlan, delta: float) -> float:
    return rdp_epsilon(steps_event(plan.trial.sampling_rate, plan.trial.segments), delta)


def stage1_search_data(config: SearchConfig, search: StagedSearch, geometry: TrialGeometry) -> dict[str, Any]:
    """The stage-1 search as config data: ``search.stage1``'s mode, short trials, never on the validation split.

    A staged mode turns it into its stage-1 config (:data:`Stage1Config`),
    ``public_proxy`` after moving it to the public workload.
    """
    steps = max(1, math.ceil(search.stage1_training_fraction * geometry.steps))
    data = config.model_dump(mode="python")
    data["search"] = search.stage1.model_dump(mode="python")
    training = dict(data["training"])
    # Stage-1 trials are selected by their validation scores: they never train on that split.
    training.update(
        epochs=None, steps=steps, evaluations=min(config.training.evaluations, steps), train_on_validation=False
    )
    data["training"] = training
    return data


def calibrate_staged(
    config: SearchConfig,
    search: StagedSearch,
    *,
    shape: SearchShape,
    stage1_config: Stage1Config,
    stage1_shape: Callable[[SearchConfig], SearchShape],
    stage1_share: float | None,
) -> StagedPlan:
    """Calibrate σ₁ (two-stage) and σ₂ so the staged search fits ``config.budget``; reads no data.

    The staged mode says what differs: its own ``shape`` (one released run),
    how its stage-1 search is configured (``stage1_config``) and shaped (by
    that search's mode: ``stage1_shape``), and stage 1's share of the budget
    (``None``: stage 1 reads public data only and is charged nothing).
    """
    workload = resolve_workload(config.workload)  # the declaration only: no torch, no data
    sizes = workload.sizes
    delta = config.budget.delta
    sizes.check_delta(delta, field="budget.delta")
    check_public_validation(config, workload)
    if config.training.train_on_validation and search.final_score != "none":
        raise ConfigError(
            "training.train_on_validation: the final run's released score is measured on the validation "
            "split, so it cannot train on it; set search.final_score: none or drop train_on_validation"
        )
    full = trial_geometry(config, sizes)
    final_steps = (full.steps,) if search.final_score == "released" else ()
    geometry = replace(full, evaluation_steps=final_steps)
    config1 = stage1_config(config, sizes, full)
    sizes1 = resolve_workload(config1.workload).sizes
    geometry1 = trial_geometry(config1, sizes1)
    shape1 = stage1_shape(config1)
    charged = stage1_share is not None

    def stage1_event(sigma: float) -> dp_event.DpEvent:
        return search_event(trial_plan(config1, sizes1, geometry1, sigma).dp_event(), shape1)

    def stage2_event(sigma: float) -> dp_event.DpEvent:
        return trial_plan(config, sizes, geometry, sigma).dp_event()

    staged = calibrate_stages(
        stage1_event=stage1_event if charged else None,
        stage2_event=stage2_event,
        target_epsilon=config.budget.epsilon,
        stage1_share=stage1_share if stage1_share is not None else 0.0,
        delta=delta,
        memo=user_memo(),
    )
    sigma2 = staged.stage2.noise_multiplier
    stage1_calibration = staged.stage1 or Calibration(
        # Public data: the proxy trains at the final run's σ and nothing is charged for it.
        noise_multiplier=sigma2,
        epsilon=0.0,
        target_epsilon=config.budget.epsilon,
        delta=delta,
    )
    stage1 = SearchPlan(config=config1, sizes=sizes1, shape=shape1, geometry=geometry1, calibration=stage1_calibration)
    factor = 1.0
    if search.transfer == "linear_radius":
        steps2 = trial_plan(config, sizes, geometry, sigma2)
        epsilon2 = rdp_epsilon(steps_event(steps2.sampling_rate, steps2.segments), delta)
        trial1 = stage1.trial
        # Public proxy: a public trial is priced as the cheap run it stands for — the
        # final run's σ and sampling rate on the protected data, for T₁ steps.
        rate1 = trial1.sampling_rate if charged else steps2.sampling_rate
        epsilon1 = rdp_epsilon(steps_event(rate1, trial1.segments), delta)
        factor = linear_radius_factor(
            steps1=geometry1.steps, steps2=geometry.steps, epsilon1=epsilon1, epsilon2=epsilon2
        )
    elif search.transfer == "horizon":
        factor = horizon_factor(steps1=geometry1.steps, steps2=geometry.steps, exponent=search.horizon_exponent)
    return StagedPlan(
        config=config,
        sizes=sizes,
        shape=shape,
        geometry=geometry,
        calibration=staged.stage2,
        stage1=stage1,
        staged=staged,
        transfer_factor=factor,
        staged_search=search,
        stage1_share=stage1_share,
    )


def staged_plan_rows(figures: StagedPlanFigures) -> list[tuple[str, str]]:
    """The rows ``tunedp plan`` shows for a staged search: both stages, the split, the transfer."""
    stage1, stage2, split, transfer = figures.stage1, figures.stage2, figures.split, figures.transfer
    if stage1["mode"] in ("random", "hypo"):
        trials = f"{stage1['mode']}, {stage1['expected_trials']:g} expected (K secret; shape {stage1['shape']})"
        if stage1["mode"] == "hypo":  # the span its adaptive proposals are charged for
            trials += f", proposal density ratio C/c {stage1['density_ratio']:g} (DP-HyPO Theorem 1)"
        trials += trial_count_note(stage1["trials_median"], stage1["trials_p90"])
        trials += no_trial_note(stage1["no_trial_probability"])
    else:
        trials = f"{stage1['mode']}, {stage1['max_trials']} trials (composed)"
    if stage1["charged"]:
        where = (
            f"protected data, σ₁ = {stage1['noise_multiplier']:.4f}, ε = {split['stage1_epsilon']:.4f} "
            f"({split['stage1_budget_share']:.0%} share of ε = {figures.budget_epsilon:g})"
        )
    else:
        where = f"PUBLIC workload {stage1['workload']!r} at σ₂, charged nothing"
    score2 = (
        f"{stage2['score_releases']} validation score release(s)"
        if stage2["score_releases"]
        else "no private validation score released"
    )
    if stage2["train_on_validation"]:
        score2 += f"; trains on the validation split too (N = {stage2['dataset_size']})"
    factor = "none (× 1)"
    if transfer["rule"] == "linear_radius":
        factor = f"× {transfer['factor']:.4g} = (T₁/T₂)·(ε₂/ε₁)"
    elif transfer["rule"] == "horizon":
        factor = f"× {transfer['factor']:.4g} = (T₁/T₂)^{transfer['exponent']:g}"
    return [
        ("budget", f"ε = {figures.budget_epsilon:g}, δ = {figures.delta:g}"),
        ("stage 1 (selection)", where),
        ("stage 1 trials", trials),
        (
            "stage 1 trial",
            f"{stage1['steps']} steps at q = {stage1['sampling_rate']:.4g}, "
            f"{stage1['score_releases']} score release(s) ({stage1['validation']} validation)",
        ),
        (
            "stage 2 (final run)",
            f"σ₂ = {stage2['noise_multiplier']:.4f}, {stage2['steps']} steps at q = {stage2['sampling_rate']:.4g}, "
            f"ε alone = {stage2['epsilon']:.4f}, {score2}",
        ),
        (
            "charged ε (composition)",
            f"{figures.search_epsilon:.4f} ({figures.fraction_of_budget:.2%} of budget)",
        ),
        (
            "learning-rate transfer",
            f"{transfer['rule']}: η₂ = η₁ {factor} (T₁/T₂ = {transfer['stage1_steps']}/{transfer['stage2_steps']})",
        ),
        ("released", "the final model and its hyperparameters only"),
    ]
