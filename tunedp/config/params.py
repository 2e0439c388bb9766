"""The ``space:`` section: the hyperparameters a search may name, their distributions, and the model variants.

:class:`SearchSpace` makes the lr–clip coupling explicit (which of ``lr``,
``step_size`` and ``clip_norm`` is searched); whether the coupling fits the
optimizer is checked by :class:`~tunedp.config.search_config.SearchConfig`,
which sees both. :mod:`tunedp.config.space` turns a sampled point into the
optimizer's settings.

Imports neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from tunedp.config.strict import STRICT

__all__ = [
    "HYPERPARAMETERS",
    "ChoiceParam",
    "FixedParam",
    "LogUniformParam",
    "ModelChoice",
    "Param",
    "SearchSpace",
    "UniformParam",
]

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


class LogUniformParam(BaseModel):
    model_config = STRICT
    distribution: Literal["log_uniform"] = "log_uniform"
    low: float = Field(gt=0, allow_inf_nan=False)
    high: float = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> LogUniformParam:
        if self.low >= self.high:
            raise ValueError(f"low={self.low} must be < high={self.high}")
        return self


class UniformParam(BaseModel):
    model_config = STRICT
    distribution: Literal["uniform"] = "uniform"
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> UniformParam:
        if self.low >= self.high:
            raise ValueError(f"low={self.low} must be < high={self.high}")
        return self


class ChoiceParam(BaseModel):
    model_config = STRICT
    distribution: Literal["choice"] = "choice"
    values: tuple[float, ...] = Field(min_length=1)


class FixedParam(BaseModel):
    model_config = STRICT
    distribution: Literal["fixed"] = "fixed"
    value: float = Field(allow_inf_nan=False)


Param = Annotated[LogUniformParam | UniformParam | ChoiceParam | FixedParam, Field(discriminator="distribution")]


class ModelChoice(BaseModel):
    """The model variants a search chooses among: names the workload declares (checked before the charge).

    A variant is a hyperparameter like any other: it changes nothing in the
    accounting (every trial has the same steps, σ, q and score releases), and
    under ``release: best`` only the released trial's variant leaves the driver.
    """

    model_config = STRICT
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

    model_config = STRICT
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
