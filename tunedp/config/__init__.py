"""Stage 1 of the pipeline (docs/architecture.md §1): what the user wrote, as frozen, strict pydantic models.

A search config is loaded from YAML (``search_spaces/*.yaml``) and nothing
else is read: no data, no ledger, no cluster. Every model is frozen (a plan
derived from a config cannot be mutated under it) and forbids unknown fields
(a typo such as ``epochz`` must be an error, not a silently ignored key that
changes the privacy cost); see :mod:`~tunedp.config.strict`. Errors reach the
CLI as one line through :func:`format_validation_error`.

Modules, by what they hold:

- :mod:`~tunedp.config.search_config` — :class:`SearchConfig`, the whole config, its budget and
  the checks only the whole config can make;
- :mod:`~tunedp.config.search_modes` — the ``search:`` section, one model per mode;
- :mod:`~tunedp.config.params` — the ``space:`` section: hyperparameters, distributions, model variants;
- :mod:`~tunedp.config.training` — the ``training:`` and ``resources:`` sections;
- :mod:`~tunedp.config.validation` — the ``validation:`` section (private or public scores);
- :mod:`~tunedp.config.loading` — YAML → :class:`SearchConfig`, every failure one :class:`ConfigError` line;
- :mod:`~tunedp.config.space` — a sampled point → the optimizer's settings (the lr–clip coupling);
- :mod:`~tunedp.config.strict` — the model configuration every model shares.

May import: ``tunedp.errors``, ``tunedp.accounting.schedule`` (noise schedules),
``tunedp.optim.specs`` and ``tunedp.optim.lr_schedule`` (torch-free optimizer
names and lr schedules), ``tunedp.workloads.csv_table`` (the csv workload's
declaration); and, deferred inside :class:`SearchConfig`'s ``dataset:`` check,
``tunedp.workloads.identity`` (which dataset a workload reads). Never
``tunedp.ledger``, ``tunedp.planning``, ``tunedp.run``, ``tunedp.cli``. Imports neither torch nor
Ray nor MLflow.

This package is the public face: other packages import the models and loaders from
``tunedp.config`` (the modules are its layout, not its API); only
:func:`~tunedp.config.space.optimizer_hyperparameters` is imported from its module.
"""

from __future__ import annotations

from tunedp.config.loading import format_validation_error, load_config, parse_config
from tunedp.config.params import (
    HYPERPARAMETERS,
    ChoiceParam,
    FixedParam,
    LogUniformParam,
    ModelChoice,
    Param,
    SearchSpace,
    UniformParam,
)
from tunedp.config.search_config import ADAM_TYPE_OPTIMIZERS, OPTIMIZERS, Budget, SearchConfig, WorkloadField
from tunedp.config.search_modes import (
    DEFAULT_TRANSFER_EXPONENT,
    AdaptiveSearch,
    GridSearch,
    HypoSearch,
    PublicProxySearch,
    RandomSearch,
    SearchMode,
    StagedSearch,
    StageOneMode,
    TransferRule,
    TwoStageSearch,
)
from tunedp.config.training import Resources, Training
from tunedp.config.validation import PrivateValidation, PublicValidation, Validation
from tunedp.errors import ConfigError

__all__ = [
    "ADAM_TYPE_OPTIMIZERS",
    "DEFAULT_TRANSFER_EXPONENT",
    "HYPERPARAMETERS",
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
    "Param",
    "PrivateValidation",
    "PublicProxySearch",
    "PublicValidation",
    "RandomSearch",
    "Resources",
    "SearchConfig",
    "SearchMode",
    "SearchSpace",
    "StageOneMode",
    "StagedSearch",
    "Training",
    "TransferRule",
    "TwoStageSearch",
    "UniformParam",
    "Validation",
    "WorkloadField",
    "format_validation_error",
    "load_config",
    "parse_config",
]
