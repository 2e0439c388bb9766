"""What users write: frozen, strict pydantic models of a search configuration.

A config is loaded from YAML (``search_spaces/*.yaml``). Every model is frozen
(a plan derived from a config cannot be mutated under it) and forbids unknown
fields (a typo such as ``epochz`` must be an error, not a silently ignored key
that changes the privacy cost). Errors reach the CLI as one line through
:func:`format_validation_error`.

This module imports neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from tunedp.accounting.schedule import ConstantSchedule, NoiseSchedule
from tunedp.errors import ConfigError
from tunedp.optim.lr_schedule import ConstantLr, LrSchedule
from tunedp.optim.specs import CLIP_INVARIANT_OPTIMIZERS, OPTIMIZER_NAMES
from tunedp.workloads.csv_table import CsvWorkloadSpec

__all__ = [
    "ADAM_TYPE_OPTIMIZERS",
    "OPTIMIZERS",
    "AdaptiveSearch",
    "Budget",
    "ChoiceParam",
    "ConfigError",
    "FixedParam",
    "GridSearch",
    "HypoSearch",
    "LogUniformParam",
    "ModelChoice",
    "PrivateValidation",
    "PublicProxySearch",
    "PublicValidation",
    "RandomSearch",
    "Resources",
    "SearchConfig",
    "SearchSpace",
    "Training",
    "TwoStageSearch",
    "UniformParam",
    "format_validation_error",
    "load_config",
]

OPTIMIZERS = OPTIMIZER_NAMES
#: Update rules whose step is invariant to the clipping norm C (the noisy
#: gradient and its noise both scale with C, and the update normalises it away),
#: so only the learning rate is searched (Mohapatra et al., AAAI 2022).
ADAM_TYPE_OPTIMIZERS = CLIP_INVARIANT_OPTIMIZERS

#: Hyperparameters a search space may name. ``step_size`` is η·C, the only
#: quantity a clipped DP-SGD step depends on (the lr–clip coupling).
HYPERPARAMETERS = (
    "lr",
    "step_size",
    "clip_norm",
    "momentum",
    "weight_decay",
    "beta1",
    "beta2",
    "eps",
    "cutoff",
    "delay",
    "gamma",
    "clip_norm_2",
    "lr_2",
)

_STRICT = ConfigDict(frozen=True, extra="forbid", strict=True)


def _finite_positive(value: float, field: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{field} must be a finite number > 0, got {value}")
    return value


# --------------------------------------------------------------------------- budget


class Budget(BaseModel):
    """The (ε, δ) this one search may spend (a share of the ledger's global budget)."""

    model_config = _STRICT
    epsilon: float = Field(gt=0, allow_inf_nan=False)
    delta: float = Field(gt=0, lt=1, allow_inf_nan=False)


# --------------------------------------------------------------------------- search modes


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

    model_config = _STRICT
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

    model_config = _STRICT
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

    model_config = _STRICT
    mode: Literal["adaptive"] = "adaptive"
    max_trials: int = Field(ge=1, le=10_000)
    scheduler: Literal["none", "asha"] = "none"
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=2, ge=2)
    startup_trials: int = Field(default=4, ge=1)


class GridSearch(BaseModel):
    """Every point of the cartesian product of the ``choice`` parameters; composition."""

    model_config = _STRICT
    mode: Literal["grid"] = "grid"


# ---- staged modes (two_stage, public_proxy): tunedp/planning/staged.py plans them, tunedp/run/staged.py runs them


#: The private search a staged mode runs first (its trials never leave the driver).
StageOneMode = Annotated[RandomSearch | AdaptiveSearch, Field(discriminator="mode")]


def _stage_one_release(stage1: RandomSearch | AdaptiveSearch) -> None:
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

    model_config = _STRICT
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

    model_config = _STRICT
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

    model_config = _STRICT
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


# --------------------------------------------------------------------------- search space


class LogUniformParam(BaseModel):
    model_config = _STRICT
    distribution: Literal["log_uniform"] = "log_uniform"
    low: float = Field(gt=0, allow_inf_nan=False)
    high: float = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> LogUniformParam:
        if self.low >= self.high:
            raise ValueError(f"low={self.low} must be < high={self.high}")
        return self


class UniformParam(BaseModel):
    model_config = _STRICT
    distribution: Literal["uniform"] = "uniform"
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> UniformParam:
        if self.low >= self.high:
            raise ValueError(f"low={self.low} must be < high={self.high}")
        return self


class ChoiceParam(BaseModel):
    model_config = _STRICT
    distribution: Literal["choice"] = "choice"
    values: tuple[float, ...] = Field(min_length=1)


class FixedParam(BaseModel):
    model_config = _STRICT
    distribution: Literal["fixed"] = "fixed"
    value: float = Field(allow_inf_nan=False)


