"""The observer contract: how a search tells the console, MLflow or a user's code what happened.

The driver calls observers only with what the disclosure rule lets leave it,
so an observer cannot leak by accident; which observers a search gets is the
caller's choice (the CLI adds the console and MLflow; the Python API adds
none unless asked). An observer's failure never loses a search's results.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tunedp.release.records import TrialRecord
from tunedp.release.report import SearchReport

if TYPE_CHECKING:
    from tunedp.ledger.sqlite import Charge, PrivacyLedger
    from tunedp.planning.single_stage import SearchPlan

__all__ = ["SearchObserver", "SearchOutcome", "notify"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SearchOutcome:
    """What a finished search releases, plus where it wrote its files."""

    search_id: str
    plan: SearchPlan
    charge: Charge
    best: TrialRecord | None
    disclosed_trials: tuple[TrialRecord, ...]
    report: SearchReport
    output_dir: Path
    ray_nodes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.best is not None

    @property
    def failed_trials_disclosed(self) -> int:
        return sum(1 for record in self.disclosed_trials if record.status == "failed")


class SearchObserver:
    """Hooks for progress display and tracking; every call already obeys the disclosure rule.

    Subclass and override what you need; the defaults do nothing.
    """

    def on_charged(self, plan: SearchPlan, charge: Charge, ledger: PrivacyLedger) -> None:
        """The ledger was charged; trials are about to start."""

    def on_trial_done(self, record: TrialRecord, done: int, planned: int) -> None:
        """A trial finished (only called where the mode releases every trial)."""

    def on_finished(self, outcome: SearchOutcome) -> None:
        """The search is over; ``outcome`` holds only disclosable records."""


Hook = Literal["on_charged", "on_trial_done", "on_finished"]


def notify(observers: Sequence[SearchObserver], hook: Hook, *args: Any) -> None:
    """Call one hook on every observer; a failing observer is logged and skipped."""
    for observer in observers:
        method = getattr(observer, hook)
        try:
            method(*args)
        except Exception as error:
            log.warning("%s failed: %s", getattr(method, "__qualname__", method), error)
