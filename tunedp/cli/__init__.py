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
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tunedp.accounting.remaining import remaining_epsilon
from tunedp.config import SearchConfig, load_config
from tunedp.errors import UnboundLedgerError, UserFacingError
from tunedp.observe.protocol import SearchObserver
from tunedp.workloads.contract import check_delta_range

if TYPE_CHECKING:
    from tunedp.ledger import LedgerUrl
    from tunedp.ledger.sqlite import Charge, PrivacyLedger
    from tunedp.observe.protocol import SearchOutcome
    from tunedp.planning.single_stage import PlanFigures, SearchPlan
    from tunedp.run.preflight import PreflightResult
    from tunedp.workloads import WorkloadReference

__all__ = ["app", "main"]

app = typer.Typer(
    name="tunedp",
    help="Differentially private hyperparameter tuning, charged against one global privacy budget.\n\n"
    "Where things live: ledgers in $TUNEDP_HOME/ledgers (default ~/.local/share/tunedp/ledgers); the MLflow "
    "store in the source checkout's mlflow/ or, for an installed package, $TUNEDP_HOME/mlflow "
    "($TUNEDP_MLFLOW_DIR overrides it); a search's results in ./runs/<search id> (--output).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
budget_app = typer.Typer(help="The global privacy budget (ledger) of a protected dataset.", no_args_is_help=True)
app.add_typer(budget_app, name="budget")
ledger_app = typer.Typer(help="A team's shared PostgreSQL ledger: set it up, grant analysts.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")

# soft_wrap: a line longer than the terminal (or than rich's 80 columns when piped) stays one
# line, so that logs and pipes get whole lines (paths, commands) and a terminal wraps them itself.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

USER_ERRORS = (UserFacingError,)


class UserError(UserFacingError):
    """A one-line problem with what the user asked for (exit code 2)."""


def fail(message: str, code: int = 2) -> NoReturn:
    _print_error(message)
    raise typer.Exit(code)


def _print_error(message: str, prefix: str = "error:") -> None:
    # User text (paths, values) may contain brackets: never render it as markup.
    err_console.print(f"[bold red]{prefix}[/] {escape(message)}", highlight=False, soft_wrap=True)


def resolve_ledger_path(dataset: str, ledger: str | Path | None) -> Path | LedgerUrl:
    """``--ledger`` (a file or a postgresql:// URL), else ``$TUNEDP_LEDGER_URL``, else the dataset's default file."""
    from tunedp.ledger import ledger_location

    return ledger_location(dataset, ledger)


def open_ledger(path: Path | LedgerUrl, dataset: str | None) -> PrivacyLedger:
    from tunedp.ledger import open_ledger as open_at

    return open_at(path, dataset=dataset)  # type: ignore[return-value]  # the interface both backends share


def _ledger_exists(location: Path | LedgerUrl, dataset: str) -> bool:
    """A file that exists, or a server that holds ``dataset``'s budget (a server that is down is an error)."""
    from tunedp.errors import LedgerMissingError

    if isinstance(location, Path):
        return location.exists()
    try:
        open_ledger(location, dataset)
    except LedgerMissingError:
        return False
    return True


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
    from tunedp.run.scratch import remove_dead_scratch

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
    from tunedp.run.preflight import check_ledger_delta, run_preflight, score_noise_std

    _quiet_libraries()
    if max_concurrent is not None and max_concurrent < 1:
        raise UserError(f"--max-concurrent: {max_concurrent} must be >= 1")
    search_config = _load(config, budget, delta)
    search_plan = plan_search(search_config)
    checked = run_preflight(search_plan, model=not no_preflight, max_concurrent=max_concurrent)
    figures = search_plan.figures()
    ledger_path = resolve_ledger_path(search_config.dataset_name, ledger)
    verdict: LedgerVerdict | None = None
    if _ledger_exists(ledger_path, search_config.dataset_name):
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
    ledger_path: Path | LedgerUrl,
    verdict: LedgerVerdict | None,
    *,
    preflight: PreflightResult | None = None,
    score_std: float | None = None,
) -> None:
    from tunedp.planning.single_stage import cheaper_mode_note, no_trial_note, trial_count_note
    from tunedp.planning.staged import StagedPlanFigures, staged_plan_rows

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
        + trial_count_note(figures.trials_median, figures.trials_p90)
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
    if (cheaper := cheaper_mode_note(figures)) is not None:
        rows.append(("cheaper mode", cheaper))
    if figures.density_ratio is not None:  # hypo: the span its adaptive proposals are charged for
        gamma = f"; K's γ = {figures.count_gamma:.4g}" if figures.count_gamma is not None else ""
        rows.append(("proposal density ratio C/c", f"{figures.density_ratio:g} (DP-HyPO Theorem 1{gamma})"))
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
    from tunedp.observe.lines import elapsed_text

    if preflight.step_seconds is None or preflight.estimated_wall_s is None:
        return [("pre-flight", "model and optimizer not checked (--no-preflight)")]
    from tunedp.run.preflight import SEARCH_OVERHEAD_S, TRIAL_OVERHEAD_S

    trials = f"{figures.expected_trials:g} expected" if figures.max_trials is None else f"{figures.max_trials}"
    spread = ""
    median, p90 = preflight.estimated_wall_s_median, preflight.estimated_wall_s_p90
    if median is not None and p90 is not None and figures.max_trials is None:  # a random K: its median, its tail
        spread = f"; {elapsed_text(median)} at the median K, ≤ {elapsed_text(p90)} for 90% of K"
    return [
        ("pre-flight", f"passed: model, optimizer at {preflight.corners} corner(s), one synthetic step each"),
        (
            "estimated wall time",
            f"≈ {elapsed_text(preflight.estimated_wall_s)}{spread} ({preflight.step_seconds * 1000:.3g} ms/step × "
            f"{figures.steps} steps × {trials} trials ÷ {preflight.concurrency} at once, "
            f"+ {TRIAL_OVERHEAD_S:g} s per trial and {SEARCH_OVERHEAD_S:g} s per search, measured)",
        ),
    ]