Param = Annotated[LogUniformParam | UniformParam | ChoiceParam | FixedParam, Field(discriminator="distribution")]


class ModelChoice(BaseModel):
    """The model variants a search chooses among: names the workload declares (checked before the charge).

    A variant is a hyperparameter like any other: it changes nothing in the
    accounting (every trial has the same steps, σ, q and score releases), and
    under ``release: best`` only the released trial's variant leaves the driver.
    """

    model_config = _STRICT
    distribution: Literal["choice"] = "choice"
    values: tuple[str, ...] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _distinct_names(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if any(not value for value in values):
            raise ValueError("a model variant name must not be empty")
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"{repeated[0]!r} is listed more than once; list each variant once")
        return values


class SearchSpace(BaseModel):
    """The hyperparameters searched, with the lr–clip coupling made explicit.

    ``coupling``:
      - ``lr_clip`` (DP-SGD): search ``step_size`` = η·C and ``clip_norm`` (or
        fix C in ``training.clip_norm``); η = step_size / C. A clipped DP-SGD
        step depends on η·C only, so this is the same space with one fewer
        effective dimension to waste trials — and budget — on.
      - ``fixed_clip``: C fixed in ``training.clip_norm``, only ``lr`` searched
        (the right choice for Adam-type rules, which are invariant to C).
      - ``none``: ``lr`` and ``clip_norm`` searched independently (DP-SGD only).
    """

    model_config = _STRICT
    coupling: Literal["lr_clip", "fixed_clip", "none"]
    params: dict[str, Param] = Field(min_length=1)
    #: The model variants searched (``{distribution: choice, values: [...]}``), or ``None``: the
    #: config's ``model:`` (or the workload's default) for every trial.
    model: ModelChoice | None = None

    @field_validator("params")
    @classmethod
    def _known_names(cls, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(HYPERPARAMETERS))
        if unknown:
            raise ValueError(f"unknown hyperparameter {unknown[0]!r}; allowed: {', '.join(HYPERPARAMETERS)}")
        return params


# --------------------------------------------------------------------------- training


class Training(BaseModel):
    """The fixed length and batch geometry of every trial (not searched).

    Sampling rate and length are fixed across trials so that every trial has
    the same DpEvent — what repeat-and-select and the planned composition
    assume. σ is not here: it is calibrated from the budget.
    """

    model_config = _STRICT
    epochs: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    steps: int | None = Field(default=None, ge=1)
    expected_batch_size: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    sampling_rate: float | None = Field(default=None, gt=0, le=1, allow_inf_nan=False)
    clip_norm: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    noise_schedule: NoiseSchedule = Field(default_factory=ConstantSchedule)
    #: Multiplies every learning rate by a public function of the step (post-processing: no
    #: change to any DpEvent); each trial, and a staged search's final run, decays over its own length.
    lr_schedule: LrSchedule = Field(default_factory=ConstantLr)
    segment_steps: int | None = Field(default=None, ge=1)
    evaluations: int = Field(default=1, ge=1, le=1000)
    #: A staged search's final run with ``final_score: none`` releases no validation score, so
    #: the validation rows have nothing left to do: train on them too (N = train + validation).
    #: The charge is the same kind of event over a larger N (a smaller q for the same batch);
    #: refused anywhere a score is read from the validation split (tunedp.planning).
    train_on_validation: bool = False

    @model_validator(mode="after")
    def _one_of_each(self) -> Training:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("set exactly one of training.epochs or training.steps")
        if (self.expected_batch_size is None) == (self.sampling_rate is None):
            raise ValueError("set exactly one of training.expected_batch_size or training.sampling_rate")
        return self


# --------------------------------------------------------------------------- validation


class PrivateValidation(BaseModel):
    """Validation scores are noisy counts: ``N(0, score_noise_multiplier²)`` added to
    the number of correct predictions (sensitivity 1), each release charged."""

    model_config = _STRICT
    policy: Literal["private"] = "private"
    score_noise_multiplier: float = Field(gt=0, allow_inf_nan=False)


class PublicValidation(BaseModel):
    """The user asserts the validation split is public: exact scores, no charge."""

    model_config = _STRICT
    policy: Literal["public"] = "public"


Validation = Annotated[PrivateValidation | PublicValidation, Field(discriminator="policy")]


# --------------------------------------------------------------------------- resources


class Resources(BaseModel):
    """What one trial asks Ray for: CPUs (its torch threads) and GPUs (fractions share one GPU).

    A trial that Ray gives a GPU trains on it (model, batches and noise on
    the device); requesting more GPUs than the cluster has is refused before
    the charge.
    """

    model_config = _STRICT
    cpus: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    gpus: float = Field(default=0.0, ge=0, allow_inf_nan=False)


