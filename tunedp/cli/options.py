"""Options that several commands share, and the checks on their values.

``--config``, ``--budget``, ``--delta``, ``--ledger``, ``--json`` … are declared
once here, so that one option reads, helps and refuses the same way in every
command. ``load_search_config`` is the one way a command turns ``--config``
and its ``--budget``/``--delta`` overrides into a validated ``SearchConfig``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from tunedp.cli.output import UserError
from tunedp.config import SearchConfig, load_config
from tunedp.workloads.contract import check_delta_range

__all__ = [
    "BudgetOption",
    "ConfigOption",
    "DatasetOption",
    "DeltaOption",
    "JsonOption",
    "LedgerOption",
    "MaxConcurrentOption",
    "UrlOption",
    "WorkloadConfigOption",
    "check_max_concurrent",
    "check_positive",
    "load_search_config",
]

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Search config (YAML).", dir_okay=False, show_default=False)
]
BudgetOption = Annotated[
    float | None, typer.Option("--budget", help="Override budget.epsilon of the config.", show_default=False)
]
DeltaOption = Annotated[
    float | None, typer.Option("--delta", help="Override budget.delta of the config.", show_default=False)
]
LedgerOption = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        help="Ledger file or postgresql://USER@HOST:PORT/DB (default: $TUNEDP_LEDGER_URL, else "
        "$TUNEDP_HOME/ledgers/<dataset>.sqlite, else ~/.local/share/tunedp/ledgers/).",
        show_default=False,
    ),
]
WorkloadConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="A search config: its workload (built-in, import path, entry point or csv) names the dataset, "
        "its sizes and the rows to bind.",
        dir_okay=False,
        show_default=False,
    ),
]
# metavar="": typer would otherwise show a flag as taking a "<bool>" value.
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.", metavar="")]
MaxConcurrentOption = Annotated[
    int | None, typer.Option("--max-concurrent", help="Trials at once (default: the cluster's CPUs).")
]
DatasetOption = Annotated[str | None, typer.Option("--dataset", help="Protected dataset name.", show_default=False)]
UrlOption = Annotated[str, typer.Option("--url", help="postgresql://USER@HOST:PORT/DATABASE", show_default=False)]


def check_positive(name: str, value: float | None) -> None:
    """Refuse a ``value`` of option ``name`` that is not a finite number > 0 (``None``: not given, fine)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UserError(f"{name}: {value} must be a finite number > 0")


def check_max_concurrent(max_concurrent: int | None) -> None:
    """Refuse ``--max-concurrent`` below one trial at once."""
    if max_concurrent is not None and max_concurrent < 1:
        raise UserError(f"--max-concurrent: {max_concurrent} must be >= 1")


def load_search_config(config_path: Path, budget: float | None, delta: float | None) -> SearchConfig:
    """The config at ``config_path`` with ``--budget``/``--delta`` applied; a bad value is one ``UserError``."""
    check_positive("--budget", budget)
    if delta is not None:
        check_delta_range(delta, field="--delta", error=UserError)
    config = load_config(config_path)
    try:
        return config.with_budget(epsilon=budget, delta=delta)
    except Exception as error:  # pydantic ValidationError: reuse the one-line formatter
        from pydantic import ValidationError

        from tunedp.config import format_validation_error

        if isinstance(error, ValidationError):
            raise UserError(format_validation_error(error)) from None
        raise
