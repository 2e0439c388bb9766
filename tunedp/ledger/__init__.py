"""The budget store: a sqlite file per dataset (the embedded default) or a shared PostgreSQL ledger (a team).

``open_ledger(location, dataset=...)`` takes either a file path or a
``postgresql://`` URL; ``ledger_location`` picks what a command uses
(``--ledger``, else ``$TUNEDP_LEDGER_URL``, else the per-user file). Both
backends implement :class:`Ledger` and pass ``tunedp.testing.LedgerContract``.
psycopg is imported only when a URL is used.

This package imports neither torch nor Ray.
"""

from __future__ import annotations

from tunedp.ledger._records import CurveShortfall, Refusal
from tunedp.ledger._store import Ledger, create_ledger_at, open_ledger, parse_location
from tunedp.ledger._url import LEDGER_URL_ENV, LedgerUrl, ledger_location, looks_like_url

__all__ = [
    "LEDGER_URL_ENV",
    "CurveShortfall",
    "Ledger",
    "LedgerUrl",
    "Refusal",
    "create_ledger_at",
    "ledger_location",
    "looks_like_url",
    "open_ledger",
    "parse_location",
]