# --------------------------------------------------------------------------- the whole config


def _workload_kind(value: object) -> str:
    return "csv" if isinstance(value, dict | CsvWorkloadSpec) else "named_workload"


WorkloadField = Annotated[
    Annotated[str, Tag("named_workload")] | Annotated[CsvWorkloadSpec, Tag("csv")],
    Discriminator(_workload_kind),
]


class SearchConfig(BaseModel):
    """One search: workload, budget share, mode, trial length, validation, optimizer, space."""

    model_config = _STRICT
    name: str | None = None
    #: A built-in name, an entry point, ``my_pkg.my_module:WORKLOAD`` or ``{kind: csv, ...}``
    #: (:mod:`tunedp.workloads.registry`); reaches every Ray worker unchanged.
    workload: WorkloadField
    model: str | None = None
    dataset: str | None = None
    budget: Budget
    search: SearchMode
    training: Training
    validation: Validation
    optimizer: Literal["dp_sgd", "dp_adam", "dp_adamwosm", "dp2_rmsprop"]
    space: SearchSpace
    resources: Resources = Field(default_factory=Resources)

    @property
    def variants(self) -> tuple[str | None, ...]:
        """The model variants the trials use: the searched ones, or the one ``model:`` names (None: default)."""
        return self.space.model.values if self.space.model is not None else (self.model,)

    @model_validator(mode="after")
    def _one_way_to_name_the_model(self) -> SearchConfig:
        if self.model is not None and self.space.model is not None:
            raise ValueError("model: fixes one variant while space.model searches several; keep one of them")
        return self

    @model_validator(mode="after")
    def _coupling_matches_optimizer(self) -> SearchConfig:
        params = self.space.params
        coupling = self.space.coupling
        clip_fixed = self.training.clip_norm is not None
        if "clip_norm" in params and clip_fixed:
            raise ValueError("clip_norm is both searched (space.params) and fixed (training.clip_norm); keep one")
        if self.optimizer in ADAM_TYPE_OPTIMIZERS and coupling == "fixed_clip" and "clip_norm" in params:
            raise ValueError(
                f"space.params.clip_norm: {self.optimizer} is invariant to clip_norm, so it is not searched; "
                "move it to training.clip_norm and search only lr"
            )
        if self.optimizer in ADAM_TYPE_OPTIMIZERS and (
            coupling != "fixed_clip" or "clip_norm" in params or "step_size" in params
        ):
            raise ValueError(
                f"space.coupling: {self.optimizer} is invariant to clip_norm; use coupling: fixed_clip, "
                "fix training.clip_norm and search only lr"
            )
        if coupling == "lr_clip":
            if self.optimizer != "dp_sgd":
                raise ValueError("space.coupling: lr_clip applies to dp_sgd only; use fixed_clip")
            if "step_size" not in params or "lr" in params:
                raise ValueError(
                    "space.params: coupling lr_clip searches step_size (= lr * clip_norm), not lr; "
                    "rename lr to step_size"
                )
            if "clip_norm" not in params and not clip_fixed:
                raise ValueError("space.params: coupling lr_clip needs clip_norm in params or training.clip_norm")
        elif coupling == "fixed_clip":
            if not clip_fixed or "clip_norm" in params:
                raise ValueError("space.coupling: fixed_clip needs training.clip_norm and no clip_norm in params")
            if "lr" not in params or "step_size" in params:
                raise ValueError("space.params: coupling fixed_clip searches lr (and not step_size)")
        else:  # none
            if self.optimizer != "dp_sgd" and self.optimizer != "dp2_rmsprop":
                raise ValueError("space.coupling: none is only meaningful for dp_sgd")
            if "lr" not in params or "step_size" in params:
                raise ValueError("space.params: coupling none searches lr (and not step_size)")
            if "clip_norm" not in params and not clip_fixed:
                raise ValueError("space.params: coupling none needs clip_norm in params or training.clip_norm")
        if isinstance(self.search, GridSearch):
            for name, param in params.items():
                if not isinstance(param, ChoiceParam | FixedParam):
                    raise ValueError(
                        f"space.params.{name}: grid search needs distribution choice or fixed, got {param.distribution}"
                    )
        return self

    @model_validator(mode="after")
    def _dataset_is_the_workloads(self) -> SearchConfig:
        """``dataset:`` may only repeat the workload's declared dataset: a ledger belongs to the data (no aliases)."""
        from tunedp.ledger.binding import require_dataset, workload_is_known

        if self.dataset is not None and workload_is_known(self.workload):
            require_dataset(self.workload, self.dataset, "dataset")
        return self

    def fingerprint(self) -> str:
        """A stable SHA-256 of what was asked, stored with each charge on the ledger."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @field_validator("workload")
    @classmethod
    def _workload_named(cls, workload: str | CsvWorkloadSpec) -> str | CsvWorkloadSpec:
        if isinstance(workload, str) and not workload.strip():
            raise ValueError("name a workload (built-in, entry point, import path) or give {kind: csv, ...}")
        return workload

    @property
    def workload_label(self) -> str:
        """The workload's short public name (plan title, ledger label, report)."""
        return self.workload.label_text() if isinstance(self.workload, CsvWorkloadSpec) else self.workload

    @property
    def dataset_name(self) -> str:
        """The protected dataset whose ledger this search is charged to: the workload's, never a name given.

        ``dataset:`` may only repeat it (see the validator above): a ledger belongs to the data, no aliases.
        """
        if isinstance(self.workload, CsvWorkloadSpec):
            return self.workload.dataset
        from tunedp.ledger.binding import protected_dataset, workload_is_known

        return protected_dataset(self.workload) if workload_is_known(self.workload) else (self.dataset or self.workload)

    def with_budget(self, *, epsilon: float | None, delta: float | None) -> SearchConfig:
        """A copy with the budget overridden from the command line (validated again)."""
        if epsilon is None and delta is None:
            return self
        budget = {
            "epsilon": self.budget.epsilon if epsilon is None else epsilon,
            "delta": self.budget.delta if delta is None else delta,
        }
        data = self.model_dump(mode="python")
        data["budget"] = budget
        return SearchConfig.model_validate(data, strict=False)


