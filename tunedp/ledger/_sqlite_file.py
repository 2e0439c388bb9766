"""The sqlite ledger's file: its two tables, the header checksum, the hash chain over charges, and reading them back.

Stored rows are untrusted: each event row carries a SHA-256 of its JSON and
the header (global budget, data fingerprint, key id) a SHA-256 of its fields
that is also the genesis of the hash chain over the charges; a row that fails
a check, or does not decode through the whitelist, makes the ledger refuse to
operate (:class:`LedgerCorruptError`) rather than under-count. The checksums
are not secret: someone who rewrites the whole chain consistently is not
stopped; the file guards against accidents and casual edits, not against an
adversary with write access to it (docs/architecture.md §4.5).

:mod:`tunedp.ledger.sqlite` decides what to write and when (its transactions);
this module knows only the format.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tunedp.accounting.serialization import EventDecodeError, event_from_json
from tunedp.errors import LedgerCorruptError, LedgerError
from tunedp.ledger.records import UNBOUND, Charge, stored_day

__all__ = [
    "LEGACY_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "TABLES",
    "Header",
    "append_charge",
    "chain_link",
    "connect",
    "header_rows",
    "meta_digest",
    "read_chain",
    "read_charges",
    "read_meta",
    "rebind",
    "sha256",
]

SCHEMA_VERSION = "2"
LEGACY_SCHEMA_VERSION = "1"  # before data fingerprints: refused until `tunedp budget bind`
_BUSY_TIMEOUT_S = 60.0

TABLES = """
CREATE TABLE IF NOT EXISTS ledger_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS charges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    search_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    mode TEXT NOT NULL,
    label TEXT NOT NULL,
    epsilon REAL NOT NULL,
    event_json TEXT NOT NULL,
    event_sha256 TEXT NOT NULL,
    chain_sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

#: sqlite's words for a file or folder it may not write (a read-only file system, permissions).
_NOT_WRITABLE = ("readonly", "read-only", "unable to open database file")


@dataclass(frozen=True, kw_only=True)
class Header:
    """The ledger_meta rows that define a ledger, as stored (text), after their checksum was checked."""

    version: str
    dataset: str
    epsilon: str
    delta: str
    fingerprint: str
    key_id: str


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def meta_digest(dataset: str, epsilon: str, delta: str, fingerprint: str, key_id: str) -> str:
    """Checksum of the header and genesis of the charge chain: covers the data binding too."""
    return sha256(f"tunedp-ledger|{SCHEMA_VERSION}|{dataset}|{epsilon}|{delta}|{fingerprint}|{key_id}")


def _legacy_meta_digest(dataset: str, epsilon: str, delta: str) -> str:
    return sha256(f"tunedp-ledger|{LEGACY_SCHEMA_VERSION}|{dataset}|{epsilon}|{delta}")


def chain_link(previous: str, search_id: str, event_digest: str) -> str:
    """One link of the hash chain: deleting, reordering or splicing charges breaks it."""
    return sha256(f"tunedp-charge|{previous}|{search_id}|{event_digest}")


def header_rows(
    *, dataset: str, epsilon: str, delta: str, fingerprint: str, key_id: str, created_at: str
) -> list[tuple[str, str]]:
    """The ledger_meta rows of a new ledger; the chain's head starts at the header digest."""
    digest = meta_digest(dataset, epsilon, delta, fingerprint, key_id)
    return [
        ("schema_version", SCHEMA_VERSION),
        ("dataset", dataset),
        ("epsilon", epsilon),
        ("delta", delta),
        ("fingerprint", fingerprint),
        ("key_id", key_id),
        ("created_at", created_at),
        ("meta_sha256", digest),
        # Head of the hash chain over the charges; starts at the header digest.
        ("head_sha256", digest),
    ]