def _ledger_row(ledger_path: Path | LedgerUrl, verdict: LedgerVerdict | None) -> tuple[str, str]:
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
    from tunedp.ledger.binding import create_ledger, workloads_of

    _positive("--epsilon", epsilon)  # before --size: the first thing a user types is checked first
    workload, dataset = _budget_target(dataset, config, size)
    if workload is not None:
        _check_delta_against_workload(workload, delta)
    else:
        _check_delta_against_dataset(dataset, delta, size)
    path = resolve_ledger_path(dataset, ledger)
    if _ledger_exists(path, dataset):
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


def _budget_target(dataset: str | None, config: Path | None, size: int | None) -> tuple[WorkloadReference | None, str]:
    """(the config's workload or None, the dataset) for ``budget init``/``bind``: a dataset, or a config naming one.

    With ``--config`` the workload declares the dataset and its sizes, so
    ``--size`` is refused and a ``--dataset`` must agree (no aliases).
    """
    from tunedp.ledger.binding import require_dataset

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


@budget_app.command("bind")
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
    workload, named = _budget_target(dataset, config, None) if (dataset or config) else (None, None)
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


@budget_app.command("show")
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
    _quiet_libraries()
    plot = plot or plot_file is not None
    if plot and as_json:
        raise UserError("--plot: writes a page and prints its path; drop --json (or run budget show --json apart)")
    if config is not None:  # the dataset the config's workload reads, as for `budget init --config`
        dataset = _budget_target(dataset, config, None)[1]
    path, opened = _open_for_reading(dataset, ledger)
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


def _open_for_reading(dataset: str | None, ledger: str | None) -> tuple[Path | LedgerUrl, PrivacyLedger]:
    """The ledger ``budget show/history/verify`` read: by dataset (default place or URL) or by ``--ledger``."""
    from tunedp.ledger import LEDGER_URL_ENV

    if dataset is None and ledger is None:
        raise UserError(f"--dataset: give the dataset name (or --ledger PATH, or --ledger/{LEDGER_URL_ENV} with it)")
    path = resolve_ledger_path(dataset or "", ledger)
    if dataset is None and not isinstance(path, Path):
        raise UserError(f"--dataset: a PostgreSQL ledger ({path}) holds many datasets; name one with --dataset")
    return path, open_ledger(path, dataset)


DatasetOption = Annotated[str | None, typer.Option("--dataset", help="Protected dataset name.", show_default=False)]


