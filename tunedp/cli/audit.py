"""``tunedp audit``: an empirical privacy audit of one planned trial (claimed vs measured ε).

It trains on the protected data, so it goes through a search's pre-charge
checks and is charged like one trial (``--public``: a workload declared
public, nothing charged); the audit itself is ``tunedp.audit.command``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from tunedp.cli.options import ConfigOption, JsonOption, LedgerOption, load_search_config
from tunedp.cli.output import UserError, console, err_console, quiet_libraries

__all__ = ["DEFAULT_CANARIES", "audit_command"]


#: 5000 audit canaries (and 5000 references): a clip at 2·C is caught at a claim of 1 (benchmarks/README.md).
DEFAULT_CANARIES = 5000


def audit_command(
    config: ConfigOption,
    public: Annotated[
        bool,
        typer.Option("--public", help="The config's workload is declared public (e.g. mnist_public): charge nothing."),
    ] = False,
    canaries: Annotated[
        int,
        typer.Option("--canaries", help="Audit canaries m (each in w.p. 1/2); DP-SGD adds as many references."),
    ] = DEFAULT_CANARIES,
    ledger: LedgerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Empirical privacy audit of one planned trial (one run, Steinke et al. 2023): claimed vs measured ε.

    It trains on the protected data, so it passes a search's pre-charge checks
    and is charged to the ledger like one trial, before training; --public,
    for a workload declared public only, charges nothing.
    """
    if canaries < 2:
        raise UserError(f"--canaries: {canaries} must be an integer >= 2")
    if public and ledger is not None:
        raise UserError("--ledger: a --public audit charges no ledger; drop --ledger")
    quiet_libraries()
    search_config = load_search_config(config, None, None)
    from tunedp.audit.command import run_config_audit  # torch and the trial loop: once the config is good

    result = run_config_audit(
        search_config,
        public=public,
        canaries=canaries,
        ledger_path=ledger,
        announce=lambda line: err_console.print(escape(line), highlight=False, soft_wrap=True),
    )
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return
    verdict = "[red]claim VIOLATED[/]" if result.violates_claim else "consistent with the claim"
    check = result.clip_check
    clip = (
        "; clip check not run (needs dp_sgd and --canaries >= 200)"
        if check is None
        else f"; clip check: one example moves the model by ≈ {check.contribution:.2f}·C (p = {check.p_value:.2g})"
    )
    console.print(
        f"claimed ε = {result.claimed_epsilon:.4f}; empirical lower bound ε ≥ {result.empirical_epsilon:.4f} "
        f"({result.counts.correct} of {result.counts.guesses} guesses right, {result.counts.canaries} canaries)"
        f"{clip}; at {result.confidence:.0%} confidence: {verdict}",
        highlight=False,
    )
