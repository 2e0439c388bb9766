"""Progress as plain lines: for logs, pipes, CI and the Python API, where no live display exists.

A search run under ``nohup``, in CI or from Python used to print nothing
between "charged" and "finished". :class:`LineProgress` turns the observer
hooks into one plain line each — the charge, every completed trial where the
mode releases it, the end — and sends it to the ``tunedp.progress`` logger and
to an optional callback.

Under ``release: best`` nothing about a single trial may leave before
selection, and — unlike on a live terminal, where the clock is seen and not
kept — a line in a log is *recorded*: periodic "still running" lines (their
times, their number) or an elapsed time at the end would record the
search's duration, which grows with the secret number of trials K
(docs/architecture.md, §4.1). So a plain-line search under ``release: best``
says once that it is running and why it stays silent, and ends without a
duration. :class:`Heartbeat` ("still running, elapsed …" every
``TUNEDP_HEARTBEAT_S`` seconds) remains for the modes that release every
trial, where nothing is secret about their count or time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tunedp.observe.protocol import SearchObserver, SearchOutcome
from tunedp.release.disclosure import disclosure_for
from tunedp.release.records import TrialRecord
from tunedp.release.report import SEEDED_NOTE

if TYPE_CHECKING:
    from tunedp.ledger.sqlite import Charge, PrivacyLedger
    from tunedp.planning.single_stage import SearchPlan

__all__ = [
    "Heartbeat",
    "LineProgress",
    "ProgressCallback",
    "charge_line",
    "elapsed_text",
    "heartbeat_seconds",
    "trial_line",
]

log = logging.getLogger("tunedp.progress")

#: Receives one plain line of progress (no markup, no colour).
ProgressCallback = Callable[[str], None]

HEARTBEAT_ENV = "TUNEDP_HEARTBEAT_S"


def heartbeat_seconds() -> float:
    """Seconds between "still running" lines (``TUNEDP_HEARTBEAT_S``, default 60, at least 0.1)."""
    try:
        return max(0.1, float(os.environ.get(HEARTBEAT_ENV, "60")))
    except ValueError:
        return 60.0


def elapsed_text(seconds: float) -> str:
    """``1h02m03s`` / ``2m05s`` / ``12.3s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def trial_line(record: TrialRecord, done: int, planned: int, elapsed: float) -> str:
    """One completed trial, as released under ``release: all``."""
    score = f"{record.final_score:.4f}" if record.released_scores else "-"
    hyper = ", ".join(f"{k}={v:.4g}" for k, v in sorted(record.hyperparameters.items()))
    reason = f"  ({record.error})" if record.status == "failed" and record.error else ""
    return f"[{done}/{planned}] {elapsed:6.1f}s  {record.status:9s} score {score}  {hyper}{reason}"


def charge_line(plan: SearchPlan, charge: Charge, ledger: PrivacyLedger) -> str:
    """The line that opens a search: what was charged, or that a resumed search is charged already."""
    what = f"(σ = {plan.noise_multiplier:.4f}, {plan.shape.mode}/{plan.shape.release})"
    if charge.status != "charged":  # a resumed search: its charge is the first run's
        return (
            f"resuming search {charge.search_id[:12]}: no new charge (ε = {charge.epsilon:.4f} was charged "
            f"to ledger {ledger.dataset!r} by its first run) {what}"
        )
    seeded = SEEDED_NOTE if charge.seeded else ""
    return f"charged ε = {charge.epsilon:.4f} to ledger {ledger.dataset!r} {what}{seeded}"


#: The one line a plain-line ``release: best`` search writes while it runs.
SILENT_BEST = (
    "running (release: best): no progress lines until the end — their times would record the "
    "search's duration, which grows with the secret number of trials"
)


class Heartbeat:
    """A daemon thread calling ``emit("still running, elapsed …")`` every ``interval`` seconds until stopped."""

    def __init__(self, emit: Callable[[str], None], interval: float | None = None) -> None:
        self._emit = emit
        self._interval = interval if interval is not None else heartbeat_seconds()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="tunedp-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._emit(f"still running, elapsed {elapsed_text(time.monotonic() - self._started)}")


class LineProgress(SearchObserver):
    """Every hook as one plain line to the ``tunedp.progress`` logger and to ``emit`` (if given)."""

    def __init__(self, emit: ProgressCallback | None = None, *, heartbeat_s: float | None = None) -> None:
        self._emit = emit
        self._heartbeat_s = heartbeat_s
        self._heartbeat: Heartbeat | None = None
        self._shows_duration = True
        self.started = time.monotonic()

    def line(self, text: str) -> None:
        log.info(text)
        if self._emit is not None:
            self._emit(text)

    def on_charged(self, plan: SearchPlan, charge: Charge, ledger: PrivacyLedger) -> None:
        self.started = time.monotonic()
        self.line(charge_line(plan, charge, ledger))
        self._shows_duration = disclosure_for(plan.shape.mode, plan.shape.release).shows_duration
        if not self._shows_duration:
            self.line(SILENT_BEST)

    def on_trial_done(self, record: TrialRecord, done: int, planned: int) -> None:
        self.line(trial_line(record, done, planned, time.monotonic() - self.started))

    def on_finished(self, outcome: SearchOutcome) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        if not self._shows_duration:
            self.line(f"search {outcome.report.status}")
            return
        self.line(f"search {outcome.report.status} in {elapsed_text(time.monotonic() - self.started)}")