@budget_app.command("history")
def budget_history(dataset: DatasetOption = None, ledger: LedgerOption = None, as_json: JsonOption = False) -> None:
    """The audit trail: every charge (role, search id, event, mode, day) and every refusal."""
    from tunedp.accounting.serialization import event_to_json

    _quiet_libraries()
    path, opened = _open_for_reading(dataset, ledger)
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


@budget_app.command("verify")
def budget_verify(dataset: DatasetOption = None, ledger: LedgerOption = None, as_json: JsonOption = False) -> None:
    """Recompute every charge's RDP curve from its stored DpEvent; name the short ones and who made them (exit 1)."""
    _quiet_libraries()
    path, opened = _open_for_reading(dataset, ledger)
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
        _print_error(
            f"charge {s.search_id} by role {s.charged_by or '-'} on {s.day}: its stored curve is short at "
            f"{len(s.orders)} order(s) (ε {s.stored_epsilon:.4g} stored, {s.recomputed_epsilon:.4g} by its event)",
            prefix="SHORT:",
        )
    if short:
        raise typer.Exit(1)


@budget_app.command("migrate")
def budget_migrate(
    source: Annotated[Path, typer.Option("--from", help="The sqlite ledger file to move.", dir_okay=False)],
    target: Annotated[str, typer.Option("--to", help="postgresql://USER@HOST:PORT/DB (the owner's role).")],
) -> None:
    """Move a sqlite ledger (budget, binding and every charge) to a PostgreSQL ledger; refuses an existing dataset."""
    from tunedp.ledger import LedgerUrl, looks_like_url
    from tunedp.ledger._migrate import migrate

    _quiet_libraries()
    if not looks_like_url(target):
        raise UserError("--to: give the PostgreSQL ledger as postgresql://USER@HOST:PORT/DATABASE")
    moved = migrate(source, LedgerUrl.parse(target, field="--to"))
    console.print(
        f"moved {moved.dataset!r} (ε = {moved.epsilon:g}, δ = {moved.delta:g}, {moved.charges} charge(s)"
        f"{', bound' if moved.bound else ''}) from {source} to {moved.url}; keep {source} as a read-only backup",
        highlight=False,
    )


# ---------------------------------------------------------------------------- ledger (team)

UrlOption = Annotated[str, typer.Option("--url", help="postgresql://USER@HOST:PORT/DATABASE", show_default=False)]


def _url(text: str) -> LedgerUrl:
    from tunedp.ledger import LedgerUrl

    return LedgerUrl.parse(text, field="--url")


@ledger_app.command("setup")
def ledger_setup(
    url: UrlOption,
    role_prefix: Annotated[str, typer.Option("--role-prefix", help="Prefix of the roles it creates.")] = "tunedp_",
    owner: Annotated[
        str | None, typer.Option("--owner", help="An existing login role to make the data owner.", show_default=False)
    ] = None,
) -> None:
    """Create the ledger's schema, roles (owner, analyst, auditor) and charge function; run once, as the DB admin."""
    from tunedp.ledger._schema import check_prefix, setup

    roles = check_prefix(role_prefix)
    target = _url(url)
    with target.connect(autocommit=True) as connection:
        from tunedp.ledger._postgres import _call

        _call(target, lambda: setup(connection, roles, owner_login=owner))
    console.print(
        f"set up the tunedp ledger in {target}: roles {roles.owner} (owner), {roles.analyst} (analyst), "
        f"{roles.auditor} (auditor), objects owned by {roles.ledger}"
        + (f"; {owner} is the owner" if owner else f"; next: GRANT {roles.owner} TO <the data owner's login>"),
        highlight=False,
    )


@ledger_app.command("grant")
def ledger_grant(
    url: UrlOption,
    role: Annotated[str, typer.Option("--role", help="The login role to grant.", show_default=False)],
    dataset: DatasetOption = None,
    auditor: Annotated[bool, typer.Option("--auditor", help="Read-only access to every dataset.", metavar="")] = False,
) -> None:
    """The owner grants a login role: analyst of one dataset (--dataset), or auditor of all (--auditor)."""
    from tunedp.ledger._postgres import _call

    if (dataset is None) == (not auditor):
        raise UserError("--dataset: give --dataset D (an analyst of D) or --auditor (reads every dataset), not both")
    target = _url(url)
    with target.connect() as connection:
        if auditor:
            _call(target, lambda: connection.execute("SELECT tunedp.grant_auditor(%s)", (role,)))
        else:
            _call(target, lambda: connection.execute("SELECT tunedp.grant_dataset(%s, %s)", (dataset, role)))
    console.print(
        f"{role} may now read every dataset on {target}"
        if auditor
        else f"{role} may now charge and read {dataset!r} on {target}",
        highlight=False,
    )