def append_charge(
    connection: sqlite3.Connection,
    head: str,
    *,
    search_id: str,
    day: str,
    config_hash: str,
    mode: str,
    label: str,
    epsilon: float,
    event_json: str,
) -> None:
    """Insert one charge row linked to the chain's ``head`` and move the head to it (in the caller's transaction)."""
    event_digest = sha256(event_json)
    link = chain_link(head, search_id, event_digest)
    connection.execute(
        "INSERT INTO charges(search_id, created_at, config_hash, mode, label, epsilon, "
        "event_json, event_sha256, chain_sha256, status, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            search_id,
            day,
            config_hash,
            mode,
            label,
            epsilon,
            event_json,
            event_digest,
            link,
            "charged",
            day,
        ),
    )
    connection.execute("UPDATE ledger_meta SET value = ? WHERE key = 'head_sha256'", (link,))


def rebind(
    connection: sqlite3.Connection, header: Header, charges: list[Charge], *, fingerprint: str, key_id: str
) -> None:
    """Write a binding into the header and re-link every charge from the new genesis (inside the caller's transaction).

    The binding is then covered by the header checksum and the chain, like the budget.
    """
    digest = meta_digest(header.dataset, header.epsilon, header.delta, fingerprint, key_id)
    link = digest
    for charge in charges:
        event_digest = connection.execute(
            "SELECT event_sha256 FROM charges WHERE search_id = ?", (charge.search_id,)
        ).fetchone()[0]
        link = chain_link(link, charge.search_id, event_digest)
        connection.execute("UPDATE charges SET chain_sha256 = ? WHERE search_id = ?", (link, charge.search_id))
    connection.executemany(
        "INSERT OR REPLACE INTO ledger_meta(key, value) VALUES (?, ?)",
        [
            ("schema_version", SCHEMA_VERSION),
            ("fingerprint", fingerprint),
            ("key_id", key_id),
            ("meta_sha256", digest),
            ("head_sha256", link),
        ],
    )


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection for one operation; sqlite's errors become one line (busy, not writable, not a ledger)."""
    # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
    connection = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous = FULL")
        yield connection
    except sqlite3.OperationalError as error:
        if "locked" in str(error) or "busy" in str(error):
            raise LedgerError(f"ledger {path} is busy (another process holds it); retry") from None
        if any(words in str(error) for words in _NOT_WRITABLE):
            raise LedgerError(
                f"ledger folder {path.parent}: cannot write the ledger there ({error}); "
                "make it writable, or set TUNEDP_HOME (or --ledger) to a writable folder"
            ) from None
        raise LedgerCorruptError(f"ledger {path} is not a readable tunedp ledger ({error})") from None
    except sqlite3.DatabaseError as error:
        raise LedgerCorruptError(f"ledger {path} is not a readable tunedp ledger ({error})") from None
    finally:
        connection.close()


