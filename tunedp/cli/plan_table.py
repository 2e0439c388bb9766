"""The table ``tunedp plan`` prints: the plan's figures, the pre-flight's estimate and the ledger's verdict.

Kept apart from the command so that what a plan shows (and how it words
K, σ and the score noise) is read in one place; ``--json`` prints the
figures themselves instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from tunedp.cli.output import console

if TYPE_CHECKING:
    from tunedp.ledger import LedgerUrl
    from tunedp.planning.single_stage import PlanFigures
    from tunedp.run.preflight import PreflightResult

__all__ = ["LedgerVerdict", "print_plan"]


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
    """One table: a single-stage plan's rows (or a staged plan's stages and split), then the ledger's verdict."""
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
