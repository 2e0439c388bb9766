"""The ``tunedp`` command line: plan, budget, search, report, audit, ui.

Every user error ends the same way: one line on stderr that names the field
and the fix, exit code 2, and nothing written or charged. Heavy imports
(torch, Ray, MLflow) happen inside the commands that need them so ``plan``
and ``budget`` stay instant.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunedp.accounting.remaining import remaining_epsilon
from tunedp.config import SearchConfig, load_config
from tunedp.errors import UserFacingError

if TYPE_CHECKING:
    from tunedp.accounting.ledger import PrivacyLedger
    from tunedp.observers import SearchObserver, SearchOutcome
    from tunedp.plan import PlanFigures
    from tunedp.preflight import PreflightResult
    from tunedp.workloads import WorkloadReference

__all__ = ["app", "main"]

app = typer.Typer(
    name="tunedp",
    help="Differentially private hyperparameter tuning, charged against one global privacy budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
budget_app = typer.Typer(help="The global privacy budget (ledger) of a protected dataset.", no_args_is_help=True)
app.add_typer(budget_app, name="budget")

console = Console()
err_console = Console(stderr=True)

USER_ERRORS = (UserFacingError,)


class UserError(Exception):
    """A one-line problem with what the user asked for (exit code 2)."""


def fail(message: str, code: int = 2) -> NoReturn:
    _print_error(message)
    raise typer.Exit(code)


def _print_error(message: str, prefix: str = "error:") -> None:
    # User text (paths, values) may contain brackets: never render it as markup.
    err_console.print(f"[bold red]{prefix}[/] {escape(message)}", highlight=False, soft_wrap=True)


def resolve_ledger_path(dataset: str, ledger: Path | None) -> Path:
    from tunedp.accounting.ledger import default_ledger_path

    return ledger if ledger is not None else default_ledger_path(dataset)


def open_ledger(path: Path, dataset: str | None) -> PrivacyLedger:
    from tunedp.accounting.ledger import PrivacyLedger

    return PrivacyLedger.open(path, dataset=dataset)


def _quiet_libraries() -> None:
    # dp_accounting logs through absl when it drops a Rényi order whose series
    # does not converge; the order is then excluded (ε can only go up), which
    # is the conservative outcome, so the warning is noise for users.
    logging.getLogger("absl").setLevel(logging.ERROR)


def _positive(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UserError(f"{name}: {value} must be a finite number > 0")


def _load(config_path: Path, budget: float | None, delta: float | None) -> SearchConfig:
    _positive("--budget", budget)
    if delta is not None and not 0 < delta < 1:
        raise UserError(f"--delta: {delta} must be in (0, 1)")
    config = load_config(config_path)
    try:
        return config.with_budget(epsilon=budget, delta=delta)
    except Exception as error:  # pydantic ValidationError: reuse the one-line formatter
        from pydantic import ValidationError

        from tunedp.config import format_validation_error

        if isinstance(error, ValidationError):
            raise UserError(format_validation_error(error)) from None
        raise


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
    Path | None,
    typer.Option(
        "--ledger",
        help="Ledger file (default: $TUNEDP_HOME/ledgers/<dataset>.sqlite, else ~/.local/share/tunedp/ledgers/).",
        dir_okay=False,
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


def _version(value: bool) -> None:
    if value:
        from tunedp import __version__

        console.print(f"tunedp {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True, metavar=""),
    ] = False,
) -> None:
    """Differentially private hyperparameter tuning, charged against one global privacy budget."""
    from tunedp.scratch import remove_dead_scratch

    # What a killed driver's Ray and Tune left (trial folders, worker logs: K) goes with the next command.
    remove_dead_scratch()


# ---------------------------------------------------------------------------- plan


@app.command()
def plan(
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
    from tunedp.planning import plan_search
    from tunedp.preflight import run_preflight, score_noise_std

    _quiet_libraries()
    if max_concurrent is not None and max_concurrent < 1:
        raise UserError(f"--max-concurrent: {max_concurrent} must be >= 1")
    search_config = _load(config, budget, delta)
    search_plan = plan_search(search_config)
    checked = run_preflight(search_plan, model=not no_preflight, max_concurrent=max_concurrent)
    figures = search_plan.figures()
    ledger_path = resolve_ledger_path(search_config.dataset_name, ledger)
    verdict: LedgerVerdict | None = None
    if ledger_path.exists():
        opened = open_ledger(ledger_path, search_config.dataset_name)
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
            concurrency=checked.concurrency,
            warnings=list(checked.warnings),
        )
        print(json.dumps(document, indent=2))
    else:
        print_plan(figures, ledger_path, verdict, preflight=checked, score_std=score_noise_std(search_plan))
        for warning in checked.warnings:
            _print_error(warning, prefix="warning:")
    if verdict is not None and not verdict.admissible:
        if not as_json:
            _print_error(
                f"budget: ledger {ledger_path} cannot admit this search (spent would be "
                f"{verdict.spent_after_epsilon:.4g} of {verdict.epsilon:g}); lower --budget"
            )
        raise typer.Exit(1)


@dataclass(frozen=True, kw_only=True)
class LedgerVerdict:
    """Whether the dataset's ledger would admit a plan, and its spend before and after."""

    admissible: bool
    spent_epsilon: float
    spent_after_epsilon: float
    epsilon: float
    delta: float


