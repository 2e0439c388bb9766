"""The team ledger against a real PostgreSQL: the server decides, the client shows one line.

Every test runs on a fresh database with per-run roles (``conftest.team``);
the restart and wrong-password cases use a throwaway server of our own.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml
from dp_accounting import dp_event
from postgres_fixtures import OwnServer, TeamLedger, create_team_ledger, drop_team_ledger, wait_until_up

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.config import load_config
from tunedp.errors import BudgetExceededError, LedgerError
from tunedp.ledger import LedgerUrl, open_ledger
from tunedp.ledger.curves import LEDGER_ORDERS, epsilon_from_curve, rdp_curve
from tunedp.ledger.postgres import PostgresLedger
from tunedp.ledger.postgres_session import call as _call
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.planning import plan_search

REPO = Path(__file__).resolve().parents[3]
DELTA = 1e-5


def _budget(team: TeamLedger, epsilon: float = 5.0, *, grant: tuple[str, ...] = ("analyst",)) -> str:
    """A fresh dataset's budget, created by the owner and granted to ``grant``."""
    dataset = f"d{secrets.token_hex(4)}"
    owner = LedgerUrl.parse(team.url("owner"))
    PostgresLedger.create(owner, dataset=dataset, epsilon=epsilon, delta=DELTA)
    with owner.connect() as connection:
        for who in grant:
            connection.execute("SELECT tunedp.grant_dataset(%s, %s)", (dataset, team.login(who)))
    return dataset


def _tunedp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "tunedp.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def _rows(team: TeamLedger, dataset: str) -> list[tuple[object, ...]]:
    """Everything stored about ``dataset``, read as the administrator."""
    with psycopg.connect(team.url("admin")) as connection:
        rows: list[tuple[object, ...]] = []
        for table in ("budgets", "charges", "refusals", "grants", "dataset_keys"):
            rows += connection.execute(f"SELECT * FROM tunedp.{table} WHERE dataset = %s ORDER BY 1", (dataset,))
        return rows


# ----------------------------------------------------------------------------- the server's formula


