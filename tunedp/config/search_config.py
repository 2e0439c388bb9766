"""The whole config: :class:`SearchConfig` (workload, budget, mode, training, validation, optimizer, space).

Each section is its own model (:mod:`~tunedp.config.search_modes`,
:mod:`~tunedp.config.params`, :mod:`~tunedp.config.training`,
:mod:`~tunedp.config.validation`); this module holds what only the whole config
can check: the lr–clip coupling against the optimizer, grid search against the
distributions, one way to name the model, ``dataset:`` against the workload's.
It also holds the budget and the fingerprint stored with each charge.

Imports neither torch nor Ray nor MLflow.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator, model_validator

from tunedp.config.params import ChoiceParam, FixedParam, SearchSpace
from tunedp.config.search_modes import GridSearch, SearchMode
from tunedp.config.strict import STRICT
from tunedp.config.training import Resources, Training
from tunedp.config.validation import Validation
from tunedp.optim.specs import CLIP_INVARIANT_OPTIMIZERS, OPTIMIZER_NAMES
from tunedp.workloads.csv_table import CsvWorkloadSpec

__all__ = ["ADAM_TYPE_OPTIMIZERS", "OPTIMIZERS", "Budget", "SearchConfig", "WorkloadField"]

OPTIMIZERS = OPTIMIZER_NAMES
#: Update rules whose step is invariant to the clipping norm C (the noisy
#: gradient and its noise both scale with C, and the update normalises it away),
#: so only the learning rate is searched (Mohapatra et al., AAAI 2022).
ADAM_TYPE_OPTIMIZERS = CLIP_INVARIANT_OPTIMIZERS


class Budget(BaseModel):
    """The (ε, δ) this one search may spend (a share of the ledger's global budget)."""

    model_config = STRICT
    epsilon: float = Field(gt=0, allow_inf_nan=False)
    delta: float = Field(gt=0, lt=1, allow_inf_nan=False)


def _workload_kind(value: object) -> str:
    return "csv" if isinstance(value, dict | CsvWorkloadSpec) else "named_workload"


WorkloadField = Annotated[
    Annotated[str, Tag("named_workload")] | Annotated[CsvWorkloadSpec, Tag("csv")],
    Discriminator(_workload_kind),
]


class SearchConfig(BaseModel):
    """One search: workload, budget share, mode, trial length, validation, optimizer, space."""

    model_config = STRICT
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
        from tunedp.workloads.identity import require_dataset, workload_is_known

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
        from tunedp.workloads.identity import protected_dataset, workload_is_known

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