def print_plan(
    figures: PlanFigures,
    ledger_path: Path,
    verdict: LedgerVerdict | None,
    *,
    preflight: PreflightResult | None = None,
    score_std: float | None = None,
) -> None:
    from tunedp.plan import no_trial_note
    from tunedp.staged_plan import StagedPlanFigures, staged_plan_rows

    table = Table(title=f"Plan: {figures.mode} search on {figures.workload}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    if isinstance(figures, StagedPlanFigures):  # two_stage / public_proxy: both stages and the split
        for name, value in staged_plan_rows(figures):
            table.add_row(name, value)
        table.add_row(*_ledger_row(ledger_path, verdict))
        console.print(table)
        return
    trials = (
        f"{figures.expected_trials:g} expected (unbounded; K stays secret)"
        if figures.max_trials is None
        else f"{figures.max_trials} (charged as their composition)"
    ) + no_trial_note(figures.no_trial_probability)
    rows = [
        ("budget", f"ε = {figures.budget_epsilon:g}, δ = {figures.delta:g}"),
        ("release", figures.release),
        ("noise multiplier σ", f"{figures.noise_multiplier:.4f} (calibrated)"),
        ("trial ε", f"{figures.trial_epsilon:.4f}"),
        ("search ε (charged)", f"{figures.search_epsilon:.4f} ({figures.fraction_of_budget:.2%} of budget)"),
        ("naive composition ε", f"{figures.naive_epsilon:.4f} for {figures.naive_trials} trials"),
        ("trials", trials),
        ("steps per trial", f"{figures.steps} at q = {figures.sampling_rate:.4g}"),
        ("score releases per trial", f"{figures.score_releases} ({figures.validation} validation)"),
        ("score noise", _score_noise_text(figures, score_std)),
    ]
    if preflight is not None:
        rows.extend(_preflight_rows(preflight, figures))
    if figures.best_release_epsilon is not None:
        rows.append(("ε with release: best", f"{figures.best_release_epsilon:.4f}"))
    rows.append(_ledger_row(ledger_path, verdict))
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _score_noise_text(figures: PlanFigures, std: float | None) -> str:
    if figures.score_noise_multiplier is None or std is None:
        return "none (public validation: exact scores)"
    flag = " [red](mostly noise)[/]" if std > 0.05 else ""
    return (
        f"σ_score = {figures.score_noise_multiplier:g} on the count → std {std:.3g} in accuracy "
        f"({figures.validation_size} validation rows){flag}"
    )


def _preflight_rows(preflight: PreflightResult, figures: PlanFigures) -> list[tuple[str, str]]:
    from tunedp.progress_lines import elapsed_text

    if preflight.step_seconds is None or preflight.estimated_wall_s is None:
        return [("pre-flight", "model and optimizer not checked (--no-preflight)")]
    trials = f"{figures.expected_trials:g} expected" if figures.max_trials is None else f"{figures.max_trials}"
    return [
        ("pre-flight", f"passed: model, optimizer at {preflight.corners} corner(s), one synthetic step each"),
        (
            "estimated wall time",
            f"≈ {elapsed_text(preflight.estimated_wall_s)} ({preflight.step_seconds * 1000:.3g} ms/step × "
            f"{figures.steps} steps × {trials} trials ÷ {preflight.concurrency} at once; "
            "plus evaluations and start-up)",
        ),
    ]


def _ledger_row(ledger_path: Path, verdict: LedgerVerdict | None) -> tuple[str, str]:
    if verdict is None:
        return ("ledger", f"none yet at {ledger_path}")
    shown = "[green]admissible[/]" if verdict.admissible else "[red]NOT admissible[/]"
    return (
        "ledger",
        f"{shown}: spent {verdict.spent_epsilon:.4f} → {verdict.spent_after_epsilon:.4f} of {verdict.epsilon:g}",
    )


# ---------------------------------------------------------------------------- budget


@budget_app.command("init")
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
    from tunedp.fingerprint import create_ledger, workloads_of

    _positive("--epsilon", epsilon)  # before --size: the first thing a user types is checked first
    workload, dataset = _budget_target(dataset, config, size)
    if workload is not None:
        _check_delta_against_workload(workload, delta)
    else:
        _check_delta_against_dataset(dataset, delta, size)
    path = resolve_ledger_path(dataset, ledger)
    if path.exists():
        raise UserError(f"--ledger: ledger {path} already exists; a global budget cannot be reset")
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


def _budget_target(dataset: str | None, config: Path | None, size: int | None) -> tuple[WorkloadReference | None, str]:
    """(the config's workload or None, the dataset) for ``budget init``/``bind``: a dataset, or a config naming one.

    With ``--config`` the workload declares the dataset and its sizes, so
    ``--size`` is refused and a ``--dataset`` must agree (no aliases).
    """
    from tunedp.fingerprint import require_dataset

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

    if not (math.isfinite(delta) and 0 < delta < 1):
        raise UserError(f"--delta: {delta} must be in (0, 1)")
    resolve_workload(workload).sizes.check_delta(delta, field="--delta")


@budget_app.command("bind")
def budget_bind(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Protected dataset name.", show_default=False)
    ] = None,
    config: WorkloadConfigOption = None,
    ledger: LedgerOption = None,
) -> None:
    """Bind a ledger made before data fingerprints (or unbound) to the data its workload loads now; keeps charges."""
    from tunedp.accounting.ledger import PrivacyLedger
    from tunedp.fingerprint import bind_ledger

    if dataset is None and config is None and ledger is None:
        raise UserError("--dataset: give the dataset name (or --config, or --ledger PATH)")
    workload, named = _budget_target(dataset, config, None) if (dataset or config) else (None, None)
    path = resolve_ledger_path(named or "", ledger) if ledger is None else ledger
    opened = PrivacyLedger.open_for_binding(path, dataset=named)
    bound = bind_ledger(opened, workload)
    console.print(
        f"bound ledger {path} to the data of workload {_workload_label(bound)!r}: fingerprint {opened.fingerprint} "
        f"(key id {opened.key_id}); every search now verifies it before charging",
        highlight=False,
    )


