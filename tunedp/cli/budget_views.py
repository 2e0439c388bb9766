"""``tunedp budget show``, ``history`` and ``verify``: the commands that read a ledger and change nothing.

``show`` is the budget at a glance (or, with ``--plot``, one HTML page),
``history`` the audit trail of charges and refusals, ``verify`` recomputes
every charge from its stored DpEvent. Each has a ``--json`` twin of what it
prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from tunedp.accounting.remaining import remaining_epsilon
from tunedp.cli.budget_setup import budget_target
from tunedp.cli.ledger_access import open_for_reading
from tunedp.cli.options import DatasetOption, JsonOption, LedgerOption, WorkloadConfigOption
from tunedp.cli.output import UserError, console, print_error, quiet_libraries

if TYPE_CHECKING:
    from tunedp.ledger import LedgerUrl
    from tunedp.ledger.sqlite import PrivacyLedger

__all__ = ["budget_history", "budget_show", "budget_verify"]


def budget_show(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Protected dataset name.", show_default=False)
    ] = None,
    config: WorkloadConfigOption = None,
    ledger: LedgerOption = None,
    as_json: JsonOption = False,
    plot: Annotated[
        bool,
        typer.Option(
            "--plot",
            help="Draw the budget as one HTML page (ε spent over the charges, the cap, each search's charge) "
            "and print its path; beside a sqlite ledger unless --plot-file.",
            metavar="",
        ),
    ] = False,
    plot_file: Annotated[
        Path | None,
        typer.Option(
            "--plot-file",
            help="Where --plot writes the page (a file, or a folder for DATASET.budget.html); "
            "needed for a PostgreSQL ledger. Implies --plot.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Global, spent and remaining budget, and one line per charged search (--plot: as an HTML page)."""
    quiet_libraries()
    plot = plot or plot_file is not None
    if plot and as_json:
        raise UserError("--plot: writes a page and prints its path; drop --json (or run budget show --json apart)")
    if config is not None:  # the dataset the config's workload reads, as for `budget init --config`
        dataset = budget_target(dataset, config, None)[1]
    path, opened = open_for_reading(dataset, ledger)
    if plot:
        _write_budget_page(path, opened, plot_file)
        return
    charges = opened.charges()
    spent = opened.spent_epsilon()
    summary = {
        "dataset": opened.dataset,
        "ledger": str(path.absolute()) if isinstance(path, Path) else str(path),
        "fingerprint": opened.fingerprint or None,
        "key_id": opened.key_id or None,
        "epsilon": opened.epsilon,
        "delta": opened.delta,
        "spent_epsilon": spent,
        "remaining_epsilon": remaining_epsilon(opened.epsilon, spent),
        "charges": [
            {
                "search_id": c.search_id,
                "created_at": c.created_at[:10],  # the UTC day (older ledgers stored seconds)
                "mode": c.mode,
                "label": c.label,
                "epsilon": c.epsilon,
                "status": c.status,
                "config_hash": c.config_hash,
            }
            for c in charges
        ],
    }
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    console.print(
        f"[bold]{opened.dataset}[/]: global ε = {opened.epsilon:g}, δ = {opened.delta:g}; "
        f"spent ε = {spent:.4f}; remaining ε ≈ {summary['remaining_epsilon']:.4f} "
        "(RDP composition; not additive)"
    )
    console.print(f"ledger: {summary['ledger']}", highlight=False, soft_wrap=True)
    console.print(
        f"data fingerprint (key id {opened.key_id}):\n{opened.fingerprint}"
        if opened.bound
        else "data fingerprint: none (unbound; run `tunedp budget bind`)",
        highlight=False,
        soft_wrap=True,
    )
    # Search ids never wrap (they are what a user copies); the label gives way first.
    table = Table(box=None, pad_edge=False)
    table.add_column("search", no_wrap=True, min_width=12)
    table.add_column("day (UTC)", no_wrap=True)
    table.add_column("mode", no_wrap=True)
    table.add_column("label", overflow="ellipsis", no_wrap=True, max_width=24)
    table.add_column("ε alone", no_wrap=True, justify="right")
    table.add_column("status", no_wrap=True)
    for c in charges:
        table.add_row(c.search_id[:12], c.created_at[:10], c.mode, c.label, f"{c.epsilon:.4f}", c.status)
    console.print(table)


