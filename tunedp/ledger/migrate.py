"""``tunedp budget migrate``: move a sqlite ledger to a team's PostgreSQL ledger, history and binding included.

The sqlite file is read through its own checks (header checksum, hash chain,
whitelist), so a tampered file is refused rather than moved. Everything is
written by one server function call (``tunedp.import_dataset``, the owner's
role only), so the move is all or nothing, and a dataset that already has a
budget on the server is refused: two budgets must never be merged by hand.
The sqlite file is left in place, untouched.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from tunedp.accounting.serialization import event_to_json
from tunedp.ledger.curves import rdp_curve
from tunedp.ledger.keys import read_key
from tunedp.ledger.location import LedgerUrl
from tunedp.ledger.postgres_session import call, check_settings
from tunedp.ledger.records import stored_day
from tunedp.ledger.sqlite import PrivacyLedger

__all__ = ["Migrated", "migrate"]


@dataclass(frozen=True, kw_only=True)
class Migrated:
    dataset: str
    epsilon: float
    delta: float
    charges: int
    bound: bool
    url: str


def migrate(source: Path, target: LedgerUrl) -> Migrated:
    """Copy ``source``'s budget, binding (fingerprint and key) and charges to ``target`` in one transaction."""
    ledger = PrivacyLedger.open(source)
    charges = ledger.charges()  # verified: checksums, chain, whitelist
    key = read_key(source, ledger.key_id) if ledger.bound else None
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as connection:
        updated = dict(connection.execute("SELECT search_id, updated_at FROM charges").fetchall())
    items = [
        {
            "search_id": c.search_id,
            "created_on": c.created_at[:10],
            "updated_on": stored_day(updated.get(c.search_id, c.created_at)),
            "config_hash": c.config_hash,
            "mode": c.mode,
            "label": c.label,
            "status": c.status,
            "event_json": json.dumps(event_to_json(c.event), sort_keys=True, separators=(",", ":")),
            "curve": [repr(value) for value in rdp_curve(c.event)],  # JSON has no infinity: as text
        }
        for c in charges
    ]
    from psycopg.types.json import Jsonb

    with target.connect() as connection:
        check_settings(connection, target)
        call(
            target,
            lambda: connection.execute(
                "SELECT tunedp.import_dataset(%s, %s, %s, %s, %s, %s, %s)",
                (ledger.dataset, ledger.epsilon, ledger.delta, ledger.fingerprint, key, ledger.key_id, Jsonb(items)),
            ),
        )
    return Migrated(
        dataset=ledger.dataset,
        epsilon=ledger.epsilon,
        delta=ledger.delta,
        charges=len(items),
        bound=ledger.bound,
        url=target.shown,
    )