def _check_delta_against_dataset(dataset: str, delta: float, size: int | None) -> None:
    """δ ≤ 1/n, with n the examples the trials touch (declared by a built-in workload, or ``--size``)."""
    from tunedp.workloads import BUILTIN_WORKLOADS, check_delta, resolve_workload

    if not (math.isfinite(delta) and 0 < delta < 1):
        raise UserError(f"--delta: {delta} must be in (0, 1)")
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


@budget_app.command("show")
def budget_show(
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Protected dataset name.", show_default=False)
    ] = None,
    ledger: LedgerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Global, spent and remaining budget, and one line per charged search."""
    _quiet_libraries()
    if dataset is None and ledger is None:
        raise UserError("--dataset: give the dataset name (or --ledger PATH)")
    path = resolve_ledger_path(dataset or "", ledger) if ledger is None else ledger
    opened = open_ledger(path, dataset)
    charges = opened.charges()
    spent = opened.spent_epsilon()
    summary = {
        "dataset": opened.dataset,
        "ledger": str(path.absolute()),
        "fingerprint": opened.fingerprint or None,
        "key_id": opened.key_id or None,
        "epsilon": opened.epsilon,
        "delta": opened.delta,
        "spent_epsilon": spent,
        "remaining_epsilon": remaining_epsilon(opened.epsilon, spent),
        "charges": [
            {
                "search_id": c.search_id,
                "created_at": c.created_at,
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
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("mode", no_wrap=True)
    table.add_column("label", overflow="ellipsis", no_wrap=True, max_width=24)
    table.add_column("ε alone", no_wrap=True, justify="right")
    table.add_column("status", no_wrap=True)
    for c in charges:
        created = c.created_at.replace("T", " ")[:16]
        table.add_row(c.search_id[:12], created, c.mode, c.label, f"{c.epsilon:.4f}", c.status)
    console.print(table)


# ---------------------------------------------------------------------------- search


STARTERS = ("digits", "adult", "fashion_mnist", "fashion_mnist_scatternet", "csv")


@app.command("init")
def init_command(
    workload: Annotated[str, typer.Option("--workload", help=f"One of: {', '.join(STARTERS)}.", show_default=False)],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write it (default: ./<workload>.yaml).", dir_okay=False),
    ] = None,
) -> None:
    """Write a commented starter config (shipped in the wheel) to edit, plan and search."""
    from importlib.resources import files

    if workload not in STARTERS:
        raise UserError(f"--workload: no starter {workload!r}; choose one of {', '.join(STARTERS)}")
    target = output if output is not None else Path(f"{workload}.yaml")
    if target.exists():
        raise UserError(f"--output: {target} already exists; choose another path or remove it")
    target.write_text(files("tunedp.starters").joinpath(f"{workload}.yaml").read_text(encoding="utf-8"), "utf-8")
    console.print(f"wrote {target}; next: tunedp plan --config {target}")


@app.command("search")
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
) -> None:
    """Plan, charge the ledger, run the trials on Ray Tune, release the best and a privacy report."""
    from tunedp.driver import SearchError, resume_search, search
    from tunedp.interrupts import sigterm_as_interrupt

    _quiet_libraries()
    if max_concurrent is not None and max_concurrent < 1:
        raise UserError(f"--max-concurrent: {max_concurrent} must be >= 1")
    if abandon is not None:
        from tunedp.resume import abandon as abandon_search

        abandoned = abandon_search(abandon)
        console.print(
            f"abandoned search {abandoned.search_id[:12]}: its secret state is deleted; "
            "the charge stays on the ledger and nothing is released",
            highlight=False,
        )
        return
    if resume is not None:
        if config is not None or output is not None:
            raise UserError("--resume: the folder holds the config and is the output; drop --config and --output")
        with sigterm_as_interrupt() as interrupt:
            try:
                outcome = resume_search(
                    resume, ray_address=ray_address, max_concurrent=max_concurrent, observers=_observers(tracking_uri)
                )
            except SearchError as error:
                _print_error(str(error), prefix="search failed:")
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                err_console.print("interrupted again: resume it later with --resume; the charge stays on the ledger")
                raise typer.Exit(interrupt.exit_code) from None
        _print_outcome(outcome)
        return
    if config is None:
        raise UserError("--config: give the search config (or --resume DIR to continue an interrupted search)")
    search_config = _with_resources(_load(config, budget, delta), cpus_per_trial, gpus_per_trial)
    if dataset_ledger is not None:
        from tunedp.fingerprint import require_dataset

        require_dataset(search_config.workload, dataset_ledger, "--dataset-ledger")
    # tunedp.search plans, then charges the ledger before Ray starts or any
    # data is read; a search the ledger cannot admit raises
    # BudgetExceededError there (one line, exit 2, nothing charged).
    # SIGTERM (timeout, systemd, Kubernetes) takes Ctrl-C's path: trials
    # stopped, report written, nothing released; exit 143 instead of 130.
    with sigterm_as_interrupt() as interrupt:
        try:
            outcome = search(
                search_config,
                ledger_path=resolve_ledger_path(search_config.dataset_name, ledger),
                ray_address=ray_address,
                max_concurrent=max_concurrent,
                seed=seed,
                output_dir=output,
                observers=_observers(tracking_uri),
                force=force,
            )
        except SearchError as error:
            _print_error(str(error), prefix="search failed:")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print(
                "interrupted: trials stopped; nothing released; the charge stays on the ledger "
                "(continue with `tunedp search --resume OUTPUT`)"
            )
            raise typer.Exit(interrupt.exit_code) from None
    _print_outcome(outcome)


def _print_outcome(outcome: SearchOutcome) -> None:
    from tunedp.report import human_summary

    console.print(human_summary(outcome.report), highlight=False)
    console.print(f"report: {outcome.output_dir / 'report.json'}")


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
    from tunedp.progress import ConsoleProgress

    observers: list[SearchObserver] = [ConsoleProgress(console)]
    if tracking_uri is not None or os.environ.get("TUNEDP_TRACKING", "1") != "0":
        from tunedp.tracking import MlflowTracker

        observers.append(MlflowTracker(tracking_uri=tracking_uri))
    return observers


@app.command("report")
def report_command(
    path: Annotated[Path, typer.Argument(help="A search's output folder or its report.json.")],
    as_json: JsonOption = False,
) -> None:
    """Print a finished search's privacy report."""
    from tunedp.report import SearchReport, human_summary

    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"PATH: no report at {file}; give a search's output folder")
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
        summary = human_summary(SearchReport.from_json(report))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"PATH: {file} is not a tunedp report ({error})") from None
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        console.print(summary, highlight=False)