@ledger_app.command("revoke")
def ledger_revoke(
    url: UrlOption,
    role: Annotated[str, typer.Option("--role", help="The login role.", show_default=False)],
    dataset: Annotated[str, typer.Option("--dataset", help="Protected dataset name.", show_default=False)],
) -> None:
    """The owner withdraws a role's grant on one dataset (its past charges stay)."""
    from tunedp.ledger._postgres import _call

    target = _url(url)
    with target.connect() as connection:
        _call(target, lambda: connection.execute("SELECT tunedp.revoke_dataset(%s, %s)", (dataset, role)))
    console.print(f"{role} may no longer charge {dataset!r} on {target}; its charges stay", highlight=False)


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
    from tunedp.run.driver import SearchError, resume_search, search
    from tunedp.run.interrupts import sigterm_as_interrupt

    _quiet_libraries()
    if max_concurrent is not None and max_concurrent < 1:
        raise UserError(f"--max-concurrent: {max_concurrent} must be >= 1")
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
        with sigterm_as_interrupt() as interrupt:
            try:
                outcome = resume_search(
                    resume, ray_address=ray_address, max_concurrent=max_concurrent, observers=observers
                )
            except SearchError as error:
                _print_error(str(error), prefix="search failed:")
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                err_console.print("interrupted again: resume it later with --resume; the charge stays on the ledger")
                raise typer.Exit(interrupt.exit_code) from None
        _print_outcome(outcome, observers)
        return
    if config is None:
        raise UserError("--config: give the search config (or --resume DIR to continue an interrupted search)")
    observers = _observers(tracking_uri)
    if register is not None and not any(type(o).__name__ == "MlflowTracker" for o in observers):
        raise UserError("--register: MLflow tracking is off (TUNEDP_TRACKING=0); unset it or give --tracking-uri")
    search_config = _with_resources(_load(config, budget, delta), cpus_per_trial, gpus_per_trial)
    if dataset_ledger is not None:
        from tunedp.ledger.binding import require_dataset

        require_dataset(search_config.workload, dataset_ledger, "--dataset-ledger")
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
            _print_error(str(error), prefix="search failed:")
            raise typer.Exit(1) from None
        except UnboundLedgerError as error:
            raise UserError(error.with_config(config)) from None
        except KeyboardInterrupt:
            err_console.print(witness.interrupted_line(output))
            raise typer.Exit(interrupt.exit_code) from None
    _print_outcome(outcome, observers)
    if register is not None and _registered(observers) is None:
        _print_error(
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
        from tunedp.observe.tracking import MlflowTracker

        observers.append(MlflowTracker(tracking_uri=tracking_uri))
    return observers


@app.command("predict")
def predict_command(
    rows: Annotated[
        Path, typer.Argument(help="Raw rows: a CSV with the table's own columns (or a .npy array of inputs).")
    ],
    report: Annotated[
        Path,
        typer.Option("--report", help="A search's output folder (report.json and best_model.pt).", file_okay=False),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the predictions here (default: stdout).", dir_okay=False),
    ] = None,
) -> None:
    """Predict labels and class probabilities for raw rows with a search's released model (no MLflow needed)."""
    from tunedp.release.predict import predict_file

    count = predict_file(report, rows, output)
    if output is not None:
        console.print(f"wrote {count} predictions to {output}", highlight=False)


@app.command("report")
def report_command(
    path: Annotated[Path, typer.Argument(help="A search's output folder or its report.json.")],
    as_json: JsonOption = False,
) -> None:
    """Print a finished search's privacy report."""
    from tunedp.release.report import SearchReport, human_summary

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


#: 5000 audit canaries (and 5000 references): a clip at 2·C is caught at a claim of 1 (benchmarks/README.md).
DEFAULT_CANARIES = 5000


@app.command("audit")
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
    from tunedp.audit.command import run_config_audit

    _quiet_libraries()
    search_config = _load(config, None, None)
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
    from tunedp.observe.tracking import serve_dashboard

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
