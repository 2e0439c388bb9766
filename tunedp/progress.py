"""The console's view of a running search, within the disclosure rule.

A rich progress line shows the elapsed time while trials run. Where the mode
releases every trial, it also counts trials done/planned and each finished
trial is printed with its released score. Under ``release: best`` nothing
about a single trial — not even how many have run or are planned — is shown
before selection: the line is a spinner and a clock.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from tunedp.disclosure import disclosure_for
from tunedp.observers import SearchObserver, SearchOutcome
from tunedp.records import TrialRecord
from tunedp.report import SEEDED_NOTE

if TYPE_CHECKING:
    from tunedp.accounting.ledger import Charge, PrivacyLedger
    from tunedp.plan import SearchPlan

__all__ = ["ConsoleProgress"]


class ConsoleProgress(SearchObserver):
    """Prints the charge, a live progress line, trials as they finish (where released), the elapsed time."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def on_charged(self, plan: SearchPlan, charge: Charge, ledger: PrivacyLedger) -> None:
        self.started = time.monotonic()
        rule = disclosure_for(plan.shape.mode, plan.shape.release)
        self.console.print(
            f"charged ε = {charge.epsilon:.4f} to ledger {ledger.dataset!r} "
            f"(σ = {plan.noise_multiplier:.4f}, {plan.shape.mode}/{plan.shape.release})"
            + (SEEDED_NOTE if charge.seeded else ""),
            highlight=False,
        )
        if rule.shows_trial_count:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("trials"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._task = self._progress.add_task("trials", total=plan.shape.max_trials)
        else:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("running a secret number of trials (release: best shows only the best)"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._task = self._progress.add_task("search", total=None)
        self._progress.start()

    def on_trial_done(self, record: TrialRecord, done: int, planned: int) -> None:
        elapsed = time.monotonic() - self.started
        score = f"{record.final_score:.4f}" if record.released_scores else "-"
        hyper = ", ".join(f"{k}={v:.4g}" for k, v in sorted(record.hyperparameters.items()))
        self.console.print(
            f"[{done}/{planned}] {elapsed:6.1f}s  {record.status:9s} score {score}  {hyper}", highlight=False
        )
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done)

    def on_finished(self, outcome: SearchOutcome) -> None:
        self._stop()
        rule = disclosure_for(outcome.plan.shape.mode, outcome.plan.shape.release)
        if not rule.shows_duration:
            # A console is often a log file (nohup, CI): no recorded duration under release: best.
            self.console.print("search finished", highlight=False)
            return
        elapsed = time.monotonic() - self.started
        self.console.print(f"search finished in {elapsed:.1f}s", highlight=False)

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __del__(self) -> None:
        # At interpreter shutdown rich can no longer import what it renders with.
        with contextlib.suppress(Exception):
            self._stop()
