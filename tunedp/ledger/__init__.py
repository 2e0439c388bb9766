"""The budget store: every protected dataset's global (ε, δ) and every charge against it, behind one ``Ledger``.

This stage decides whether a search may run: it charges the search's DpEvent
before the first trial reads data, atomically, or refuses with nothing
charged. Two backends implement the same :class:`Ledger` protocol and both
pass ``tunedp.testing.LedgerContract``: a sqlite file per dataset (the
embedded default) and a shared PostgreSQL ledger (a team). Callers (driver,
CLI, resume) hold a :class:`Ledger` and never ask which; a third backend is
one module implementing the protocol plus a branch in :mod:`.store`.

``open_ledger(location, dataset=...)`` takes either a file path or a
``postgresql://`` URL; ``ledger_location`` picks what a command uses
(``--ledger``, else ``$TUNEDP_LEDGER_URL``, else the per-user file).

May import: ``tunedp.accounting`` (events, ε, serialisation),
``tunedp.errors``, ``tunedp.workloads`` (the δ range check of
``workloads.contract``; :mod:`.binding` resolves and loads the workload whose
rows it fingerprints). Nothing above it (planning, run, release, observe,
cli). This package imports neither torch nor Ray (binding loads a workload's
data only when asked to fingerprint it); psycopg only when a URL is used.

Modules (a leading underscore: one backend's internals):

* :mod:`.store` — the ``Ledger`` protocol; opening or creating a ledger by its location.
* :mod:`.location` — where a ledger lives: a file or a PostgreSQL URL (``LedgerUrl``), and which one a command uses.
* :mod:`.records` — what a ledger records and shows: ``Charge``, statuses, UTC days, refusals, curve shortfalls.
* :mod:`.admission` — what both backends compute alike: a new budget's checks, composed, remaining and admissible ε.
* :mod:`.keys` — the data key: drawing it, its id, its mode-0600 file, keys derived from it.
* :mod:`.paths` — where sqlite ledgers live (``$TUNEDP_HOME/ledgers``), dataset names, writable folders.
* :mod:`.binding` — which ledger a search charges, and the keyed fingerprint of the rows it protects.
* :mod:`.sqlite` — ``PrivacyLedger``: the sqlite backend's transactions (create, bind, charge, status).
* :mod:`._sqlite_file` — the sqlite file's format: tables, header checksum, hash chain, verified reads.
* :mod:`.postgres` — ``PostgresLedger``: the PostgreSQL backend's client.
* :mod:`.postgres_session` — one session per operation, server errors as one line, the settings check.
* :mod:`.postgres_schema` — ``tunedp ledger setup``: roles, the schema's creation, who may call what.
* :mod:`._postgres_sql` — the PostgreSQL tables, functions and row-level policies, as SQL text.
* :mod:`.curves` — RDP curves at fixed orders and their ε, in Python and in SQL (what the server adds up).
* :mod:`.migrate` — ``tunedp budget migrate``: a sqlite ledger moved to PostgreSQL, history and binding included.
"""

from __future__ import annotations

from tunedp.ledger.location import LEDGER_URL_ENV, LedgerUrl, ledger_location, looks_like_url
from tunedp.ledger.records import CurveShortfall, Refusal
from tunedp.ledger.store import Ledger, create_ledger_at, open_ledger, parse_location

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
