"""``tunedp search``: plan, charge the ledger, run the trials, release; ``--resume`` and ``--abandon``.

Besides the command: the observers a search reports to (the console,
MLflow unless switched off), the per-trial resources the command line
overrides, what is printed when a search ends, and ``_ChargeWitness``, which
lets an interruption say truthfully whether the ledger was charged. The
driver (and with it Ray and torch) is imported only when the command runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tunedp.cli.ledger_access import resolve_ledger_path
from tunedp.cli.options import (
    BudgetOption,
    DeltaOption,
    LedgerOption,
    MaxConcurrentOption,
    check_max_concurrent,
    load_search_config,
)
from tunedp.cli.output import UserError, console, err_console, print_error, quiet_libraries
from tunedp.config import SearchConfig
from tunedp.errors import UnboundLedgerError
from tunedp.observe.protocol import SearchObserver

if TYPE_CHECKING:
    from tunedp.ledger.sqlite import Charge, PrivacyLedger
    from tunedp.observe.protocol import SearchOutcome
    from tunedp.planning.single_stage import SearchPlan

__all__ = ["search_command"]


def search_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Search config (YAML).", dir_okay=False, show_default=False),
    ] = None,
    budget: BudgetOption = None,
    delta: DeltaOption = None,
    dataset_ledger: Annotated[
        str | None,
        typer.Option(
            "--dataset-ledger",
            help="Must name the workload's own dataset (the ledger is chosen by the data; no aliases).",
        ),
    ] = None,
    ledger: LedgerOption = None,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="Existing Ray cluster (host:port).")] = None,
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking-uri", help="MLflow tracking URI (default: sqlite under mlflow/).")
    ] = None,
    max_concurrent: MaxConcurrentOption = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Reproducible run (K, the points, the noise); default: OS entropy."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Folder for the report and best model.", file_okay=False)
    ] = None,
    cpus_per_trial: Annotated[
        float | None, typer.Option("--cpus-per-trial", help="CPUs per trial (default: the config's resources.cpus).")
    ] = None,
    gpus_per_trial: Annotated[
        float | None,
        typer.Option("--gpus-per-trial", help="GPUs per trial, fractions share a GPU (default: resources.gpus)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Allow a non-empty --output folder (its files may be replaced).", metavar="")
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume", help="Continue the interrupted search in this output folder (no new charge).", file_okay=False
        ),
    ] = None,
    abandon: Annotated[
        Path | None,
        typer.Option(
            "--abandon", help="Give up the interrupted search in this folder: delete its secret state.", file_okay=False
        ),
    ] = None,
    register: Annotated[
        str | None,
        typer.Option(
            "--register",
            help="Register the released model as a new version of NAME in the MLflow Model Registry "
            "(checked before the charge).",
            metavar="NAME",
        ),
    ] = None,
) -> None:
    """Plan, charge the ledger, run the trials on Ray Tune, release the best and a privacy report."""
    # The driver (torch, Ray, dp_accounting: ≈ 5 s of imports) is imported only once the options and
    # the config are known good, so a mistake in them is a one-line error in well under a second.
    quiet_libraries()
    check_max_concurrent(max_concurrent)
    if abandon is not None:
        from tunedp.run.resume import abandon as abandon_search

        abandoned = abandon_search(abandon)
        console.print(
            f"abandoned search {abandoned[:12]}: its secret state is deleted; "
            "the charge stays on the ledger and nothing is released",
            highlight=False,
        )
        return
    if resume is not None:
        if config is not None or output is not None:
            raise UserError("--resume: the folder holds the config and is the output; drop --config and --output")
        if register is not None:
            raise UserError("--register: a resumed search keeps the version its first start registered; drop it")
        observers = _observers(tracking_uri)
        from tunedp.run.driver import SearchError, resume_search
        from tunedp.run.interrupts import sigterm_as_interrupt

        with sigterm_as_interrupt() as interrupt:
            try:
                outcome = resume_search(
                    resume, ray_address=ray_address, max_concurrent=max_concurrent, observers=observers
                )
            except SearchError as error:
                print_error(str(error), prefix="search failed:")
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                err_console.print("interrupted again: resume it later with --resume; the charge stays on the ledger")
                raise typer.Exit(interrupt.exit_code) from None
        _print_outcome(outcome, observers)
        return
    if config is None:
        raise UserError("--config: give the search config (or --resume DIR to continue an interrupted search)")
    search_config = _with_resources(load_search_config(config, budget, delta), cpus_per_trial, gpus_per_trial)
    observers = _observers(tracking_uri)  # MLflow's tracker imports MLflow (≈ 2 s): after the config is good
    if register is not None and not any(type(o).__name__ == "MlflowTracker" for o in observers):
        raise UserError("--register: MLflow tracking is off (TUNEDP_TRACKING=0); unset it or give --tracking-uri")
    if dataset_ledger is not None:
        from tunedp.workloads.identity import require_dataset

        require_dataset(search_config.workload, dataset_ledger, "--dataset-ledger")
    from tunedp.run.driver import SearchError, search
    from tunedp.run.interrupts import sigterm_as_interrupt

    # tunedp.search plans, then charges the ledger before Ray starts or any
    # data is read; a search the ledger cannot admit raises
    # BudgetExceededError there (one line, exit 2, nothing charged).
    # SIGTERM (timeout, systemd, Kubernetes) takes Ctrl-C's path: trials
    # stopped, report written, nothing released; exit 143 instead of 130.
    witness = _ChargeWitness()
    with sigterm_as_interrupt() as interrupt:
        try:
            outcome = search(
                search_config,
                ledger_path=resolve_ledger_path(search_config.dataset_name, ledger),
                ray_address=ray_address,
                max_concurrent=max_concurrent,
                seed=seed,
                output_dir=output,
                observers=[witness, *observers],
                force=force,
                register=register,
            )
        except SearchError as error:
            print_error(str(error), prefix="search failed:")
            raise typer.Exit(1) from None
        except UnboundLedgerError as error:
            raise UserError(error.with_config(config)) from None
        except KeyboardInterrupt:
            err_console.print(witness.interrupted_line(output))
            raise typer.Exit(interrupt.exit_code) from None
    _print_outcome(outcome, observers)
    if register is not None and _registered(observers) is None:
        print_error(
            f"the search completed but registering it as {register!r} failed (see the MLflow line above); "
            f"its model is in {outcome.output_dir}",
            prefix="register failed:",
        )
        raise typer.Exit(1)


class _ChargeWitness(SearchObserver):
    """Remembers whether (and as which search) the ledger was charged, so an interruption says what is true."""

    def __init__(self) -> None:
        self.search_id: str | None = None

    def on_charged(self, plan: SearchPlan, charge: Charge, ledger: PrivacyLedger) -> None:
        self.search_id = charge.search_id

    def interrupted_line(self, output: Path | None) -> str:
        """What an interrupted search left: nothing, a charge alone, or a charge and a resumable folder."""
        from tunedp.run.resume import state_dir

        if self.search_id is None:
            return "interrupted before the charge: nothing was charged and nothing ran"
        folder = output if output is not None else Path("runs") / self.search_id  # the driver's default
        if not state_dir(folder).is_dir():
            return "interrupted after the charge, before any trial ran: the charge stays; there is nothing to resume"
        return (
            "interrupted: trials stopped; nothing released; the charge stays on the ledger "
            f"(continue with `tunedp search --resume {folder}`, or give it up with `tunedp search --abandon {folder}`)"
        )


def _registered(observers: list[SearchObserver]) -> tuple[str, str] | None:
    for observer in observers:
        registered: tuple[str, str] | None = getattr(observer, "registered", None)
        if registered is not None:
            return registered
    return None


def _print_outcome(outcome: SearchOutcome, observers: list[SearchObserver] | None = None) -> None:
    from tunedp.release.report import human_summary

    console.print(human_summary(outcome.report), highlight=False)
    console.print(f"report: {outcome.output_dir / 'report.json'}")
    # Where the released model went in MLflow: a pyfunc that takes the raw rows.
    for observer in observers or ():
        uri: str | None = getattr(observer, "model_uri", None)
        if uri is not None:
            console.print(f"MLflow model: {uri}  (mlflow.pyfunc.load_model({uri!r}).predict(rows))", highlight=False)
    registered = _registered(observers or [])
    if registered is not None:
        name, version = registered
        console.print(f"registered: models:/{name}/{version} (alias models:/{name}@released)", highlight=False)


def _with_resources(config: SearchConfig, cpus: float | None, gpus: float | None) -> SearchConfig:
    """``config`` with the command line's per-trial resources, validated like the file's."""
    if cpus is None and gpus is None:
        return config
    from pydantic import ValidationError

    from tunedp.config import Resources

    values = config.resources.model_dump()
    values.update({k: v for k, v in (("cpus", cpus), ("gpus", gpus)) if v is not None})
    try:
        resources = Resources.model_validate(values)
    except ValidationError as error:
        flag = "--cpus-per-trial" if any(e["loc"] == ("cpus",) for e in error.errors()) else "--gpus-per-trial"
        raise UserError(f"{flag}: {error.errors()[0]['msg']}") from None
    return config.model_copy(update={"resources": resources})


def _observers(tracking_uri: str | None) -> list[SearchObserver]:
    """The console, and MLflow unless switched off (``TUNEDP_TRACKING=0`` and no ``--tracking-uri``)."""
    from tunedp.observe.console import ConsoleProgress

    observers: list[SearchObserver] = [ConsoleProgress(console)]
    if tracking_uri is not None or os.environ.get("TUNEDP_TRACKING", "1") != "0":
        from tunedp.observe.mlflow_tracker import MlflowTracker

        observers.append(MlflowTracker(tracking_uri=tracking_uri))
    return observers