# ---------------------------------------------------------------------------- audit


@app.command("audit")
def audit_command(
    config: ConfigOption,
    public: Annotated[
        bool, typer.Option("--public", help="Audit the same mechanism on public data (digits); charges nothing.")
    ] = False,
    canaries: Annotated[int, typer.Option("--canaries", help="Number of canaries m (each in w.p. 1/2).")] = 1000,
    ledger: LedgerOption = None,
    as_json: JsonOption = False,
) -> None:
    """Empirical privacy audit of one planned trial (one run, Steinke et al. 2023): claimed vs measured ε.

    It trains on the protected data, so it is charged to the ledger like one
    trial, before training; --public runs it on digits instead and charges nothing.
    """
    if canaries < 2:
        raise UserError(f"--canaries: {canaries} must be an integer >= 2")
    from tunedp.audit.command import run_config_audit

    _quiet_libraries()
    search_config = _load(config, None, None)
    path = None if public else resolve_ledger_path(search_config.dataset_name, ledger)
    result = run_config_audit(
        search_config,
        public=public,
        canaries=canaries,
        ledger_path=path,
        announce=lambda line: err_console.print(escape(line), highlight=False, soft_wrap=True),
    )
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return
    verdict = "[red]claim VIOLATED[/]" if result.violates_claim else "consistent with the claim"
    console.print(
        f"claimed ε = {result.claimed_epsilon:.4f}; empirical lower bound ε ≥ {result.empirical_epsilon:.4f} "
        f"at {result.counts.confidence:.0%} confidence ({result.counts.correct} of {result.counts.guesses} "
        f"guesses right, {result.counts.canaries} canaries): {verdict}",
        highlight=False,
    )


