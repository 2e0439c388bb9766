"""Both ledger backends pass one contract (``tunedp.testing.LedgerContract``): sqlite and PostgreSQL."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from postgres_fixtures import TeamLedger

from tunedp.ledger import Ledger, LedgerUrl, open_ledger
from tunedp.ledger.postgres import PostgresLedger
from tunedp.ledger.sqlite import Fingerprinter, PrivacyLedger
from tunedp.testing import LedgerContract


class TestSqliteLedger(LedgerContract):
    @pytest.fixture
    def make_ledger(self, tmp_path: Path) -> Callable[..., Ledger]:
        def make(epsilon: float, delta: float = 1e-5, fingerprint_of: Fingerprinter | None = None) -> Ledger:
            path = tmp_path / f"d{secrets.token_hex(3)}.sqlite"
            return PrivacyLedger.create(
                path, dataset=path.stem, epsilon=epsilon, delta=delta, fingerprint_of=fingerprint_of
            )

        return make

    def stored_rows(self, ledger: Ledger) -> list[dict[str, object]]:
        connection = sqlite3.connect(Path(ledger.path))
        connection.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in connection.execute("SELECT * FROM charges ORDER BY id")]
            rows += [dict(r) for r in connection.execute("SELECT * FROM ledger_meta ORDER BY key")]
        finally:
            connection.close()
        return rows

    def location(self, ledger: Ledger) -> str:
        return str(ledger.path)


class TestPostgresLedger(LedgerContract):
    @pytest.fixture
    def make_ledger(self, team: TeamLedger) -> Callable[..., Ledger]:
        def make(epsilon: float, delta: float = 1e-5, fingerprint_of: Fingerprinter | None = None) -> Ledger:
            dataset = f"d{secrets.token_hex(4)}"
            owner = LedgerUrl.parse(team.url("owner"))
            PostgresLedger.create(owner, dataset=dataset, epsilon=epsilon, delta=delta, fingerprint_of=fingerprint_of)
            with owner.connect() as connection:
                connection.execute("SELECT tunedp.grant_dataset(%s, %s)", (dataset, team.login("analyst")))
            self._team = team
            return open_ledger(team.url("analyst"), dataset=dataset)

        return make

    def stored_rows(self, ledger: Ledger) -> list[dict[str, object]]:
        import psycopg
        from psycopg.rows import dict_row

        rows: list[dict[str, object]] = []
        with psycopg.connect(self._team.url("admin"), row_factory=dict_row) as connection:
            for table in ("budgets", "charges", "refusals", "grants", "dataset_keys"):
                rows += connection.execute(
                    f"SELECT * FROM tunedp.{table} WHERE dataset = %s ORDER BY 1", (ledger.dataset,)
                ).fetchall()
            rows += connection.execute("SELECT * FROM tunedp.settings").fetchall()
        return rows

    def location(self, ledger: Ledger) -> str:
        return self._team.url("analyst")

    def owner_location(self, ledger: Ledger) -> str:
        return self._team.url("owner")
