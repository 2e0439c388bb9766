"""Charge latency of the two ledger backends: median and p99 over N charges (issue 25).

What is timed is one ``ledger.charge(...)`` call as the driver makes it: for
sqlite, the read-compose-insert under ``BEGIN IMMEDIATE`` (every stored event
recomposed); for PostgreSQL, a new connection, the client's recomposition of
the stored events, the curve of the new event, and the server's charge
function (grant check, row lock, curve sum, insert, commit). The ledger grows
as a real one does (every charge stays), so a charge's latency grows with the
number of charges before it; the median and p99 are over the whole run.

Both backends recompose *every stored event* with dp_accounting on each
charge (sqlite to admit, PostgreSQL to tell the server whether the events
fit). For Poisson-subsampled events that recomposition dominates — pricing
one 1000-step subsampled trial took ~20 ms here, ten of them 0.19 s — so with
200 such charges in the ledger a charge costs ~4 s on either backend. The
figures here therefore charge a cheap-to-price event (100 Gaussian releases, closed-form RDP), so
they measure the ledger itself: storage, locking, the server round trips.
``--subsampled`` charges the realistic event instead (use a smaller count).

Usage (the PostgreSQL part needs a server where the admin URL can create a database)::

    .venv/bin/python benchmarks/ledger_latency.py --charges 200 \
        --admin-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import psycopg
from dp_accounting import dp_event
from psycopg import sql

from tunedp.ledger import LedgerUrl, open_ledger
from tunedp.ledger.postgres import PostgresLedger
from tunedp.ledger.postgres_schema import Roles, setup
from tunedp.ledger.sqlite import PrivacyLedger

CHEAP = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(300.0), 100)
SUBSAMPLED = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(0.004, dp_event.GaussianDpEvent(30.0)), 1000)


def _time_charges(ledger: object, count: int, event: dp_event.DpEvent) -> list[float]:
    seconds = []
    for _ in range(count):
        start = time.perf_counter()
        ledger.charge(event, config_hash="bench", mode="random/best")  # type: ignore[attr-defined]
        seconds.append(time.perf_counter() - start)
    return seconds


def _summary(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]
    return f"| {name} | {len(seconds)} | {statistics.median(seconds) * 1000:.1f} | {p99 * 1000:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charges", type=int, default=200)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--subsampled", action="store_true", help="Charge a 1000-step Poisson-subsampled trial.")
    args = parser.parse_args()
    event = SUBSAMPLED if args.subsampled else CHEAP
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        ledger = PrivacyLedger.create(Path(folder) / "bench.sqlite", dataset="bench", epsilon=1e6, delta=1e-5)
        rows.append(_summary("sqlite (file, local disk)", _time_charges(ledger, args.charges, event)))
    run = secrets.token_hex(4)
    database, roles, login = f"tunedp_bench_{run}", Roles(f"b{run}_"), f"b{run}_u_analyst"
    base = args.admin_url.rsplit("/", 1)[0]
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        try:
            with psycopg.connect(f"{base}/{database}") as connection:
                setup(connection, roles, owner_login="postgres")
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
            owner = LedgerUrl.parse(f"{base}/{database}")
            PostgresLedger.create(owner, dataset="bench", epsilon=1e6, delta=1e-5)
            with owner.connect() as connection:
                connection.execute("SELECT tunedp.grant_dataset('bench', %s)", (login,))
            analyst_url = f"postgresql://{login}@{base.split('@', 1)[1]}/{database}"
            ledger_pg = open_ledger(analyst_url, dataset="bench")
            rows.append(
                _summary("PostgreSQL 15 (TCP 127.0.0.1, analyst role)", _time_charges(ledger_pg, args.charges, event))
            )
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            for role in (login, *roles.all()):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    print("| backend | charges | median (ms) | p99 (ms) |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