def format_validation_error(error: ValidationError) -> str:
    """One line: the first failing field's dotted path and what is wrong with it."""
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"] if not _is_union_tag(part))
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if first["type"] == "extra_forbidden":
        message = "unknown field; remove it or check its spelling"
    elif first["type"] == "missing":
        message = "required field is missing"
    elif first["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        # Name the discriminating field itself (``search.mode``), not only its parent.
        context = first.get("ctx") or {}
        tag_field = str(context.get("discriminator", "")).strip("'")
        if tag_field:
            location = f"{location}.{tag_field}" if location else tag_field
        if first["type"] == "union_tag_not_found":
            message = "required field is missing"
        else:
            message = f"{context.get('tag')!r} is not one of {context.get('expected_tags')}"
    return f"{location}: {message}" if location else message


def _is_union_tag(part: object) -> bool:
    """Pydantic puts the discriminator's value into error paths (``search.random.…``); drop it."""
    return part in {
        "random", "adaptive", "grid", "private", "public", "two_stage", "public_proxy", "hypo",
        "constant", "linear", "exponential", "step", "cyclic",
        "log_uniform", "uniform", "choice", "fixed",
        "named_workload", "csv", "numeric", "categorical",
    }  # fmt: skip


def parse_config(data: object, *, source: str = "config", base_dir: Path | None = None) -> SearchConfig:
    """Validate an already-parsed YAML document; errors become one-line ConfigErrors.

    ``base_dir`` is where relative data paths (``workload.path`` of a csv
    workload) are resolved: the config file's folder, else the working directory.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a YAML mapping at the top level")
    try:
        # Lax at the top level: YAML 1.1 reads ``1e-5`` (no dot) as a string,
        # and users mean the number; pydantic's lax mode parses it.
        config = SearchConfig.model_validate(data, strict=False, context={"base_dir": base_dir})
    except ValidationError as error:
        raise ConfigError(f"{source}: {format_validation_error(error)}") from None
    # Lax mode would also read ``true``/``yes`` as 1: a typo that silently sets
    # e.g. ``training.epochs`` to 1 and changes the privacy cost. Refuse it.
    where = _boolean_as_number(data, config, ())
    if where is not None:
        raise ConfigError(f"{source}: {where}: expected a number, got a YAML boolean; write the number")
    return config


def _boolean_as_number(data: object, validated: object, path: tuple[str, ...]) -> str | None:
    """Dotted path of the first YAML boolean that validation turned into something else."""
    if isinstance(data, bool):
        return None if isinstance(validated, bool) else ".".join(path)
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(validated, BaseModel):
                child = getattr(validated, str(key), None)
            elif isinstance(validated, dict):
                child = validated.get(key)
            else:
                child = None
            found = _boolean_as_number(value, child, (*path, str(key)))
            if found is not None:
                return found
    elif isinstance(data, list):
        items = validated if isinstance(validated, list | tuple) else ()
        for index, value in enumerate(data):
            child = items[index] if index < len(items) else None
            found = _boolean_as_number(value, child, (*path, str(index)))
            if found is not None:
                return found
    return None


def load_config(path: Path | str) -> SearchConfig:
    """Read and validate a YAML search config; every failure is a one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--config: file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"--config: cannot read {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}; fix the syntax") from None
    return parse_config(data, source=str(path), base_dir=path.resolve().parent)
