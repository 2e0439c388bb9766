"""The storage interface every ledger backend implements, and opening a ledger by its location.

Two backends: :class:`tunedp.ledger.sqlite.PrivacyLedger` (one sqlite
file per dataset, the embedded default) and
:class:`tunedp.ledger.postgres.PostgresLedger` (one PostgreSQL database for a
team). Callers (driver, CLI, resume) hold a :class:`Ledger` and never ask
which; ``tunedp.testing.LedgerContract`` is the suite both pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from tunedp.ledger.location import LedgerUrl, looks_like_url

if TYPE_CHECKING:
    from dp_accounting import dp_event

    from tunedp.ledger.records import Charge, CurveShortfall, Fingerprinter, Refusal

__all__ = ["Ledger", "create_ledger_at", "open_ledger", "parse_location"]


class Ledger(Protocol):
    """One protected dataset's global (ε, δ) and every charge against it."""

    dataset: str
    epsilon: float
    delta: float
    fingerprint: str
    key_id: str

    @property
    def path(self) -> Path | str:
        """Where it lives, printable (a file, or a URL without its password)."""

    @property
    def bound(self) -> bool:
        """Whether a fingerprint of the dataset's rows is stored (else no search may charge it)."""

    def verify_data(self, fingerprint_of: Fingerprinter) -> None:
        """Refuse unless ``fingerprint_of`` reads the rows the ledger is bound to."""

    def bind(self, fingerprint_of: Fingerprinter) -> None:
        """Bind an unbound ledger to the rows ``fingerprint_of`` reads."""

    def derived_key(self, purpose: str) -> bytes:
        """A secret key for ``purpose`` derived from the ledger's data key (authenticates resume state)."""

    def charges(self) -> list[Charge]:
        """Every charge, oldest first, verified and decoded."""

    def spent_epsilon(self) -> float:
        """The RDP composition of every stored event at the ledger's δ."""

    def remaining(self) -> float:
        """Global ε minus spent ε (display only)."""

    def admissible(self, event: dp_event.DpEvent) -> tuple[bool, float]:
        """Dry run of :meth:`charge`: fits, and the spent ε it would leave."""

    def charge(
        self, event: dp_event.DpEvent, *, config_hash: str, mode: str, label: str = "", search_id: str | None = None
    ) -> Charge:
        """Admit and record atomically, or raise BudgetExceededError with nothing charged."""

    def set_status(self, search_id: str, status: str, *, at: str | None = None) -> None:
        """Bookkeeping: a search's status (its UTC day recorded); never changes what was charged."""

    def refusals(self) -> list[Refusal]:
        """The refusal log (empty where the backend keeps none)."""

    def verify(self) -> list[CurveShortfall]:
        """Charges whose stored curve is below their event's (empty where none are stored)."""


def parse_location(location: str | Path) -> Path | LedgerUrl:
    """A ledger file path or a PostgreSQL URL (a mistyped scheme is refused, not taken as a file name)."""
    if isinstance(location, LedgerUrl):
        return location
    text = str(location)
    return LedgerUrl.parse(text) if looks_like_url(text) else Path(location)


def open_ledger(location: str | Path | LedgerUrl, *, dataset: str | None = None) -> Ledger:
    """Open the ledger at ``location`` (a file or a URL) for ``dataset``."""
    where = location if isinstance(location, LedgerUrl) else parse_location(location)
    if isinstance(where, LedgerUrl):
        from tunedp.ledger.postgres import PostgresLedger

        return PostgresLedger.open(where, dataset=dataset)
    from tunedp.ledger.sqlite import PrivacyLedger

    return PrivacyLedger.open(where, dataset=dataset)


def create_ledger_at(
    location: Path | LedgerUrl,
    *,
    dataset: str,
    epsilon: float,
    delta: float,
    fingerprint_of: Fingerprinter | None = None,
) -> Ledger:
    """Create ``dataset``'s budget at ``location``; both backends refuse to reset an existing one."""
    if isinstance(location, LedgerUrl):
        from tunedp.ledger.postgres import PostgresLedger

        return PostgresLedger.create(
            location, dataset=dataset, epsilon=epsilon, delta=delta, fingerprint_of=fingerprint_of
        )
    from tunedp.ledger.sqlite import PrivacyLedger

    return PrivacyLedger.create(location, dataset=dataset, epsilon=epsilon, delta=delta, fingerprint_of=fingerprint_of)
