"""The console's view of a running search, within the disclosure rule.

A rich progress line shows the elapsed time while trials run. Where the mode
releases every trial, it also counts trials done/planned and each finished
trial is printed with its released score. Under ``release: best`` nothing
about a single trial — not even how many have run or are planned — is shown
before selection: the line is a spinner and a clock.

When the console is not a terminal (``nohup``, a CI log, a pipe) there is no
live line; a plain "still running, elapsed …" line every
``TUNEDP_HEARTBEAT_S`` seconds says the search is alive instead
(:mod:`tunedp.observe.lines`). The closing line says how the search ended,
so an interrupted search never prints "finished".
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

from tunedp.observe.lines import SILENT_BEST, Heartbeat, charge_line, elapsed_text, trial_line
from tunedp.observe.protocol import SearchObserver, SearchOutcome
from tunedp.release.disclosure import disclosure_for
from tunedp.release.records import TrialRecord

if TYPE_CHECKING:
    from tunedp.ledger.sqlite import Charge, PrivacyLedger
    from tunedp.planning.single_stage import SearchPlan

__all__ = ["ConsoleProgress"]


class ConsoleProgress(SearchObserver):
    """Prints the charge, a live progress line, trials as they finish (where released), the elapsed time."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._heartbeat: Heartbeat | None = None

    def on_charged(self, plan: SearchPlan, charge: Charge, ledger: PrivacyLedger) -> None:
        self.started = time.monotonic()
        rule = disclosure_for(plan.shape.mode, plan.shape.release)
        self.console.print(charge_line(plan, charge, ledger), highlight=False, markup=False, soft_wrap=True)
        if not self.console.is_terminal:
            # No live line in a log or a pipe (it would leave blank lines): plain lines only.
            if not rule.shows_trial_count:
                # A log records: no heartbeat under release: best (see tunedp.observe.lines).
                self.console.print(SILENT_BEST, highlight=False, markup=False, soft_wrap=True)
            return
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
        self.console.print(trial_line(record, done, planned, elapsed), highlight=False, markup=False)
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done)

    def on_finished(self, outcome: SearchOutcome) -> None:
        self._stop()
        rule = disclosure_for(outcome.plan.shape.mode, outcome.plan.shape.release)
        ended = "finished" if outcome.report.status in ("completed", "failed") else outcome.report.status
        if not rule.shows_duration:
            # A console is often a log file (nohup, CI): no recorded duration under release: best.
            self.console.print(f"search {ended}", highlight=False)
            return
        elapsed = time.monotonic() - self.started
        self.console.print(f"search {ended} in {elapsed_text(elapsed)}", highlight=False)

    def _stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __del__(self) -> None:
        # At interpreter shutdown rich can no longer import what it renders with.
        with contextlib.suppress(Exception):
            self._stop()
