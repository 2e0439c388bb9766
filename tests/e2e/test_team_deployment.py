"""The team deployment, once, end to end: PostgreSQL for the ledger and for MLflow's store, a Ray cluster,
and ``tunedp search --ledger postgresql://… --tracking-uri http://… --ray-address …`` as an analyst.

The README's "For a team" section gives these commands; this test runs them
on real servers (a fresh ledger database and a fresh MLflow database on the
shared PostgreSQL, an ``mlflow server`` and a ``ray start --head`` of its own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml
from postgres_fixtures import ADMIN_URL, TeamLedger
from psycopg import sql
from ray_nodes import stop_node, wait_for_alive_nodes, wait_for_port
from search_helpers import random_best
from tracking_fixtures import MlflowServer, free_port

from tunedp.ledger import open_ledger
from tunedp.observe.dashboard import server_environment

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


@pytest.mark.slow
@pytest.mark.xdist_group("ray_cluster")  # never beside the other `ray start` cluster test
def test_an_analyst_searches_on_the_team_ledger_mlflow_server_and_ray_cluster(team: TeamLedger, tmp_path: Path) -> None:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    env.pop("TUNEDP_TRACKING", None)
    # The owner sets the budget (binding it to the digits rows) and grants the analyst.
    done = subprocess.run(
        [TUNEDP, "budget", "init", "--ledger", team.url("owner"), "--dataset", "digits", "--epsilon", "20",
         "--delta", "1e-5"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [TUNEDP, "ledger", "grant", "--url", team.url("owner"), "--dataset", "digits", "--role", team.login("analyst")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    mlflow_db = f"mlflow_{team.database}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(mlflow_db)))
    port = free_port()
    log_path = tmp_path / "mlflow.log"
    with log_path.open("wb") as log:
        mlflow = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
             f"postgresql+psycopg://postgres@127.0.0.1:5432/{mlflow_db}",
             "--default-artifact-root", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            env=server_environment(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = MlflowServer(url=f"http://127.0.0.1:{port}", directory=tmp_path, process=mlflow, log_path=log_path)
    address = f"127.0.0.1:{free_port()}"
    head = None
    try:
        server.wait_healthy()
        head = subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", "--head", "--port", address.rsplit(":", 1)[1],
             "--include-dashboard", "false", "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
             "--object-store-memory", str(128 * 1024 * 1024), "--block", "--disable-usage-stats"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_for_port(address)
        wait_for_alive_nodes(sys.executable, address, 1, env)
        config = tmp_path / "search.yaml"
        config.write_text(yaml.safe_dump(random_best(expected_trials=2.0).model_dump(mode="json", exclude_none=True)))
        done = subprocess.run(
            [TUNEDP, "search", "--config", str(config), "--ledger", team.url("analyst"),
             "--tracking-uri", server.url, "--ray-address", address, "--output", str(tmp_path / "out")],
            capture_output=True, text=True, timeout=600, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        (charge,) = open_ledger(team.url("auditor"), dataset="digits").charges()
        assert charge.search_id == report["search_id"] and charge.charged_by == team.login("analyst")
        assert charge.status == "completed" and len(charge.created_at) == len("2026-12-06")
        assert report["ledger"]["path"] == open_ledger(team.url("analyst"), dataset="digits").path
        # MLflow's PostgreSQL store holds the search's run, tagged with its ledger.
        experiments = server.post("/api/2.0/mlflow/experiments/search", {"max_results": 100})["experiments"]
        runs = [
            run for e in experiments for run in server.search_runs(e["experiment_id"])
            if run.tags.get("tunedp.search_id") == report["search_id"]
        ]  # fmt: skip
        assert runs, server.log_tail()
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{mlflow_db}") as store:
            (count,) = store.execute("SELECT count(*) FROM runs").fetchone()  # type: ignore[misc]
        assert count >= 1
    finally:
        if head is not None:
            stop_node(head)
        server.stop()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(mlflow_db)))
