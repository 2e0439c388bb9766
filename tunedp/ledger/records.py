"""What a ledger records and shows, whichever backend stores it: charges, statuses, days, refusals, shortfalls.

Plain values only. Both backends (:mod:`tunedp.ledger.sqlite`,
:mod:`tunedp.ledger.postgres`) return a :class:`Charge` per stored row, and
both record time the same way: the UTC day, never a finer time (:func:`today`).

This module imports neither torch nor Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from dp_accounting import dp_event

__all__ = [
    "SEEDED_MARK",
    "STATUSES",
    "UNBOUND",
    "Charge",
    "CurveShortfall",
    "Fingerprinter",
    "Refusal",
    "day_of",
    "stored_day",
    "today",
]

UNBOUND = ""  # fingerprint and key id of a ledger no workload's data is bound to yet

Fingerprinter = Callable[[bytes], str]
"""Computes the keyed fingerprint of the protected data under a ledger's key."""
STATUSES = ("charged", "running", "completed", "failed", "interrupted")


@dataclass(frozen=True, kw_only=True)
class Charge:
    """One charged search as stored (the event is decoded and verified)."""

    search_id: str
    created_at: str
    config_hash: str
    mode: str
    label: str
    epsilon: float
    status: str
    event: dp_event.DpEvent
    #: The database role that made the charge (a PostgreSQL ledger's ``session_user``); None for sqlite.
    charged_by: str | None = None

    @property
    def seeded(self) -> bool:
        """A ``--seed`` search: its batches, noise and K follow from a known integer — not private."""
        return SEEDED_MARK in self.mode


#: Appended to a charge's mode when the search ran with ``--seed`` (deterministic, so not private).
SEEDED_MARK = " [seeded: not private]"


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """A charge the server refused (over budget, or data that did not match): nothing was charged."""

    search_id: str
    refused_by: str
    day: str
    reason: str
    mode: str
    epsilon_after: float | None


@dataclass(frozen=True, kw_only=True)
class CurveShortfall:
    """A charge whose stored RDP curve is below its event's (the server was told less than was spent)."""

    search_id: str
    charged_by: str | None
    day: str
    orders: tuple[float, ...]
    stored_epsilon: float
    recomputed_epsilon: float


def today() -> str:
    """Today, the UTC day: the only time a ledger records.

    A finer time would publish durations: a charge's time and the search's
    end (MLflow, the status update) together give how long the search ran,
    which grows with its secret trial count K.
    """
    return datetime.now(UTC).date().isoformat()


def day_of(moment: str) -> str:
    """The UTC day of an ISO time or date (``2026-12-06T21:57:42+00:00`` → ``2026-12-06``).

    Also how rows of older ledgers, which stored seconds, are read and shown.
    """
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        raise ValueError(f"Expected an ISO date or time, got {moment!r}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.date().isoformat()


def stored_day(stored: object) -> str:
    """A stored time as its day; a ledger written before days-only stored seconds (read, never shown)."""
    text = str(stored)
    try:
        return day_of(text)
    except ValueError:
        return text[:10]
