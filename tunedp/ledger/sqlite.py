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

The file's format — tables, header checksum, hash chain over the charges,
and reading them back verified — is :mod:`tunedp.ledger._sqlite_file`; this
module holds the transactions that change it.

A ledger is bound to the *data* it protects, not to a name: its header holds a
keyed fingerprint of the rows the workload loads (:mod:`tunedp.ledger.binding`
computes it; this module only stores and compares it), and a search verifies
the data it is about to read against it before charging
(:meth:`PrivacyLedger.verify_data`). The HMAC key lives in a mode-0600 file
beside the ledger (:mod:`tunedp.ledger.keys`): trusted driver state, never shown.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import hmac
import json
import os
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dp_accounting import dp_event

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.serialization import event_to_json
from tunedp.errors import (
    BudgetExceededError,
    DataMismatchError,
    LedgerCorruptError,
    LedgerError,
    LedgerMissingError,
    UnboundLedgerError,
)
from tunedp.ledger._sqlite_file import (
    TABLES,
    Header,
    append_charge,
    connect,
    header_rows,
    read_chain,
    read_charges,
    read_meta,
    rebind,
)
from tunedp.ledger.admission import BudgetArithmetic, check_new_budget, over_budget
from tunedp.ledger.keys import derive_key, key_id_of, key_path, new_key, read_key, write_key
from tunedp.ledger.paths import check_writable_folder, default_ledger_path, tunedp_home
from tunedp.ledger.records import SEEDED_MARK, STATUSES, UNBOUND, Charge, Fingerprinter, day_of
from tunedp.ledger.records import today as _now

if TYPE_CHECKING:
    from tunedp.ledger.records import CurveShortfall, Refusal

# Besides the ledger, the names callers have always imported from here (their homes: records, paths, keys, errors).
__all__ = [
    "SEEDED_MARK",
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
    "tunedp_home",
]


class PrivacyLedger(BudgetArithmetic):
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
        check_new_budget(dataset, epsilon, delta)
        if path.exists():
            raise LedgerError(f"ledger {path} already exists; a global budget cannot be reset")
        check_writable_folder(path.parent)  # before the data is loaded to fingerprint it
        key = new_key()
        fingerprint = fingerprint_of(key) if fingerprint_of is not None else UNBOUND
        key_id = key_id_of(key) if fingerprint_of is not None else UNBOUND
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = header_rows(
            dataset=dataset,
            epsilon=repr(float(epsilon)),
            delta=repr(float(delta)),
            fingerprint=fingerprint,
            key_id=key_id,
            created_at=_now(),
        )
        # Write to a temporary file and rename, so a crash never leaves a
        # half-initialised ledger that a later `create` would refuse.
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        connection = sqlite3.connect(temporary)
        try:
            connection.executescript(TABLES)
            connection.executemany("INSERT INTO ledger_meta(key, value) VALUES (?, ?)", rows)
            connection.commit()
        finally:
            connection.close()
        written_key = write_key(path, key) if fingerprint_of is not None else None
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
        with connect(path) as connection:
            header = read_meta(connection, path)
        ledger = cls._of(path, header)
        if dataset is not None and ledger.dataset != dataset:
            raise LedgerError(
                f"--ledger: ledger {path} belongs to dataset {ledger.dataset!r}, not {dataset!r}; "
                f"use the ledger of {dataset!r}"
            )
        return ledger

    @classmethod
    def _of(cls, path: Path, header: Header) -> PrivacyLedger:
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
        return derive_key(key, purpose)

    def _bound_key(self) -> tuple[Header, bytes]:
        """The header as stored (checksum checked) and the ledger's key; an unbound ledger is refused in one line."""
        with connect(self.path) as connection:
            header = read_meta(connection, self.path)
        if header.fingerprint == UNBOUND or header.key_id == UNBOUND:
            raise UnboundLedgerError(str(self.path), declared_in_config=False)
        return header, read_key(self.path, header.key_id)

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
        key = new_key()
        fingerprint, key_id = fingerprint_of(key), key_id_of(key)
        written_key = write_key(self.path, key)
        try:
            with connect(self.path) as connection:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    header = read_meta(connection, self.path, allow_legacy=True)
                    if header.fingerprint != UNBOUND:
                        raise LedgerError(f"ledger {self.path} is already bound to its data")
                    charges, _ = read_chain(connection, self.path)
                    rebind(connection, header, charges, fingerprint=fingerprint, key_id=key_id)
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
        with connect(path) as connection:
            header = read_meta(connection, path, allow_legacy=True)
        ledger = cls._of(path, header)
        if dataset is not None and ledger.dataset != dataset:
            raise LedgerError(f"ledger {path} belongs to dataset {ledger.dataset!r}, not {dataset!r}")
        return ledger

    # ------------------------------------------------------------------ reading

    def charges(self) -> list[Charge]:
        """Every charge, verified; a tampered row raises :class:`LedgerCorruptError`."""
        with connect(self.path) as connection:
            read_meta(connection, self.path)
            return read_charges(connection, self.path)

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
        with connect(self.path) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                read_meta(connection, self.path)
                if connection.execute("SELECT 1 FROM charges WHERE search_id = ?", (search_id,)).fetchone():
                    raise LedgerError(f"search id {search_id!r} is already charged in {self.path}; use a new id")
                charges, head = read_chain(connection, self.path)
                existing = [c.event for c in charges]
                after = self._composed_epsilon([*existing, event])
                if not after <= self.epsilon:  # written so that a NaN ε is refused, not admitted
                    raise over_budget(self.dataset, self.epsilon, self._composed_epsilon(existing), after)
                now = _now()
                append_charge(
                    connection,
                    head,
                    search_id=search_id,
                    day=now,
                    config_hash=config_hash,
                    mode=mode,
                    label=label,
                    epsilon=own_epsilon,
                    event_json=event_json,
                )
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
        day = day_of(at) if at is not None else _now()
        with connect(self.path) as connection:
            connection.execute("BEGIN IMMEDIATE")
            cursor = connection.execute(
                "UPDATE charges SET status = ?, updated_at = ? WHERE search_id = ?",
                (status, day, search_id),
            )
            connection.execute("COMMIT")
        if cursor.rowcount != 1:
            raise LedgerError(f"no charge with search id {search_id!r} in {self.path}")
