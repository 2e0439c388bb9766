"""The ``search:`` section: one frozen model per search mode, told apart by its ``mode`` literal.

Single-stage modes (random, hypo, adaptive, grid) describe how trials are
drawn and what is released; the staged modes (two_stage, public_proxy) add a
stage-1 search and one final run. A mode's fields decide its charge, so each
validator refuses a combination whose bound would not hold (e.g. a capped K
under ``release: best``) before anything is planned. :data:`SearchMode` is the
discriminated union the top-level :class:`~tunedp.config.search_config.SearchConfig` holds.

Imports neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, model_validator

from tunedp.config.strict import STRICT

__all__ = [
    "DEFAULT_TRANSFER_EXPONENT",
    "AdaptiveSearch",
    "GridSearch",
    "HypoSearch",
    "PublicProxySearch",
    "RandomSearch",
    "SearchMode",
    "StageOneMode",
    "StagedSearch",
    "TransferRule",
    "TwoStageSearch",
]


class RandomSearch(BaseModel):
    """Random search with a random number of trials (Papernot & Steinke 2022).

    ``negative_binomial`` is the truncated negative binomial with ``shape``
    (shape 1 is geometric, 0 logarithmic); ``poisson`` is Poisson. With
    ``release: best`` only the best trial leaves the driver and the cost is
    ``RepeatAndSelectDpEvent``. With ``release: all`` every trial is shown, so
    the cost is the composition of ``max_trials`` trials: K is drawn from the
    same distribution and then capped at ``max_trials`` — the cap is
    data-independent and composing fewer trials never costs more, so the
    composition of ``max_trials`` trials bounds whatever K turns out to be.
    """

    model_config = STRICT
    mode: Literal["random"] = "random"
    expected_trials: float = Field(ge=1, allow_inf_nan=False)
    distribution: Literal["negative_binomial", "poisson"] = "negative_binomial"
    shape: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    release: Literal["best", "all"] = "best"
    max_trials: int | None = Field(default=None, ge=1, le=10_000)

    @model_validator(mode="after")
    def _check(self) -> RandomSearch:
        if self.release == "all" and self.max_trials is None:
            raise ValueError(
                "search.max_trials is required with release: all (the charge is the composition "
                "of max_trials trials); set e.g. max_trials: 3 * expected_trials"
            )
        if self.release == "all" and self.max_trials is not None and self.max_trials < self.expected_trials:
            raise ValueError(f"search.max_trials={self.max_trials} must be >= expected_trials={self.expected_trials}")
        if self.release == "best" and self.max_trials is not None:
            raise ValueError(
                "search.max_trials applies only to release: all; with release: best the number "
                "of trials must not be capped (the repeat-and-select bound assumes the full distribution)"
            )
        return self

    @property
    def accountant_shape(self) -> float:
        """The ``shape`` argument of ``RepeatAndSelectDpEvent`` (∞ means Poisson)."""
        return math.inf if self.distribution == "poisson" else self.shape


class HypoSearch(BaseModel):
    """Adaptive proposals at nearly the price of random search (DP-HyPO, Wang et al., NeurIPS 2023).

    K is drawn as in random search (truncated negative binomial with
    ``shape``; Poisson is not covered by DP-HyPO's bound and is refused) and
    only the best trial leaves the driver. Each trial's point is drawn from a
    mixture of the prior (the space as declared) and a kernel density around
    the best earlier trials, judged by their *released* (noisy) scores; the
    mixture's density ratio to the prior stays within [c, C] with C/c =
    ``density_ratio`` (:mod:`tunedp.modes.hypo_proposal`). The charge adds
    (α/(α−1) + 1 + shape)·log(density_ratio) to repeat-and-select's RDP
    (:mod:`tunedp.accounting.hypo`): ``density_ratio: 1`` is random search.
    ``bandwidth`` is the kernel's width in the unit cube the space is mapped
    to; it changes where proposals go, never the charge.
    """

    model_config = STRICT
    mode: Literal["hypo"] = "hypo"
    expected_trials: float = Field(ge=1, allow_inf_nan=False)
    distribution: Literal["negative_binomial", "poisson"] = "negative_binomial"
    shape: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    release: Literal["best"] = "best"
    density_ratio: float = Field(ge=1, le=1e6, allow_inf_nan=False)
    bandwidth: float = Field(default=0.2, gt=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self) -> HypoSearch:
        if self.distribution == "poisson":
            raise ValueError(
                "search.distribution: hypo needs negative_binomial (DP-HyPO's bound covers the truncated "
                "negative binomial, not a Poisson K); use mode: random for a Poisson K"
            )
        return self


class AdaptiveSearch(BaseModel):
    """Optuna TPE (optionally with ASHA early stopping) sees every noisy score.

    The charge is the adaptive composition of ``max_trials`` trials at full
    planned length with all their score releases; early stopping saves time,
    never budget.
    """

    model_config = STRICT
    mode: Literal["adaptive"] = "adaptive"
    max_trials: int = Field(ge=1, le=10_000)
    scheduler: Literal["none", "asha"] = "none"
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=2, ge=2)
    startup_trials: int = Field(default=4, ge=1)


class GridSearch(BaseModel):
    """Every point of the cartesian product of the ``choice`` parameters; composition."""

    model_config = STRICT
    mode: Literal["grid"] = "grid"


# ---- staged modes (two_stage, public_proxy): tunedp/planning/staged.py plans them, tunedp/run/staged.py runs them


#: The private search a staged mode runs first (its trials never leave the driver). ``hypo`` is
#: DP-HyPO as stage 1: its proposals learn from stage-1 trials' released (noisy) scores and
#: stage 1 is priced by DP-HyPO's bound, composed with the final run like any stage-1 search.
StageOneMode = Annotated[RandomSearch | AdaptiveSearch | HypoSearch, Field(discriminator="mode")]


def _stage_one_release(stage1: RandomSearch | AdaptiveSearch | HypoSearch) -> None:
    if isinstance(stage1, RandomSearch) and stage1.release == "all":
        raise ValueError(
            "search.stage1.release: all would be charged as a composition yet nothing of stage 1 is "
            "released; use release: best (repeat-and-select)"
        )


#: How a staged search carries the selected learning rate from a stage-1 trial to the final run.
TransferRule = Literal["linear_radius", "horizon", "none"]


#: α of ``transfer: horizon`` when the config gives none: η₂ = η₁·(T₁/T₂)^¼ (see tunedp.accounting.staged_event).
DEFAULT_TRANSFER_EXPONENT = 0.25


class _FinalRun(BaseModel):
    """What both staged modes say about their one final run: the learning-rate transfer and its score."""

    model_config = STRICT
    transfer: TransferRule = "linear_radius"
    #: α of ``transfer: horizon`` (None: :data:`DEFAULT_TRANSFER_EXPONENT`); read by no other rule.
    transfer_exponent: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    final_score: Literal["none", "released"] = "none"

    @property
    def horizon_exponent(self) -> float:
        """The α that ``transfer: horizon`` uses: the config's, or the default."""
        return DEFAULT_TRANSFER_EXPONENT if self.transfer_exponent is None else self.transfer_exponent

    @model_validator(mode="after")
    def _transfer_exponent_used(self) -> Self:
        """A ``transfer_exponent`` that no rule reads is a mistake in the config: say so before anything is charged."""
        if self.transfer_exponent is not None and self.transfer != "horizon":
            raise ValueError(
                f"search.transfer_exponent is read only by transfer: horizon (transfer is {self.transfer}); "
                "drop it or set transfer: horizon"
            )
        return self


class TwoStageSearch(_FinalRun):
    """Stage 1: a private search of short trials at ``stage1_budget_share`` of the budget;
    stage 2: ONE full-length run with the selected, transferred hyperparameters.

    Charged as one event, ``ComposedDpEvent([stage-1 search, stage-2 run])``.
    Only the final model and its hyperparameters leave the driver (stage-1
    trials, their number and scores stay inside, as under ``release: best``).
    ``transfer: linear_radius`` rescales the learning rate by Panda et al.'s
    linear scaling rule, ``transfer: horizon`` by (T₁/T₂)^``transfer_exponent``
    (longer runs want smaller steps); see :mod:`tunedp.accounting.staged_event`.
    ``final_score: released`` adds one charged validation release to stage 2.
    """

    model_config = STRICT
    mode: Literal["two_stage"] = "two_stage"
    stage1: StageOneMode
    stage1_budget_share: float = Field(default=0.3, gt=0, lt=1, allow_inf_nan=False)
    stage1_training_fraction: float = Field(default=0.25, gt=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self) -> TwoStageSearch:
        _stage_one_release(self.stage1)
        return self


class PublicProxySearch(_FinalRun):
    """Search on a declared PUBLIC workload (charged nothing), then ONE private run on the
    protected workload with the transferred hyperparameters (charged as that one run).

    Stage-1 trials train with the final run's calibrated σ and expected batch
    size, so the noise of every update (σC/B) matches the private run's; only
    the data differ.
    """

    model_config = STRICT
    mode: Literal["public_proxy"] = "public_proxy"
    public_workload: str = Field(min_length=1)
    public_model: str | None = None
    stage1: StageOneMode
    stage1_training_fraction: float = Field(default=1.0, gt=0, le=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _check(self) -> PublicProxySearch:
        _stage_one_release(self.stage1)
        return self


#: Search modes that run a private selection and then one final training run.
StagedSearch = TwoStageSearch | PublicProxySearch

# ---- end of staged modes

SearchMode = Annotated[
    RandomSearch | AdaptiveSearch | GridSearch | TwoStageSearch | PublicProxySearch | HypoSearch,
    Field(discriminator="mode"),
]