def _write_budget_page(location: Path | LedgerUrl, opened: PrivacyLedger, target: Path | None) -> None:
    """``budget show --plot``: the page beside a sqlite ledger (or at ``target``); prints its path, one line."""
    from tunedp.observe.budget_page import budget_page, default_page_path, write_page

    if target is None:
        if not isinstance(location, Path):
            raise UserError(
                f"--plot-file: a PostgreSQL ledger ({location}) has no folder to write the page beside; "
                f"give its path, e.g. --plot-file {opened.dataset}.budget.html"
            )
        target, field = default_page_path(location), "--plot"
    else:
        field = "--plot-file"
    folder = target if target.is_dir() else target.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise UserError(f"{field}: {folder} {what}; give --plot-file PATH in a folder you can write")
    try:
        written = write_page(budget_page(opened), target)
    except OSError as error:
        raise UserError(
            f"{field}: cannot write the page to {target} ({error.strerror or error}); give --plot-file PATH elsewhere"
        ) from error
    console.print(str(written.absolute()), highlight=False, markup=False, soft_wrap=True)


def budget_history(dataset: DatasetOption = None, ledger: LedgerOption = None, as_json: JsonOption = False) -> None:
    """The audit trail: every charge (role, search id, event, mode, day) and every refusal."""
    from tunedp.accounting.serialization import event_to_json

    quiet_libraries()
    path, opened = open_for_reading(dataset, ledger)
    charges, refusals = opened.charges(), opened.refusals()
    charge_rows: list[dict[str, Any]] = [
        {
            "search_id": c.search_id,
            "role": c.charged_by,
            "day": c.created_at[:10],
            "mode": c.mode,
            "label": c.label,
            "epsilon": c.epsilon,
            "status": c.status,
            "event": event_to_json(c.event),
        }
        for c in charges
    ]
    refusal_rows: list[dict[str, Any]] = [
        {
            "search_id": r.search_id,
            "role": r.refused_by,
            "day": r.day,
            "mode": r.mode,
            "reason": r.reason,
            "epsilon_after": r.epsilon_after,
        }
        for r in refusals
    ]
    if as_json:
        trail = {"dataset": opened.dataset, "ledger": str(path), "charges": charge_rows, "refusals": refusal_rows}
        print(json.dumps(trail, indent=2))
        return
    console.print(
        f"[bold]{opened.dataset}[/] at {escape(str(path))}: {len(charges)} charge(s), {len(refusals)} refusal(s)"
    )
    for entry in charge_rows:
        event = json.dumps(entry["event"], separators=(",", ":"))
        console.print(
            f"{entry['day']}  charged  {entry['search_id']}  role={entry['role'] or '-'}  mode={entry['mode']}  "
            f"ε alone={entry['epsilon']:.4f}  status={entry['status']}  event={event}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for entry in refusal_rows:
        after = "" if entry["epsilon_after"] is None else f"  would bring spent to {entry['epsilon_after']:.4f}"
        console.print(
            f"{entry['day']}  REFUSED  {entry['search_id']}  role={entry['role']}  mode={entry['mode']}  "
            f"{entry['reason']}{after}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if isinstance(path, Path):
        console.print("(a sqlite ledger keeps no refusal log: a refused charge leaves the file unchanged)")


def budget_verify(dataset: DatasetOption = None, ledger: LedgerOption = None, as_json: JsonOption = False) -> None:
    """Recompute every charge's RDP curve from its stored DpEvent; name the short ones and who made them (exit 1)."""
    quiet_libraries()
    path, opened = open_for_reading(dataset, ledger)
    short = opened.verify()
    count = len(opened.charges())
    if as_json:
        print(
            json.dumps(
                {
                    "dataset": opened.dataset,
                    "ledger": str(path),
                    "charges": count,
                    "short": [
                        {
                            "search_id": s.search_id,
                            "role": s.charged_by,
                            "day": s.day,
                            "orders": list(s.orders),
                            "stored_epsilon": s.stored_epsilon,
                            "recomputed_epsilon": s.recomputed_epsilon,
                        }
                        for s in short
                    ],
                },
                indent=2,
            )
        )
    elif not short:
        what = (
            "its stored curve matches its event"
            if not isinstance(path, Path)
            else "rows checked (sqlite stores no curves)"
        )
        console.print(f"{opened.dataset}: {count} charge(s) verified; {what}", highlight=False)
    for s in short if not as_json else ():
        print_error(
            f"charge {s.search_id} by role {s.charged_by or '-'} on {s.day}: its stored curve is short at "
            f"{len(s.orders)} order(s) (ε {s.stored_epsilon:.4g} stored, {s.recomputed_epsilon:.4g} by its event)",
            prefix="SHORT:",
        )
    if short:
        raise typer.Exit(1)
