"""``tunedp budget init``, ``bind`` and ``migrate``: the commands that write a dataset's ledger.

``init`` creates it with its global (ε, δ), ``bind`` binds it to the data its
workload loads, ``migrate`` moves it to PostgreSQL; the checks on δ and on
the dataset a command names live beside them. A global budget is set once
and never reset, so every check runs before the ledger is written. The
read-only commands (``show``, ``history``, ``verify``) are in
``tunedp.cli.budget_views``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tunedp.cli.ledger_access import ledger_exists, open_ledger, resolve_ledger_path
from tunedp.cli.options import LedgerOption, WorkloadConfigOption, check_positive
from tunedp.cli.output import UserError, console, quiet_libraries
from tunedp.config import load_config
from tunedp.workloads.contract import check_delta_range

if TYPE_CHECKING:
    from tunedp.workloads import WorkloadReference

__all__ = ["budget_bind", "budget_init", "budget_migrate", "budget_target"]


def budget_init(
    epsilon: Annotated[float, typer.Option("--epsilon", help="Global ε.", show_default=False)],
    delta: Annotated[float, typer.Option("--delta", help="Global δ.", show_default=False)],
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Protected dataset name.", show_default=False)
    ] = None,
    config: WorkloadConfigOption = None,
    size: Annotated[
        int | None,
        typer.Option("--size", help="Examples in the dataset (required for a dataset tunedp does not know)."),
    ] = None,
    ledger: LedgerOption = None,
) -> None:
    """Create the ledger of a protected dataset with its global (ε, δ), bound to the data its workload loads."""
    from tunedp.ledger.binding import create_ledger
    from tunedp.workloads.identity import workloads_of

    check_positive("--epsilon", epsilon)  # before --size: the first thing a user types is checked first
    workload, dataset = budget_target(dataset, config, size)
    if workload is not None:
        _check_delta_against_workload(workload, delta)
    else:
        _check_delta_against_dataset(dataset, delta, size)
    path = resolve_ledger_path(dataset, ledger)
    if ledger_exists(path, dataset):
        raise UserError(f"--ledger: ledger {path} already exists for {dataset!r}; a global budget cannot be reset")
    readers = [_workload_label(workload)] if workload is not None else workloads_of(dataset)
    if readers:
        console.print(f"loading the data of workload {readers[0]!r} to fingerprint it …", highlight=False)
    created = create_ledger(path, dataset=dataset, epsilon=epsilon, delta=delta, workload=workload)
    console.print(f"created ledger for {dataset!r}: ε = {created.epsilon:g}, δ = {created.delta:g} at {path}")
    if created.bound:
        console.print(f"data fingerprint: {created.fingerprint} (key id {created.key_id})", highlight=False)
    else:
        console.print(
            f"no workload reads {dataset!r}: the ledger is unbound and no search can charge it until "
            "`tunedp budget bind` binds it to a workload's data (or use `budget init --config`)",
            highlight=False,
        )


def _workload_label(workload: WorkloadReference) -> str:
    from tunedp.workloads import reference_label

    return reference_label(workload)


def budget_target(dataset: str | None, config: Path | None, size: int | None) -> tuple[WorkloadReference | None, str]:
    """(the config's workload or None, the dataset) for ``budget init``/``bind``: a dataset, or a config naming one.

    With ``--config`` the workload declares the dataset and its sizes, so
    ``--size`` is refused and a ``--dataset`` must agree (no aliases).
    """
    from tunedp.workloads.identity import require_dataset

    if config is None:
        if dataset is None:
            raise UserError(
                "--dataset: give the dataset name, or --config with a search config that names its workload"
            )
        return None, dataset
    if size is not None:
        raise UserError("--size: the config's workload declares its sizes; drop --size")
    workload = load_config(config).workload
    return workload, require_dataset(workload, dataset, "--dataset")


def _check_delta_against_workload(workload: WorkloadReference, delta: float) -> None:
    """δ ≤ 1/n with n the protected examples the config's workload declares."""
    from tunedp.workloads import resolve_workload

    check_delta_range(delta, field="--delta", error=UserError)
    resolve_workload(workload).sizes.check_delta(delta, field="--delta")


def budget_bind(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Protected dataset name.", show_default=False)
    ] = None,
    config: WorkloadConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Bind a ledger made before data fingerprints (or unbound) to the data its workload loads now; keeps charges."""
    from tunedp.ledger.binding import bind_ledger
    from tunedp.ledger.sqlite import PrivacyLedger

    if dataset is None and config is None and ledger is None:
        raise UserError("--dataset: give the dataset name (or --config, or --ledger PATH)")
    workload, named = budget_target(dataset, config, None) if (dataset or config) else (None, None)
    path = resolve_ledger_path(named or "", ledger)
    opened = PrivacyLedger.open_for_binding(path, dataset=named) if isinstance(path, Path) else open_ledger(path, named)
    bound = bind_ledger(opened, workload)
    console.print(
        f"bound ledger {path} to the data of workload {_workload_label(bound)!r}: fingerprint {opened.fingerprint} "
        f"(key id {opened.key_id}); every search now verifies it before charging",
        highlight=False,
    )


def _check_delta_against_dataset(dataset: str, delta: float, size: int | None) -> None:
    """δ ≤ 1/n, with n the examples the trials touch (declared by a built-in workload, or ``--size``)."""
    from tunedp.workloads import BUILTIN_WORKLOADS, check_delta, resolve_workload

    check_delta_range(delta, field="--delta", error=UserError)
    declared = (resolve_workload(name).sizes for name in BUILTIN_WORKLOADS)
    known = [sizes.protected for sizes in declared if sizes.dataset == dataset]
    if size is not None and size < 1:
        raise UserError(f"--size: {size} must be a positive number of examples")
    if known and size is not None and size != known[0]:
        raise UserError(f"--size: dataset {dataset!r} has {known[0]} protected examples, not {size}; drop --size")
    n = known[0] if known else size
    if n is None:
        raise UserError(
            f"--size: tunedp does not know how many examples dataset {dataset!r} has; "
            "give --size N so that delta <= 1/N can be checked"
        )
    check_delta(delta, n, field="--delta", dataset=dataset)


def budget_migrate(
    source: Annotated[Path, typer.Option("--from", help="The sqlite ledger file to move.", dir_okay=False)],
    target: Annotated[str, typer.Option("--to", help="postgresql://USER@HOST:PORT/DB (the owner's role).")],
) -> None:
    """Move a sqlite ledger (budget, binding and every charge) to a PostgreSQL ledger; refuses an existing dataset."""
    from tunedp.ledger import LedgerUrl, looks_like_url
    from tunedp.ledger.migrate import migrate

    quiet_libraries()
    if not looks_like_url(target):
        raise UserError("--to: give the PostgreSQL ledger as postgresql://USER@HOST:PORT/DATABASE")
    moved = migrate(source, LedgerUrl.parse(target, field="--to"))
    console.print(
        f"moved {moved.dataset!r} (ε = {moved.epsilon:g}, δ = {moved.delta:g}, {moved.charges} charge(s)"
        f"{', bound' if moved.bound else ''}) from {source} to {moved.url}; keep {source} as a read-only backup",
        highlight=False,
    )
