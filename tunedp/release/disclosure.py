"""What may leave the search driver: the one rule every output channel obeys.

The console, the progress display, the output folder and MLflow all ask this
module what they may show about the trials. The rule follows from the event
the search was charged for:

- ``random`` with ``release: best`` was charged as repeat-and-select. Only the
  best trial's hyperparameters, released score(s), test metric and model may
  leave. Nothing about other trials leaves — not their scores or status, and
  not even how many there were: the bound assumes the number of trials K is
  random *and unseen*; publishing K (or one record per trial) makes the output
  best-of-k for a known k, which the bound does not cover. This is stricter
  than logging every trial's prior-drawn hyperparameters, on purpose.
  (The wall-clock duration of a search correlates with K; we cannot hide it
  from the operator, and say so in the report.) So every time the search
  *publishes* is :meth:`Disclosure.public_time`: the times tunedp writes, and,
  through :meth:`Disclosure.settle`, the modification times of every file and
  folder it publishes, after its last write (docs/architecture.md, "What a
  search publishes").
- ``hypo`` (DP-HyPO, always ``release: best``) is charged with K random and
  unseen too: the same rule as random/best.
- ``two_stage`` and ``public_proxy`` (shape ``release: best``) release only
  their final run: stage-1 trials, K and their scores stay inside, as above.
- every other mode (``release: all``, ``adaptive``, ``grid``) was charged as
  the composition of all its trials with all their score releases, so every
  trial's released scores, status and hyperparameters may be shown.

In no mode does a raw training loss or an exact private validation accuracy
leave: those were never privatised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tunedp.release.records import TrialRecord, TrialStatus

__all__ = ["Disclosure", "TrialRecord", "TrialStatus", "disclosure_for"]


@dataclass(frozen=True, kw_only=True)
class Disclosure:
    """The disclosure rule of one search."""

    releases_all: bool

    def trials(self, records: list[TrialRecord], best: TrialRecord | None) -> list[TrialRecord]:
        """The trials whose records may leave the driver, in order."""
        if self.releases_all:
            return list(records)
        return [best] if best is not None else []

    @property
    def shows_trial_count(self) -> bool:
        """Whether the number of trials (planned or done) may be displayed."""
        return self.releases_all

    @property
    def shows_duration(self) -> bool:
        """Whether a search's duration, or the time it ended, may be recorded.

        Under ``release: best`` the duration grows with the secret K (each
        trial takes roughly the same time), so a recorded duration or end time
        is a noisy release of K: the report, MLflow and the ledger carry
        dates at day granularity only. (The operator still sees the clock.)
        """
        return self.releases_all

    def public_time(self, moment: datetime | None = None) -> datetime:
        """``moment`` (default now) as it may be recorded: exact, or the start of its UTC day."""
        moment = moment or datetime.now(UTC)
        if self.shows_duration:
            return moment
        return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def settle(self, *paths: Path, tree: bool = True) -> None:
        """Give ``paths`` (with ``tree``, folders with everything under them) the public time as file times.

        A file's or folder's modification time is the moment it was last
        written: for anything written as the search ends (the report, the
        released model, the MLflow store, the ledger file and the folders
        holding them) that is the end of the search. Called by each publisher
        after its last write. Nothing to do where the duration may show.
        Missing paths are skipped (a publisher may not have written one).
        """
        if self.shows_duration:
            return
        moment = self.public_time().timestamp()
        for path in paths:
            if not path.exists():
                continue
            inside = sorted(path.rglob("*"), reverse=True) if tree and path.is_dir() else []
            for item in [*inside, path]:  # children first: restamping a folder's entries leaves its time
                if not item.is_symlink():
                    os.utime(item, (moment, moment))


def disclosure_for(mode: str, release: str) -> Disclosure:
    """The rule for a search charged as ``mode``/``release`` (see module docstring).

    Each search mode states its own rule (:meth:`tunedp.modes.SearchMode.disclosure`,
    what the driver applies); observers ask this function with the plan's
    shape, and :class:`tunedp.testing.SearchModeContract` checks that both agree.
    """
    # random/best, and the staged modes (two_stage, public_proxy: one final run
    # released, stage 1 never), are all charged with K unseen.
    if release == "best":
        return Disclosure(releases_all=False)
    return Disclosure(releases_all=True)
