"""``tunedp plan``: calibrate σ, price the whole search, run its pre-flight and ask the ledger, charging nothing.

The command reads no private data, so it is the one to run first and as
often as one likes; its table is drawn by ``tunedp.cli.plan_table``, its
``--json`` document is the plan's figures plus the ledger's verdict and the
pre-flight's estimate.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tunedp.cli.ledger_access import ledger_exists, open_ledger, resolve_ledger_path
from tunedp.cli.options import (
    BudgetOption,
    ConfigOption,
    DeltaOption,
    JsonOption,
    LedgerOption,
    MaxConcurrentOption,
    check_max_concurrent,
    load_search_config,
)
from tunedp.cli.output import print_error, quiet_libraries
from tunedp.cli.plan_table import LedgerVerdict, print_plan

__all__ = ["plan_command"]


def plan_command(
    config: ConfigOption,
    budget: BudgetOption = None,
    delta: DeltaOption = None,
    ledger: LedgerOption = None,
    as_json: JsonOption = False,
    no_preflight: Annotated[
        bool,
        typer.Option(
            "--no-preflight", help="Skip building the model and the synthetic step (and the time estimate).", metavar=""
        ),
    ] = False,
    max_concurrent: MaxConcurrentOption = None,
) -> None:
    """Calibrate σ, price the whole search and run its pre-flight; reads no private data and charges nothing.

    Exits 1 (after printing the plan) when the ledger cannot admit it, 2 when a pre-flight check fails.
    """
    quiet_libraries()
    check_max_concurrent(max_concurrent)
    search_config = load_search_config(config, budget, delta)
    # Imported once the options and the config are known good: a mistake in them is reported in
    # well under a second instead of after dp_accounting's and the pre-flight's imports (≈ 2 s).
    from tunedp.planning import plan_search
    from tunedp.run.preflight import check_ledger_delta, run_preflight, score_noise_std

    search_plan = plan_search(search_config)
    checked = run_preflight(search_plan, model=not no_preflight, max_concurrent=max_concurrent)
    figures = search_plan.figures()
    ledger_path = resolve_ledger_path(search_config.dataset_name, ledger)
    verdict: LedgerVerdict | None = None
    if ledger_exists(ledger_path, search_config.dataset_name):
        opened = open_ledger(ledger_path, search_config.dataset_name)
        check_ledger_delta(search_plan, opened)  # the ε printed is the ε this ledger would record
        fits, after = opened.admissible(search_plan.event)
        verdict = LedgerVerdict(
            admissible=fits,
            spent_epsilon=opened.spent_epsilon(),
            spent_after_epsilon=after,
            epsilon=opened.epsilon,
            delta=opened.delta,
        )
    if as_json:
        document = figures.to_json()
        document["ledger"] = str(ledger_path)
        document["admissible"] = None if verdict is None else verdict.admissible
        if verdict is not None:
            document.update(
                ledger_spent_epsilon=verdict.spent_epsilon,
                ledger_spent_after_epsilon=verdict.spent_after_epsilon,
                ledger_epsilon=verdict.epsilon,
                ledger_delta=verdict.delta,
            )
        document.update(
            score_noise_std=score_noise_std(search_plan),
            preflight=None if no_preflight else "passed",
            step_seconds=checked.step_seconds,
            estimated_wall_s=checked.estimated_wall_s,
            estimated_wall_s_median=checked.estimated_wall_s_median,
            estimated_wall_s_p90=checked.estimated_wall_s_p90,
            concurrency=checked.concurrency,
            warnings=list(checked.warnings),
        )
        print(json.dumps(document, indent=2))
    else:
        print_plan(figures, ledger_path, verdict, preflight=checked, score_std=score_noise_std(search_plan))
        for warning in checked.warnings:
            print_error(warning, prefix="warning:")
    if verdict is not None and not verdict.admissible:
        if not as_json:
            print_error(
                f"budget: ledger {ledger_path} cannot admit this search (spent would be "
                f"{verdict.spent_after_epsilon:.4g} of {verdict.epsilon:g}); lower --budget"
            )
        raise typer.Exit(1)
