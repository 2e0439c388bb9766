"""The team ledger: one PostgreSQL database holds the budgets of many datasets, shared by a team.

The client here is deliberately thin. Every rule that protects the budget is
the server's (:mod:`tunedp.ledger.postgres_schema`): roles and grants decide who may
charge which dataset; one SECURITY DEFINER function appends a charge and
checks the cap under a row lock in the same transaction; analysts hold no
INSERT, UPDATE or DELETE. What this class adds is what only a client can do:
compute a charge's RDP curve from its DpEvent (dp_accounting), prove the
data it reads matches the dataset's fingerprint before charging, recompose
the stored events to display the spend (and refuse a charge the events say
does not fit even if the stored curves say it does), and turn every server
error into one line.

Each operation opens its own connection (closed after), so a server restart
between two operations costs nothing but a reconnect
(:mod:`tunedp.ledger.postgres_session`).

Fingerprints (see also :mod:`tunedp.ledger.binding`). The owner binds a dataset:
a fresh random HMAC key is drawn on the owner's machine, the owner's rows are
fingerprinted under it, and both are stored on the server. Who holds the key:
the server, readable only through ``tunedp.data_key`` by the owner and by
analysts granted that dataset — never by auditors or other analysts. Before
each charge an analyst's driver fetches the key, fingerprints the rows it is
about to read, compares, and passes its fingerprint to the charge function,
which refuses (and logs the refusal) unless it equals the bound one. What an
analyst learns: the key lets her test whether a dataset she holds equals the
bound one — nothing beyond what she reads anyway, since she is granted those
rows. An auditor sees the fingerprint but not the key, so it reveals nothing
about the rows (the keyed hash is not a membership oracle without its key).
The check protects honest drivers against charging one dataset's budget for
another's rows; a modified client could pass the stored fingerprint without
the rows, which is why the rows' owner grants analysts, not tunedp.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import Any

from dp_accounting import dp_event

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.serialization import EventDecodeError, event_from_json, event_to_json
from tunedp.errors import DataMismatchError, LedgerCorruptError, LedgerError, LedgerMissingError, one_line
from tunedp.ledger.admission import BudgetArithmetic, check_new_budget, over_budget
from tunedp.ledger.curves import epsilon_from_curve, rdp_curve, short_orders
from tunedp.ledger.keys import derive_key, key_id_of, new_key
from tunedp.ledger.location import LedgerUrl
from tunedp.ledger.postgres_session import ServerAway, call, check_settings, session
from tunedp.ledger.records import STATUSES, UNBOUND, Charge, CurveShortfall, Fingerprinter, Refusal, day_of

__all__ = ["PostgresLedger"]

log = logging.getLogger(__name__)
#: How long a status update (bookkeeping only) keeps retrying a server that went away.
STATUS_RETRY_S = 60.0


class PostgresLedger(BudgetArithmetic):
    """One dataset's budget on a shared PostgreSQL ledger; the same interface as the sqlite ledger."""

    def __init__(
        self,
        url: LedgerUrl,
        *,
        dataset: str,
        epsilon: float,
        delta: float,
        fingerprint: str = UNBOUND,
        key_id: str = UNBOUND,
    ) -> None:
        self.url = url
        self.dataset = dataset
        self.epsilon = epsilon
        self.delta = delta
        self.fingerprint = fingerprint
        self.key_id = key_id
        self._proven: str | None = None  # the fingerprint this driver computed of the rows it reads

    @property
    def path(self) -> str:
        """Where the ledger lives, as shown (no password): reports and the resume state keep it."""
        return self.url.shown

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(
        cls,
        url: LedgerUrl,
        *,
        dataset: str,
        epsilon: float,
        delta: float,
        fingerprint_of: Fingerprinter | None = None,
    ) -> PostgresLedger:
        """Create a dataset's budget (the owner's role only); refuses one that exists: budgets are never reset."""
        check_new_budget(dataset, epsilon, delta)
        key = new_key() if fingerprint_of is not None else None
        fingerprint = fingerprint_of(key) if fingerprint_of is not None and key is not None else UNBOUND
        key_id = key_id_of(key) if key is not None else UNBOUND
        with session(url) as connection:
            check_settings(connection, url)
            call(
                url,
                lambda: connection.execute(
                    "SELECT tunedp.create_budget(%s, %s, %s, %s, %s, %s)",
                    (dataset, float(epsilon), float(delta), fingerprint, key, key_id),
                ),
            )
        return cls(
            url, dataset=dataset, epsilon=float(epsilon), delta=float(delta), fingerprint=fingerprint, key_id=key_id
        )

    @classmethod
    def open(cls, url: LedgerUrl, *, dataset: str | None = None) -> PostgresLedger:
        """Open ``dataset``'s budget; a dataset the role may not read is reported like a missing one."""
        if dataset is None:
            raise LedgerError(f"--dataset: a PostgreSQL ledger ({url.shown}) holds many datasets; name one")
        with session(url) as connection:
            check_settings(connection, url)
            row = call(
                url,
                lambda: connection.execute(
                    "SELECT epsilon, delta, fingerprint, key_id FROM tunedp.budgets WHERE dataset = %s", (dataset,)
                ).fetchone(),
            )
        if row is None:
            raise LedgerMissingError(
                f"no budget for dataset {dataset!r} on {url.shown} (or your role has no grant on it); the owner "
                f"creates it with `tunedp budget init --ledger {url.shown} --dataset {dataset} --epsilon E --delta D` "
                f"and grants it with `tunedp ledger grant`"
            )
        epsilon, delta, fingerprint, key_id = row
        return cls(
            url, dataset=dataset, epsilon=float(epsilon), delta=float(delta), fingerprint=fingerprint, key_id=key_id
        )

    # ------------------------------------------------------------------ the data binding

    @property
    def bound(self) -> bool:
        return self.fingerprint != UNBOUND

    def verify_data(self, fingerprint_of: Fingerprinter) -> None:
        """Refuse unless the rows ``fingerprint_of`` reads are the dataset's; the charge then carries the proof."""
        rows = self._query(
            "SELECT fingerprint, tunedp.data_key(dataset) FROM tunedp.budgets WHERE dataset = %s", (self.dataset,)
        )
        if not rows:
            raise LedgerMissingError(f"no budget for dataset {self.dataset!r} on {self.url.shown}")
        fingerprint, key = rows[0]
        if not fingerprint or key is None:
            raise self._unbound()
        computed = fingerprint_of(bytes(key))
        if not hmac.compare_digest(computed, fingerprint):
            raise DataMismatchError(
                f"data: the rows this search would read are not the data the budget of {self.dataset!r} on "
                f"{self.url.shown} protects (fingerprint mismatch); nothing charged"
            )
        self._proven = computed

    def derived_key(self, purpose: str) -> bytes:
        """A secret key for ``purpose`` derived from the dataset's key (as the sqlite ledger derives its own).

        Used to authenticate a search's secret resume state; the dataset key
        comes from the server (``tunedp.data_key``: the dataset's analysts and
        its owner only).
        """
        rows = self._query("SELECT tunedp.data_key(%s)", (self.dataset,))
        if not rows or rows[0][0] is None:
            raise self._unbound()
        return derive_key(bytes(rows[0][0]), purpose)

    def _unbound(self) -> LedgerError:
        return LedgerError(
            f"dataset {self.dataset!r} on {self.url.shown} is not bound to its data yet; its owner binds it with "
            f"`tunedp budget bind --ledger {self.url.shown} --dataset {self.dataset}`"
        )

    def _query(self, sql: str, parameters: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """One statement in a session of its own, the server's errors as one line; its rows (none for a call)."""
        with session(self.url) as connection:
            cursor = call(self.url, lambda: connection.execute(sql, parameters))
            return cursor.fetchall() if cursor.description is not None else []

    def bind(self, fingerprint_of: Fingerprinter) -> None:
        """Bind an unbound budget to the rows ``fingerprint_of`` reads (the owner's role only; never re-bound)."""
        if self.bound:
            raise LedgerError(f"dataset {self.dataset!r} on {self.url.shown} is already bound to its data")
        key = new_key()
        fingerprint, key_id = fingerprint_of(key), key_id_of(key)
        self._query("SELECT tunedp.bind_dataset(%s, %s, %s, %s)", (self.dataset, fingerprint, key, key_id))
        self.fingerprint, self.key_id = fingerprint, key_id

    # ------------------------------------------------------------------ reading

    def charges(self) -> list[Charge]:
        """Every charge of the dataset, oldest first, its event decoded through the whitelist."""
        return [charge for charge, _ in self._rows()]

    def _rows(self) -> list[tuple[Charge, tuple[float, ...]]]:
        rows = self._query(
            "SELECT id, search_id, created_on, config_hash, mode, label, epsilon, status, event_json, "
            "curve, charged_by FROM tunedp.charges WHERE dataset = %s ORDER BY id",
            (self.dataset,),
        )
        decoded = []
        for row_id, search_id, created, config_hash, mode, label, epsilon, status, event_json, curve, role in rows:
            try:
                event = event_from_json(json.loads(event_json))
            except (EventDecodeError, json.JSONDecodeError, RecursionError, TypeError) as error:
                raise LedgerCorruptError(
                    f"ledger {self.url.shown}: charge row {row_id} of {self.dataset!r} is invalid "
                    f"({one_line(error, 120)})"
                ) from None
            charge = Charge(
                search_id=search_id,
                created_at=created.isoformat(),
                config_hash=config_hash,
                mode=mode,
                label=label,
                epsilon=float(epsilon),
                status=status,
                event=event,
                charged_by=role,
            )
            decoded.append((charge, tuple(float(v) for v in curve)))
        return decoded

    def refusals(self) -> list[Refusal]:
        """The refusal log of the dataset: who tried to charge what, the day, and why it was refused."""
        rows = self._query(
            "SELECT search_id, refused_by, refused_on, reason, mode, epsilon_after FROM tunedp.refusals "
            "WHERE dataset = %s ORDER BY id",
            (self.dataset,),
        )
        return [
            Refusal(search_id=s, refused_by=r, day=d.isoformat(), reason=why, mode=m, epsilon_after=e)
            for s, r, d, why, m, e in rows
        ]

    def verify(self) -> list[CurveShortfall]:
        """Recompute every stored curve from its stored event; the charges whose curve is short, and who made them."""
        short = []
        for charge, stored in self._rows():
            recomputed = rdp_curve(charge.event)
            orders = short_orders(stored, recomputed)
            if orders:
                try:
                    stored_epsilon = epsilon_from_curve(stored, self.delta)
                except ValueError:
                    stored_epsilon = float("nan")
                short.append(
                    CurveShortfall(
                        search_id=charge.search_id,
                        charged_by=charge.charged_by,
                        day=charge.created_at,
                        orders=tuple(orders),
                        stored_epsilon=stored_epsilon,
                        recomputed_epsilon=rdp_epsilon(charge.event, self.delta),
                    )
                )
        return short

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
        """Charge through the server's function; raises :class:`BudgetExceededError` (nothing charged) if it refuses.

        The stored events are recomposed here too and the server is told
        whether they fit: that can only make it refuse (a stored curve that
        was under-reported must not admit what the events do not). The server
        decides by the stored curves, under its row lock, and logs a refusal.
        """
        event_json = json.dumps(event_to_json(event), sort_keys=True, separators=(",", ":"))
        curve = list(rdp_curve(event))
        search_id = search_id or uuid.uuid4().hex
        events_fit, _ = self.admissible(event)
        with session(self.url) as connection:
            row = call(
                self.url,
                lambda: connection.execute(
                    "SELECT outcome, spent_before, spent_after, own_epsilon, charged_on FROM tunedp.charge("
                    "%s, %s, %s, %s, %s, %s, %s, %s::float8[], %s)",
                    (self.dataset, search_id, self._proven, config_hash, mode, label, event_json, curve, events_fit),
                ).fetchone(),
            )
        assert row is not None
        outcome, before, after_server, alone, day = row
        if outcome == "data_mismatch":
            raise DataMismatchError(
                f"data: the server refused the charge: the rows this driver read were not proven to be the data "
                f"{self.dataset!r} is bound to (tunedp fingerprints them before charging); nothing charged"
            )
        if outcome == "over_budget":
            raise over_budget(self.dataset, self.epsilon, before, after_server)
        return Charge(
            search_id=search_id,
            created_at=day.isoformat(),
            config_hash=config_hash,
            mode=mode,
            label=label,
            epsilon=float(alone),
            status="charged",
            event=event,
        )

    def set_status(self, search_id: str, status: str, *, at: str | None = None) -> None:
        """Record a search's progress (the server stores the UTC day); never changes what was charged.

        ``at`` is accepted for the sqlite ledger's interface; the server writes
        its own day. Bookkeeping only, so a server that is away (restarting) is
        retried for a while, then the status is left as it was, with a warning:
        the charge it describes is committed either way.
        """
        if status not in STATUSES:
            raise ValueError(f"Expected status={status!r} in {STATUSES}")
        _ = day_of(at) if at is not None else None  # same validation as the sqlite ledger
        deadline = time.monotonic() + STATUS_RETRY_S
        while True:
            try:
                with session(self.url) as connection:
                    call(
                        self.url,
                        lambda: connection.execute("SELECT tunedp.set_status(%s, %s)", (search_id, status)),
                    )
                return
            except ServerAway as away:
                if time.monotonic() > deadline:
                    log.warning(
                        "ledger %s: status %r of search %s not recorded (%s)",
                        self.url.shown,
                        status,
                        search_id[:12],
                        away,
                    )
                    return
                time.sleep(1.0)