def read_meta(connection: sqlite3.Connection, path: Path, *, allow_legacy: bool = False) -> Header:
    """The header, its checksum and budget checked; a schema-1 ledger only with ``allow_legacy`` (to bind it)."""
    try:
        rows = dict(connection.execute("SELECT key, value FROM ledger_meta").fetchall())
    except sqlite3.DatabaseError:
        raise LedgerCorruptError(f"ledger {path} is not a tunedp ledger (no ledger_meta table)") from None
    try:
        dataset, epsilon, delta = rows["dataset"], rows["epsilon"], rows["delta"]
        digest = rows["meta_sha256"]
        version = rows["schema_version"]
    except KeyError as missing:
        raise LedgerCorruptError(f"ledger {path} header lacks {missing}; refusing to use it") from None
    if version == LEGACY_SCHEMA_VERSION and digest == _legacy_meta_digest(dataset, epsilon, delta):
        # Conservative: a ledger from before fingerprints is refused, not adopted
        # by whichever data the next search happens to read; binding is a
        # deliberate command that prints what it bound.
        if not allow_legacy:
            raise LedgerError(
                f"ledger {path} predates data fingerprints; bind it to its data once with "
                f"`tunedp budget bind --ledger {path}` (loads the workload's data), then retry"
            )
        fingerprint = key_id = UNBOUND
    else:
        stored_fingerprint, stored_key_id = rows.get("fingerprint"), rows.get("key_id")
        if (
            version != SCHEMA_VERSION
            or not isinstance(stored_fingerprint, str)
            or not isinstance(stored_key_id, str)
            or digest != meta_digest(dataset, epsilon, delta, stored_fingerprint, stored_key_id)
        ):
            raise LedgerCorruptError(
                f"ledger {path}: global budget was edited outside tunedp (checksum mismatch); refusing to use it"
            )
        fingerprint, key_id = stored_fingerprint, stored_key_id
    # The checksum is not a secret; a header rewritten with a matching checksum
    # must still hold a usable budget (a NaN ε would admit every charge).
    try:
        epsilon_value, delta_value = float(epsilon), float(delta)
    except ValueError:
        epsilon_value = delta_value = math.nan
    if not (math.isfinite(epsilon_value) and epsilon_value > 0 and 0 < delta_value < 1):
        raise LedgerCorruptError(f"ledger {path}: global budget ({epsilon}, {delta}) is invalid; refusing to use it")
    return Header(
        version=version, dataset=dataset, epsilon=epsilon, delta=delta, fingerprint=fingerprint, key_id=key_id
    )


def read_charges(connection: sqlite3.Connection, path: Path) -> list[Charge]:
    return read_chain(connection, path)[0]


def read_chain(connection: sqlite3.Connection, path: Path) -> tuple[list[Charge], str]:
    """Every charge, verified row by row and as a chain; returns them and the chain's head.

    Each row's event is checked against its own checksum and decoded through
    the whitelist; the rows together must form an unbroken hash chain from the
    header to the head stored in the header, so a deleted charge — the cheapest
    way to "regain" budget by hand — is detected, not silently forgotten.
    (The checksums are not secret: someone who rewrites the whole chain
    consistently is not stopped; the ledger guards against accidents and
    casual edits, not against an adversary with write access to the file.)
    """
    meta = dict(connection.execute("SELECT key, value FROM ledger_meta").fetchall())
    genesis, head = meta.get("meta_sha256"), meta.get("head_sha256")
    if genesis is None or head is None:
        raise LedgerCorruptError(f"ledger {path} header lacks its chain head; refusing to use it")
    rows = connection.execute(
        "SELECT id, search_id, created_at, config_hash, mode, label, epsilon, event_json, event_sha256, "
        "status, chain_sha256 FROM charges ORDER BY id"
    ).fetchall()
    charges = []
    link = genesis
    for row in rows:
        row_id, search_id, created, config_hash, mode, label, epsilon, event_json, digest, status, chained = row
        if not isinstance(event_json, str) or sha256(event_json) != digest:
            raise LedgerCorruptError(
                f"ledger {path}: charge row {row_id} was edited outside tunedp (checksum mismatch); refusing to use it"
            )
        try:
            event = event_from_json(json.loads(event_json))
        except (EventDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise LedgerCorruptError(f"ledger {path}: charge row {row_id} is invalid ({error})") from None
        link = chain_link(link, str(search_id), digest)
        if chained != link:
            raise LedgerCorruptError(
                f"ledger {path}: charge row {row_id} breaks the chain of charges (a charge was removed, "
                "reordered or rewritten outside tunedp); refusing to use it"
            )
        charges.append(
            Charge(
                search_id=search_id,
                created_at=stored_day(created),
                config_hash=config_hash,
                mode=mode,
                label=label,
                epsilon=float(epsilon),
                status=status,
                event=event,
            )
        )
    if link != head:
        raise LedgerCorruptError(
            f"ledger {path}: the last charge(s) were removed outside tunedp (chain head mismatch); refusing to use it"
        )
    return charges, head
