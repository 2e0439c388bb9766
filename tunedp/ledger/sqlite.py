"""The privacy ledger: one per protected dataset, one sqlite file, one global (ε, δ).

Every search is charged *before* its first trial reads data. The charge is a
stored DpEvent; admission recomputes the RDP composition of every stored event
plus the new one at the ledger's δ and admits only if it stays within the
global ε. The read-compose-insert runs inside one ``BEGIN IMMEDIATE``
transaction, so two processes charging at once serialise on sqlite's write
lock and cannot both spend the last of the budget; once committed, a charge
survives a killed process (sqlite's journal makes the commit durable).

A charge is never removed or reduced: a failed, interrupted or early-stopped
search still touched the data. Status changes are bookkeeping only.

Stored rows are untrusted: each event row carries a SHA-256 of its JSON and
the header (global budget, data fingerprint, key id) a SHA-256 of its fields
that is also the genesis of the hash chain over the charges; a row that fails
a check, or does not decode through the whitelist, makes the ledger refuse to
operate (:class:`LedgerCorruptError`) rather than under-count.

A ledger is bound to the *data* it protects, not to a name: its header holds a
keyed fingerprint of the rows the workload loads (:mod:`tunedp.ledger.binding`
computes it; this module only stores, compares and keeps the key), and a
search verifies the data it is about to read against it before charging
(:meth:`PrivacyLedger.verify_data`). The HMAC key lives in a mode-0600 file
beside the ledger (``<stem>.<key id>.key``): trusted driver state, never shown.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import sqlite3
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dp_accounting import dp_event

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.remaining import remaining_epsilon
from tunedp.accounting.serialization import EventDecodeError, event_from_json, event_to_json
from tunedp.errors import (
    BudgetExceededError,
    DataMismatchError,
    LedgerCorruptError,
    LedgerError,
    LedgerMissingError,
    UnboundLedgerError,
)
from tunedp.workloads.contract import check_delta_range

if TYPE_CHECKING:
    from tunedp.ledger._records import CurveShortfall, Refusal

__all__ = [
    "BudgetExceededError",
    "Charge",
    "DataMismatchError",
    "Fingerprinter",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerMissingError",
    "PrivacyLedger",
    "default_ledger_path",
    "key_path",
]

SCHEMA_VERSION = "2"
LEGACY_SCHEMA_VERSION = "1"  # before data fingerprints: refused until `tunedp budget bind`
UNBOUND = ""  # fingerprint and key id of a ledger no workload's data is bound to yet
KEY_BYTES = 32

Fingerprinter = Callable[[bytes], str]
"""Computes the keyed fingerprint of the protected data under a ledger's key."""
STATUSES = ("charged", "running", "completed", "failed", "interrupted")
_DATASET_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
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


def default_ledger_path(dataset: str) -> Path:
    """``$TUNEDP_HOME/ledgers/<dataset>.sqlite``, else the per-user data dir (never the current directory).

    The per-user dir is ``$XDG_DATA_HOME/tunedp`` (when absolute) or
    ``~/.local/share/tunedp``: a budget must not reset because a search was
    started from another folder. ``$TUNEDP_LEDGER_DIR`` (the old per-folder
    override) is refused rather than ignored, so that nobody charges a ledger
    other than the one they think.
    """
    _check_dataset_name(dataset)
    if os.environ.get("TUNEDP_LEDGER_DIR"):
        raise LedgerError(
            "TUNEDP_LEDGER_DIR is no longer read; unset it and use TUNEDP_HOME (ledgers live in "
            "$TUNEDP_HOME/ledgers) or --ledger PATH"
        )
    return tunedp_home() / "ledgers" / f"{dataset}.sqlite"