def _shipped_plans(tmp_path: Path) -> list[tuple[str, object]]:
    plans = []
    for path in sorted((REPO / "search_spaces").glob("*.yaml")):
        if path.name == "adult_csv.yaml":  # reads data/adult.csv, which scripts/adult_csv.py writes
            spec = importlib.util.spec_from_file_location("adult_csv", REPO / "scripts" / "adult_csv.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            try:
                module.write_adult_csv(tmp_path / "data" / "adult.csv")
            except Exception as error:  # the Adult files are a data package
                pytest.skip(f"adult_csv.yaml needs the Adult data: {error}")
            (tmp_path / "configs").mkdir()
            path = tmp_path / "configs" / path.name
            path.write_text(yaml.safe_dump(yaml.safe_load((REPO / "search_spaces" / "adult_csv.yaml").read_text())))
        plans.append((path.name, plan_search(load_config(path))))
    return plans


def test_server_epsilon_equals_dp_accounting_on_every_shipped_plan(team: TeamLedger, tmp_path: Path) -> None:
    """The cap is enforced with tunedp's formula: the server's ε of a plan's curve is dp_accounting's, within 1e-9."""
    plans = _shipped_plans(tmp_path)
    assert len(plans) >= 19
    with psycopg.connect(team.url("analyst")) as connection:
        for name, plan in plans:
            event, delta = plan.event, plan.delta  # type: ignore[attr-defined]
            curve = list(rdp_curve(event))
            assert len(curve) == len(LEDGER_ORDERS)
            expected = rdp_epsilon(event, delta)
            (server,) = connection.execute("SELECT tunedp.epsilon_of(%s::float8[], %s)", (curve, delta)).fetchone()
            assert abs(server - expected) <= 1e-9, (name, server, expected)
            assert abs(epsilon_from_curve(curve, delta) - expected) <= 1e-9, name
            # And composed: two charges of the plan add their curves.
            doubled = [2 * value for value in curve]
            (twice,) = connection.execute("SELECT tunedp.epsilon_of(%s::float8[], %s)", (doubled, delta)).fetchone()
            assert abs(twice - rdp_epsilon(dp_event.ComposedDpEvent([event, event]), delta)) <= 1e-9, name


def test_the_server_refuses_a_malformed_curve(team: TeamLedger) -> None:
    dataset = _budget(team)
    analyst = LedgerUrl.parse(team.url("analyst"))
    good = list(rdp_curve(dp_event.GaussianDpEvent(5.0)))
    for bad in (good[:-1], [*good[:-1], -1.0], [*good[:-1], float("nan")]):
        with analyst.connect() as connection, pytest.raises(LedgerError) as caught:
            _call(
                analyst,
                lambda bad=bad, connection=connection: connection.execute(
                    "SELECT * FROM tunedp.charge(%s, 'x', NULL, 'h', 'grid', '', '{}', %s::float8[], true)",
                    (dataset, bad),
                ),
            )
        assert "\n" not in str(caught.value)
    assert [row for row in _rows(team, dataset) if "x" in row] == []


# ----------------------------------------------------------------------------- permissions


def test_analysts_hold_no_insert_update_or_delete_on_any_table(team: TeamLedger) -> None:
    with psycopg.connect(team.url("admin")) as connection:
        tables = [t for (t,) in connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'tunedp'")]
        assert {"budgets", "charges", "refusals", "grants", "dataset_keys", "settings"} <= set(tables)
        for who in ("analyst", "auditor", "owner"):
            for table in tables:
                for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"):
                    (has,) = connection.execute(
                        "SELECT has_table_privilege(%s, %s, %s)", (team.login(who), f"tunedp.{table}", privilege)
                    ).fetchone()
                    assert not has, (who, table, privilege)


@pytest.mark.parametrize(
    "attempt",
    [
        "UPDATE tunedp.charges SET epsilon = 0, curve = array_fill(0::float8, ARRAY[160])",
        "DELETE FROM tunedp.charges",
        "UPDATE tunedp.budgets SET epsilon = 1000",
        "INSERT INTO tunedp.budgets (dataset, epsilon, delta, created_by, created_on) "
        "VALUES ('{dataset}', 1000, 1e-5, 'x', now())",
        "SELECT tunedp.create_budget('{dataset}', 1000, 1e-5, '', NULL, '')",
        "SELECT tunedp.grant_dataset('{other}', session_user)",
        "SELECT * FROM tunedp.charge('{other}', 'forged', NULL, 'h', 'grid', '', '{{}}', "
        "array_fill(0::float8, ARRAY[160]), true)",
        "SET ROLE {owner_role}",
        "SET SESSION AUTHORIZATION {other_analyst}",
        "SELECT tunedp.data_key('{other}')",
        "SELECT * FROM tunedp.dataset_keys",
    ],
    ids=[
        "update-charges",
        "delete-charges",
        "raise-cap",
        "insert-budget",
        "recreate-budget",
        "grant-itself",
        "charge-ungranted",
        "forged-role-set-role",
        "forged-role-session",
        "key-of-ungranted",
        "read-keys",
    ],
)
def test_an_analyst_cannot_change_the_ledger(team: TeamLedger, attempt: str) -> None:
    """Each attempt is refused by the server, shown as one line, and the ledger is unchanged."""
    from tunedp.ledger.postgres_schema import Roles

    dataset = _budget(team)
    other = _budget(team, grant=("analyst2",))
    charged = open_ledger(team.url("analyst"), dataset=dataset)
    charged.charge(dp_event.GaussianDpEvent(4.0), config_hash="h", mode="grid")
    before = _rows(team, dataset), _rows(team, other)
    statement = attempt.format(
        dataset=dataset, other=other, owner_role=Roles(team.prefix).owner, other_analyst=team.login("analyst2")
    )
    analyst = LedgerUrl.parse(team.url("analyst"))
    with analyst.connect() as connection, pytest.raises(LedgerError, match="permission denied") as caught:
        _call(analyst, lambda: connection.execute(statement))
    assert "\n" not in str(caught.value)
    assert (_rows(team, dataset), _rows(team, other)) == before


def test_an_ungranted_dataset_is_one_line_exit_2_for_the_cli(team: TeamLedger) -> None:
    other = _budget(team, grant=("analyst2",))
    done = _tunedp("budget", "show", "--ledger", team.url("analyst"), "--dataset", other)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no budget for dataset" in done.stderr and "grant" in done.stderr


# ----------------------------------------------------------------------------- audit trail


def test_verify_names_a_short_curve_and_the_role_that_made_it(team: TeamLedger) -> None:
    """A modified client under-reports its curve; the server admits it; `budget verify` names it and its role."""
    dataset = _budget(team, 50.0, grant=("analyst", "analyst2"))
    honest = open_ledger(team.url("analyst"), dataset=dataset)
    honest.charge(dp_event.GaussianDpEvent(3.0), config_hash="h", mode="grid", search_id="honest-search")
    event = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(2.0), 5)
    forged = [value / 10 for value in rdp_curve(event)]
    event_json = json.dumps(
        {"kind": "self_composed", "count": 5, "event": {"kind": "gaussian", "noise_multiplier": 2.0}}
    )
    with psycopg.connect(team.url("analyst2")) as connection:
        (outcome,) = connection.execute(
            "SELECT outcome FROM tunedp.charge(%s, 'cheating-search', NULL, 'h', 'grid', '', %s, %s::float8[], true)",
            (dataset, event_json, forged),
        ).fetchone()
    assert outcome == "charged"
    done = _tunedp("budget", "verify", "--ledger", team.url("analyst"), "--dataset", dataset)
    assert done.returncode == 1, done.stderr
    assert "cheating-search" in done.stderr and team.login("analyst2") in done.stderr
    assert "honest-search" not in done.stderr
    # The client's own view is never fooled: it recomposes the stored events.
    assert honest.spent_epsilon() == pytest.approx(
        rdp_epsilon(dp_event.ComposedDpEvent([dp_event.GaussianDpEvent(3.0), event]), DELTA)
    )


def test_history_shows_role_search_event_mode_day_and_refusals(team: TeamLedger) -> None:
    dataset = _budget(team, 3.0)
    ledger = open_ledger(team.url("analyst"), dataset=dataset)
    ledger.charge(dp_event.GaussianDpEvent(3.0), config_hash="h", mode="random/best", search_id="first-search")
    with pytest.raises(BudgetExceededError):
        ledger.charge(dp_event.GaussianDpEvent(0.4), config_hash="h", mode="grid/all", search_id="too-dear")
    done = _tunedp("budget", "history", "--json", "--ledger", team.url("auditor"), "--dataset", dataset)
    assert done.returncode == 0, done.stderr
    trail = json.loads(done.stdout)
    (charge,) = trail["charges"]
    assert charge["search_id"] == "first-search" and charge["role"] == team.login("analyst")
    assert charge["mode"] == "random/best" and len(charge["day"]) == len("2026-12-06")
    assert charge["event"] == {"kind": "gaussian", "noise_multiplier": 3.0}
    (refusal,) = trail["refusals"]
    assert refusal["search_id"] == "too-dear" and refusal["role"] == team.login("analyst")
    assert refusal["reason"] == "over budget" and refusal["epsilon_after"] > 3.0


# ----------------------------------------------------------------------------- bad input, faults


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://nobody@127.0.0.1:1/tunedp", "cannot connect"),
        ("postgressql://nobody@127.0.0.1:5432/tunedp", "is not a ledger URL scheme"),
        ("postgresql://nobody@127.0.0.1:54x2/tunedp", "port"),
        ("postgresql://nobody@127.0.0.1:5432/", "names no database"),
    ],
)
def test_unreachable_or_mistyped_ledger_is_one_line_exit_2_before_anything(
    team: TeamLedger, tmp_path: Path, url: str, says: str
) -> None:
    done = _tunedp("search", "--config", "search_spaces/digits.yaml", "--ledger", url, "--output", str(tmp_path / "o"))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr, done.stderr
    assert not (tmp_path / "o").exists()


