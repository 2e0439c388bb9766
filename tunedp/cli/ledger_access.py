"""Which ledger a command reads or charges, and opening it: ``--ledger``, ``$TUNEDP_LEDGER_URL`` or the default file.

The storage backends (sqlite, PostgreSQL) are imported only when a command
opens a ledger, so that loading the command line stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tunedp.cli.output import UserError

if TYPE_CHECKING:
    from tunedp.ledger import LedgerUrl
    from tunedp.ledger.sqlite import PrivacyLedger

__all__ = ["ledger_exists", "open_for_reading", "open_ledger", "resolve_ledger_path"]


def resolve_ledger_path(dataset: str, ledger: str | Path | None) -> Path | LedgerUrl:
    """``--ledger`` (a file or a postgresql:// URL), else ``$TUNEDP_LEDGER_URL``, else the dataset's default file."""
    from tunedp.ledger import ledger_location

    return ledger_location(dataset, ledger)


def open_ledger(path: Path | LedgerUrl, dataset: str | None) -> PrivacyLedger:
    """The ledger at ``path`` (a file or a server) for ``dataset``, through the interface both backends share."""
    from tunedp.ledger import open_ledger as open_at

    return open_at(path, dataset=dataset)  # type: ignore[return-value]  # the interface both backends share


def ledger_exists(location: Path | LedgerUrl, dataset: str) -> bool:
    """A file that exists, or a server that holds ``dataset``'s budget (a server that is down is an error)."""
    from tunedp.errors import LedgerMissingError

    if isinstance(location, Path):
        return location.exists()
    try:
        open_ledger(location, dataset)
    except LedgerMissingError:
        return False
    return True


def open_for_reading(dataset: str | None, ledger: str | None) -> tuple[Path | LedgerUrl, PrivacyLedger]:
    """The ledger ``budget show/history/verify`` read: by dataset (default place or URL) or by ``--ledger``."""
    from tunedp.ledger import LEDGER_URL_ENV

    if dataset is None and ledger is None:
        raise UserError(f"--dataset: give the dataset name (or --ledger PATH, or --ledger/{LEDGER_URL_ENV} with it)")
    path = resolve_ledger_path(dataset or "", ledger)
    if dataset is None and not isinstance(path, Path):
        raise UserError(f"--dataset: a PostgreSQL ledger ({path}) holds many datasets; name one with --dataset")
    return path, open_ledger(path, dataset)