def tunedp_home() -> Path:
    """``$TUNEDP_HOME``, else ``$XDG_DATA_HOME/tunedp``, else ``~/.local/share/tunedp`` (absolute)."""
    home = os.environ.get("TUNEDP_HOME")
    if home:
        return Path(home).expanduser().absolute()
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore a relative value
        return Path(xdg) / "tunedp"
    return Path.home() / ".local" / "share" / "tunedp"


def key_path(ledger_path: Path, key_id: str) -> Path:
    """The key file of a ledger: beside it, named by the key id so two inits never share one."""
    return ledger_path.with_name(f"{ledger_path.stem}.{key_id}.key")


def _key_id(key: bytes) -> str:
    # A one-way label of the key (SHA-256 is preimage resistant): shows which
    # key file belongs to the ledger without revealing the key.
    return hashlib.sha256(b"tunedp-ledger-key|" + key).hexdigest()[:16]


def _write_key(ledger_path: Path, key: bytes) -> Path:
    """Create the key file with mode 0600 from the start (no window where it is readable by others)."""
    path = key_path(ledger_path, _key_id(key))
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return path


def _read_key(ledger_path: Path, key_id: str) -> bytes:
    path = key_path(ledger_path, key_id)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise LedgerError(
            f"ledger {ledger_path}: its key file {path} is missing; restore it from a backup "
            "(without it the ledger cannot verify the data it protects)"
        ) from None
    if stat.S_IMODE(mode) & 0o077:
        raise LedgerError(f"ledger {ledger_path}: key file {path} is readable by others; run `chmod 600 {path}`")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES or _key_id(key) != key_id:
        raise LedgerCorruptError(f"ledger {ledger_path}: key file {path} does not hold the ledger's key; refusing")
    return key


def _check_dataset_name(dataset: str) -> None:
    if not _DATASET_NAME.match(dataset):
        raise LedgerError(f"--dataset: {dataset!r} is not a valid dataset name; use letters, digits, '_', '-', '.'")


def _now() -> str:
    """Today, the UTC day: the only time a ledger records.

    A finer time would publish durations: a charge's time and the search's
    end (MLflow, the status update) together give how long the search ran,
    which grows with its secret trial count K.
    """
    return datetime.now(UTC).date().isoformat()


def _day(moment: str) -> str:
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


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _meta_digest(dataset: str, epsilon: str, delta: str, fingerprint: str, key_id: str) -> str:
    """Checksum of the header and genesis of the charge chain: covers the data binding too."""
    return _sha256(f"tunedp-ledger|{SCHEMA_VERSION}|{dataset}|{epsilon}|{delta}|{fingerprint}|{key_id}")


def _legacy_meta_digest(dataset: str, epsilon: str, delta: str) -> str:
    return _sha256(f"tunedp-ledger|{LEGACY_SCHEMA_VERSION}|{dataset}|{epsilon}|{delta}")


@dataclass(frozen=True, kw_only=True)
class _Header:
    version: str
    dataset: str
    epsilon: str
    delta: str
    fingerprint: str
    key_id: str