# ---------------------------------------------------------------------------- ui


@app.command("ui")
def ui_command(
    port: Annotated[int, typer.Option("--port", help="Port of the dashboard.")] = 5000,
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on; keep the loopback unless you mean to share it.")
    ] = "127.0.0.1",
) -> None:
    """Open the MLflow dashboard on the local tracking store (mlflow/); Ctrl-C stops it."""
    if not 1 <= port <= 65535:
        raise UserError(f"--port: {port} must be in 1..65535")
    _check_port_free(host, port)
    from tunedp.tracking import serve_dashboard

    code = serve_dashboard(host=host, port=port, announce=lambda line: console.print(line, highlight=False))
    if code:
        raise typer.Exit(code)


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on (the server's own bind error would be buried in its log)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            reason = (error.strerror or type(error).__name__).lower()
            raise UserError(f"--port: cannot listen on {host}:{port} ({reason}); choose another with --port") from None


# ---------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    """Run the app; map every user error to one line and exit code 2."""
    command = typer.main.get_command(app)
    try:
        # standalone_mode=False: parsing errors come to us as exceptions, so
        # they print as one line instead of click's usage block.
        result = command.main(args=argv, prog_name="tunedp", standalone_mode=False)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except typer.TyperException as error:
        if type(error).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # the help is printed already; a bare `tunedp` is not an error
        _print_error(_click_message(error))
        sys.exit(2)
    except (UserError, *USER_ERRORS) as error:
        _print_error(str(error))
        sys.exit(2)
    sys.exit(result if isinstance(result, int) else 0)


def _click_message(error: typer.TyperException) -> str:
    """One line from a command-line parsing error, naming the option when there is one."""
    message = error.format_message().splitlines()[0] if error.format_message() else type(error).__name__
    param = getattr(error, "param", None)
    names = getattr(param, "opts", None)
    if names and names[0] not in message:
        return f"{names[0]}: {message}"
    return message


if __name__ == "__main__":
    main()