def test_wrong_password_is_one_line_exit_2_and_never_shows_the_password(own_server: OwnServer, tmp_path: Path) -> None:
    team = create_team_ledger(own_server.admin_url, "127.0.0.1", own_server.port, password=own_server.password)
    try:
        wrong = team.url("analyst").replace(own_server.password, "not-the-password")
        done = _tunedp("budget", "show", "--ledger", wrong, "--dataset", "digits")
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "password authentication failed" in done.stderr and "not-the-password" not in done.stderr
    finally:
        drop_team_ledger(own_server.admin_url, team)


_BLOCKED_CHILD = """
import sys
from dp_accounting import dp_event
from tunedp.errors import LedgerError
from tunedp.ledger import open_ledger
ledger = open_ledger(sys.argv[1], dataset=sys.argv[2])
print("charging", flush=True)
try:
    ledger.charge(dp_event.GaussianDpEvent(3.0), config_hash="h", mode="grid", search_id="killed-search")
except LedgerError as error:
    print("no trial:", error, flush=True)
    sys.exit(2)
print("trials would run", flush=True)
"""


def test_connection_killed_between_charge_and_commit_charges_nothing_and_runs_no_trial(team: TeamLedger) -> None:
    """The driver's charge waits on the budget's row lock (inside its transaction); its backend is terminated."""
    dataset = _budget(team)
    with psycopg.connect(team.url("admin")) as holder:
        holder.execute("SELECT 1 FROM tunedp.budgets WHERE dataset = %s FOR UPDATE", (dataset,))
        child = subprocess.Popen(
            [sys.executable, "-c", _BLOCKED_CHILD, team.url("analyst"), dataset],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            pid = None
            with psycopg.connect(team.url("admin"), autocommit=True) as watcher:
                while pid is None:
                    assert time.monotonic() < deadline and child.poll() is None, child.communicate()
                    row = watcher.execute(
                        "SELECT pid FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'",
                        (team.login("analyst"),),
                    ).fetchone()
                    pid = row[0] if row else None
                    time.sleep(0.05)
                watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))
            out, err = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
        holder.rollback()
    assert child.returncode == 2, (out, err)
    assert "no trial: " in out and "trials would run" not in out and len(out.strip().splitlines()) == 2
    assert open_ledger(team.url("analyst"), dataset=dataset).charges() == []