class PrivacyLedger:
    """The global privacy budget of one protected dataset, persisted in sqlite."""

    def __init__(
        self,
        path: Path,
        *,
        dataset: str,
        epsilon: float,
        delta: float,
        fingerprint: str = UNBOUND,
        key_id: str = UNBOUND,
    ) -> None:
        self.path = path
        self.dataset = dataset
        self.epsilon = epsilon
        self.delta = delta
        self.fingerprint = fingerprint
        self.key_id = key_id

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(
        cls,
        path: Path | str,
        *,
        dataset: str,
        epsilon: float,
        delta: float,
        fingerprint_of: Fingerprinter | None = None,
    ) -> PrivacyLedger:
        """Create a new ledger file; refuse to overwrite an existing one (budgets only shrink).

        ``fingerprint_of`` binds the ledger to its data (see
        :func:`tunedp.ledger.binding.create_ledger`): a fresh random key is drawn,
        written to the key file, and the data's fingerprint under it stored in
        the header. Without it the ledger is *unbound*: it keeps its budget but
        no search can charge it until ``tunedp budget bind``.
        """
        path = Path(path)
        _check_dataset_name(dataset)
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise LedgerError(f"--epsilon: {epsilon} must be a finite number > 0")
        check_delta_range(delta, field="--delta", error=LedgerError)
        if path.exists():
            raise LedgerError(f"ledger {path} already exists; a global budget cannot be reset")
        _check_writable_folder(path.parent)  # before the data is loaded to fingerprint it
        key = secrets.token_bytes(KEY_BYTES)
        fingerprint = fingerprint_of(key) if fingerprint_of is not None else UNBOUND
        key_id = _key_id(key) if fingerprint_of is not None else UNBOUND
        path.parent.mkdir(parents=True, exist_ok=True)
        eps_text, delta_text = repr(float(epsilon)), repr(float(delta))
        digest = _meta_digest(dataset, eps_text, delta_text, fingerprint, key_id)
        # Write to a temporary file and rename, so a crash never leaves a
        # half-initialised ledger that a later `create` would refuse.
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        connection = sqlite3.connect(temporary)
        try:
            connection.executescript(_SCHEMA)
            connection.executemany(
                "INSERT INTO ledger_meta(key, value) VALUES (?, ?)",
                [
                    ("schema_version", SCHEMA_VERSION),
                    ("dataset", dataset),
                    ("epsilon", eps_text),
                    ("delta", delta_text),
                    ("fingerprint", fingerprint),
                    ("key_id", key_id),
                    ("created_at", _now()),
                    ("meta_sha256", digest),
                    # Head of the hash chain over the charges; starts at the header digest.
                    ("head_sha256", digest),
                ],
            )
            connection.commit()
        finally:
            connection.close()
        written_key = _write_key(path, key) if fingerprint_of is not None else None
        try:
            os.link(temporary, path)  # atomic and fails if `path` appeared meanwhile
        except FileExistsError:
            if written_key is not None:
                written_key.unlink(missing_ok=True)
            raise LedgerError(f"ledger {path} already exists; a global budget cannot be reset") from None
        finally:
            temporary.unlink(missing_ok=True)
        return cls(
            path, dataset=dataset, epsilon=float(epsilon), delta=float(delta), fingerprint=fingerprint, key_id=key_id
        )

    @classmethod
    def open(cls, path: Path | str, *, dataset: str | None = None) -> PrivacyLedger:
        """Open an existing ledger, verifying its header (and its dataset if given)."""
        path = Path(path)
        if not path.is_file():
            name = dataset or path.stem
            raise LedgerMissingError(
                f"no ledger at {path}; create it with `tunedp budget init --dataset {name} --epsilon E --delta D`"
            )
        with _connect(path) as connection:
            header = _read_meta(connection, path)
        ledger = cls._of(path, header)
        if dataset is not None and ledger.dataset != dataset:
            raise LedgerError(
                f"--ledger: ledger {path} belongs to dataset {ledger.dataset!r}, not {dataset!r}; "
                f"use the ledger of {dataset!r}"
            )
        return ledger

    @classmethod
    def _of(cls, path: Path, header: _Header) -> PrivacyLedger:
        return cls(
            path,
            dataset=header.dataset,
            epsilon=float(header.epsilon),
            delta=float(header.delta),
            fingerprint=header.fingerprint,
            key_id=header.key_id,
        )

    # ------------------------------------------------------------------ the data binding

    @property
    def bound(self) -> bool:
        """Whether the ledger holds a fingerprint of its data (else no search may charge it)."""
        return self.fingerprint != UNBOUND

    def protects_rows(self, fingerprint_as: Callable[[bytes, str], str]) -> bool:
        """Whether this ledger is bound to the rows ``fingerprint_as(key, dataset)`` fingerprints.

        For ``budget init``'s duplicate check: the same rows under a new
        dataset name would get a fresh budget. The key stays in this module;
        the caller passes the computation, as :meth:`verify_data` does.
        """
        try:
            header, key = self._bound_key()
        except UnboundLedgerError:
            return False
        return hmac.compare_digest(fingerprint_as(key, header.dataset), header.fingerprint)

    def verify_data(self, fingerprint_of: Fingerprinter) -> None:
        """Refuse (one line) unless the data ``fingerprint_of`` reads is the data this ledger protects.

        Called before every charge of a search. The header is re-read (and
        its checksum checked) so the comparison is against the file, not
        against what this object remembered.
        """
        header, key = self._bound_key()
        if not hmac.compare_digest(fingerprint_of(key), header.fingerprint):
            raise DataMismatchError(
                f"data: the rows this search would read are not the data ledger {self.path} protects "
                f"(fingerprint mismatch); nothing charged. Restore the original data (check TUNEDP_*_DIR "
                "variables); different data needs its own workload and ledger"
            )

    def derived_key(self, purpose: str) -> bytes:
        """A secret key for ``purpose``, derived from the ledger's key (HMAC-SHA256); the key itself stays here.

        For driver state that must not be edited unnoticed between two runs
        (a resumed search's K and finished trials, :mod:`tunedp.run.resume`): it
        is authenticated under a key that lives beside the ledger, not beside
        the state. Distinct purposes get independent keys.
        """
        _, key = self._bound_key()
        return hmac.new(key, f"tunedp-derived-key|{purpose}".encode(), hashlib.sha256).digest()

    def _bound_key(self) -> tuple[_Header, bytes]:
        """The header as stored (checksum checked) and the ledger's key; an unbound ledger is refused in one line."""
        with _connect(self.path) as connection:
            header = _read_meta(connection, self.path)
        if header.fingerprint == UNBOUND or header.key_id == UNBOUND:
            raise UnboundLedgerError(str(self.path), declared_in_config=False)
        return header, _read_key(self.path, header.key_id)

    def bind(self, fingerprint_of: Fingerprinter) -> None:
        """Bind an unbound (or schema-1) ledger to the data ``fingerprint_of`` reads, keeping every charge.

        The old header and chain are verified first; then, in one
        transaction, the header gains the fingerprint and key id, its
        checksum changes, and the chain of charges is re-linked from the new
        genesis (so the binding is covered by the chain, like the budget).
        Refuses a ledger that is already bound: re-pointing a budget at other
        data is exactly the alias this binding exists to prevent.
        """
        if self.bound:
            raise LedgerError(f"ledger {self.path} is already bound to its data ({self.fingerprint[:16]}…)")
        key = secrets.token_bytes(KEY_BYTES)
        fingerprint, key_id = fingerprint_of(key), _key_id(key)
        written_key = _write_key(self.path, key)
        try:
            with _connect(self.path) as connection:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    header = _read_meta(connection, self.path, allow_legacy=True)
                    if header.fingerprint != UNBOUND:
                        raise LedgerError(f"ledger {self.path} is already bound to its data")
                    charges, _ = _read_chain(connection, self.path)
                    digest = _meta_digest(header.dataset, header.epsilon, header.delta, fingerprint, key_id)
                    link = digest
                    for charge_ in charges:
                        event_digest = connection.execute(
                            "SELECT event_sha256 FROM charges WHERE search_id = ?", (charge_.search_id,)
                        ).fetchone()[0]
                        link = _chain_link(link, charge_.search_id, event_digest)
                        connection.execute(
                            "UPDATE charges SET chain_sha256 = ? WHERE search_id = ?", (link, charge_.search_id)
                        )
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
                    connection.execute("COMMIT")
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
        except BaseException:
            written_key.unlink(missing_ok=True)
            raise
        self.fingerprint, self.key_id = fingerprint, key_id

    @classmethod
    def open_for_binding(cls, path: Path | str, *, dataset: str | None = None) -> PrivacyLedger:
        """Open a ledger that may predate fingerprints (schema 1), only to :meth:`bind` it."""
        path = Path(path)
        if not path.is_file():
            raise LedgerMissingError(f"no ledger at {path}; nothing to bind")
        with _connect(path) as connection:
            header = _read_meta(connection, path, allow_legacy=True)
        ledger = cls._of(path, header)
        if dataset is not None and ledger.dataset != dataset:
            raise LedgerError(f"ledger {path} belongs to dataset {ledger.dataset!r}, not {dataset!r}")
        return ledger

    # ------------------------------------------------------------------ reading

    def charges(self) -> list[Charge]:
        """Every charge, verified; a tampered row raises :class:`LedgerCorruptError`."""
        with _connect(self.path) as connection:
            _read_meta(connection, self.path)
            return _read_charges(connection, self.path)

    def spent_epsilon(self) -> float:
        """RDP ε at the ledger's δ of the composition of everything charged so far."""
        return self._composed_epsilon([c.event for c in self.charges()])

    def remaining(self) -> float:
        """Global ε minus spent ε.

        ε does not add up under RDP composition; this figure is for display.
        Admission never uses it: :meth:`charge` recomposes every event.
        """
        return remaining_epsilon(self.epsilon, self.spent_epsilon())

    def admissible(self, event: dp_event.DpEvent) -> tuple[bool, float]:
        """Whether ``event`` fits now, and the spent ε it would leave (dry run of charge)."""
        events = [c.event for c in self.charges()]
        after = self._composed_epsilon([*events, event])
        return after <= self.epsilon, after

    def refusals(self) -> list[Refusal]:
        """None are kept: a refused charge leaves a sqlite ledger byte-identical (one user, one file)."""
        self.charges()  # still verify the file, as every read does
        return []

    def verify(self) -> list[CurveShortfall]:
        """Every row re-read, checksummed, chained and decoded; a sqlite ledger stores no curves to under-report.

        Admission here always recomposes the stored events, so there is no
        second figure that could disagree with them.
        """
        self.charges()
        return []

    # ------------------------------------------------------------------ writing

    def charge(
        self,
        event: dp_event.DpEvent,
        *,
        config_hash: str,
        mode: str,
        label: str = "",
        search_id: str | None = None,
    ) -> Charge:
        """Admit and record a search atomically, or raise :class:`BudgetExceededError`.

        Called before the search's first trial reads data. The whole
        read-compose-insert runs under ``BEGIN IMMEDIATE``: a concurrent
        charger waits for our commit and then sees our row.
        """
        event_json = json.dumps(event_to_json(event), sort_keys=True, separators=(",", ":"))
        own_epsilon = rdp_epsilon(event, self.delta)
        search_id = search_id or uuid.uuid4().hex
        with _connect(self.path) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                _read_meta(connection, self.path)
                if connection.execute("SELECT 1 FROM charges WHERE search_id = ?", (search_id,)).fetchone():
                    raise LedgerError(f"search id {search_id!r} is already charged in {self.path}; use a new id")
                charges, head = _read_chain(connection, self.path)
                existing = [c.event for c in charges]
                after = self._composed_epsilon([*existing, event])
                if not after <= self.epsilon:  # written so that a NaN ε is refused, not admitted
                    before = self._composed_epsilon(existing)
                    raise BudgetExceededError(
                        f"budget: dataset {self.dataset!r} has spent epsilon={before:.4g} of {self.epsilon:g}; "
                        f"this search would bring it to {after:.4g}; lower --budget or raise the global budget"
                    )
                now = _now()
                event_digest = _sha256(event_json)
                link = _chain_link(head, search_id, event_digest)
                connection.execute(
                    "INSERT INTO charges(search_id, created_at, config_hash, mode, label, epsilon, "
                    "event_json, event_sha256, chain_sha256, status, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        search_id,
                        now,
                        config_hash,
                        mode,
                        label,
                        own_epsilon,
                        event_json,
                        event_digest,
                        link,
                        "charged",
                        now,
                    ),
                )
                connection.execute("UPDATE ledger_meta SET value = ? WHERE key = 'head_sha256'", (link,))
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return Charge(
            search_id=search_id,
            created_at=now,
            config_hash=config_hash,
            mode=mode,
            label=label,
            epsilon=own_epsilon,
            status="charged",
            event=event,
        )

    def set_status(self, search_id: str, status: str, *, at: str | None = None) -> None:
        """Record a search's progress; never changes what was charged.

        ``at`` is the moment of the change (default: now); only its UTC day is
        written, like every time the ledger records.
        """
        if status not in STATUSES:
            raise ValueError(f"Expected status={status!r} in {STATUSES}")
        day = _day(at) if at is not None else _now()
        with _connect(self.path) as connection:
            connection.execute("BEGIN IMMEDIATE")
            cursor = connection.execute(
                "UPDATE charges SET status = ?, updated_at = ? WHERE search_id = ?",
                (status, day, search_id),
            )
            connection.execute("COMMIT")
        if cursor.rowcount != 1:
            raise LedgerError(f"no charge with search id {search_id!r} in {self.path}")

    # ------------------------------------------------------------------ helpers

    def _composed_epsilon(self, events: list[dp_event.DpEvent]) -> float:
        if not events:
            return 0.0
        return rdp_epsilon(dp_event.ComposedDpEvent(events), self.delta)