def test_a_server_restart_keeps_the_committed_charge_and_the_search_ends_cleanly(own_server: OwnServer) -> None:
    team = create_team_ledger(own_server.admin_url, "127.0.0.1", own_server.port, password=own_server.password)
    try:
        dataset = f"d{secrets.token_hex(4)}"
        owner = LedgerUrl.parse(team.url("owner"))
        PostgresLedger.create(owner, dataset=dataset, epsilon=5.0, delta=DELTA)
        with owner.connect() as connection:
            connection.execute("SELECT tunedp.grant_dataset(%s, %s)", (dataset, team.login("analyst")))
        ledger = open_ledger(team.url("analyst"), dataset=dataset)
        charge = ledger.charge(dp_event.GaussianDpEvent(3.0), config_hash="h", mode="random/best")
        ledger.set_status(charge.search_id, "running")
        own_server.restart()  # while the search's trials would be running
        wait_until_up(own_server.admin_url)
        ledger.set_status(charge.search_id, "completed")  # the same ledger object reconnects
        (stored,) = ledger.charges()
        assert stored.search_id == charge.search_id and stored.status == "completed"
        assert ledger.spent_epsilon() == pytest.approx(rdp_epsilon(dp_event.GaussianDpEvent(3.0), DELTA))
    finally:
        drop_team_ledger(own_server.admin_url, team)


# ----------------------------------------------------------------------------- migration


def test_migrate_moves_budget_binding_and_history_and_refuses_an_existing_dataset(
    team: TeamLedger, tmp_path: Path
) -> None:
    import hashlib
    import hmac

    dataset = f"m{secrets.token_hex(4)}"
    path = tmp_path / f"{dataset}.sqlite"
    rows = lambda key: hmac.new(key, b"rows", hashlib.sha256).hexdigest()  # noqa: E731
    local = PrivacyLedger.create(path, dataset=dataset, epsilon=4.0, delta=DELTA, fingerprint_of=rows)
    events = [dp_event.GaussianDpEvent(3.0), dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(5.0), 3)]
    for event in events:
        local.charge(event, config_hash="h", mode="grid", label="before the move")
    local.set_status(local.charges()[0].search_id, "completed")
    done = _tunedp("budget", "migrate", "--from", str(path), "--to", team.url("owner"))
    assert done.returncode == 0, done.stderr
    with LedgerUrl.parse(team.url("owner")).connect() as connection:
        connection.execute("SELECT tunedp.grant_dataset(%s, %s)", (dataset, team.login("analyst")))
    moved = open_ledger(team.url("analyst"), dataset=dataset)
    assert (moved.epsilon, moved.delta, moved.fingerprint) == (4.0, DELTA, local.fingerprint)
    assert [(c.search_id, c.event, c.status, c.created_at) for c in moved.charges()] == [
        (c.search_id, c.event, c.status, c.created_at) for c in local.charges()
    ]
    assert moved.spent_epsilon() == pytest.approx(local.spent_epsilon())
    moved.verify_data(rows)  # the key moved with the binding
    assert moved.verify() == []
    again = _tunedp("budget", "migrate", "--from", str(path), "--to", team.url("owner"))
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "already has a budget" in again.stderr