def _check_writable_folder(folder: Path) -> None:
    """Refuse, in one line naming the folder and the cause, a ledger folder that cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tunedp-write-check-"):
            pass
    except OSError as error:
        raise LedgerError(
            f"ledger folder {folder}: cannot write there ({error.strerror or error}); "
            "set TUNEDP_HOME (or --ledger) to a writable folder"
        ) from None


#: sqlite's words for a file or folder it may not write (a read-only file system, permissions).
_NOT_WRITABLE = ("readonly", "read-only", "unable to open database file")


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
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


def _read_meta(connection: sqlite3.Connection, path: Path, *, allow_legacy: bool = False) -> _Header:
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
            or digest != _meta_digest(dataset, epsilon, delta, stored_fingerprint, stored_key_id)
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
    return _Header(
        version=version, dataset=dataset, epsilon=epsilon, delta=delta, fingerprint=fingerprint, key_id=key_id
    )


def _stored_day(stored: object) -> str:
    """A stored time as its day; a ledger written before days-only stored seconds (read, never shown)."""
    text = str(stored)
    try:
        return _day(text)
    except ValueError:
        return text[:10]


def _chain_link(previous: str, search_id: str, event_digest: str) -> str:
    """One link of the hash chain: deleting, reordering or splicing charges breaks it."""
    return _sha256(f"tunedp-charge|{previous}|{search_id}|{event_digest}")


def _read_charges(connection: sqlite3.Connection, path: Path) -> list[Charge]:
    return _read_chain(connection, path)[0]


def _read_chain(connection: sqlite3.Connection, path: Path) -> tuple[list[Charge], str]:
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
        if not isinstance(event_json, str) or _sha256(event_json) != digest:
            raise LedgerCorruptError(
                f"ledger {path}: charge row {row_id} was edited outside tunedp (checksum mismatch); refusing to use it"
            )
        try:
            event = event_from_json(json.loads(event_json))
        except (EventDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise LedgerCorruptError(f"ledger {path}: charge row {row_id} is invalid ({error})") from None
        link = _chain_link(link, str(search_id), digest)
        if chained != link:
            raise LedgerCorruptError(
                f"ledger {path}: charge row {row_id} breaks the chain of charges (a charge was removed, "
                "reordered or rewritten outside tunedp); refusing to use it"
            )
        charges.append(
            Charge(
                search_id=search_id,
                created_at=_stored_day(created),
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
