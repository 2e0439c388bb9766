"""End-to-end searches on the real digits workload with a real Ray and a real sqlite ledger.

What these prove: the ledger is charged exactly the planned search ε; in
``random``/``release: best`` nothing about a non-best trial (its score, or the
number of trials) reaches the console or the output folder; the best trial is
the best by released score; failed trials are charged and the search goes
on; a search the ledger cannot admit is refused before Ray starts and before
data is read; a killed driver leaves the charge in place.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from ray_nodes import stop_node, wait_for_alive_nodes, wait_for_port
from search_helpers import REPO, adaptive, grid, random_all, random_best
from shared_runs import CLI_BEST_OPTIONS, charge_past_preflight, cli_search, contract_run, shared_run
from shared_runs import charged_without_preflight as shared_charged_without_preflight
from slow_start import SLOW_START_ENV
from workload_fixtures import NODE_COPY_ENV

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.search_event import draw_trial_count
from tunedp.config import SearchConfig
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.planning import plan_search
from tunedp.run.driver import SearchError

pytestmark = pytest.mark.slow

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


def _ledger(tmp_path: Path, epsilon: float = 100.0) -> Path:
    path = tmp_path / "digits.sqlite"
    create_ledger(path, dataset="digits", epsilon=epsilon, delta=1e-5)
    return path


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.suffix in {".json", ".txt"})


@shared_run("random/best")
def test_random_best_charges_the_plan_and_releases_only_the_best(
    ray_session: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = random_best(expected_trials=3.0)
    run = contract_run(config, tmp_path_factory)  # the search-mode contract's random/best run: K = 3
    outcome, out = run.outcome, run.outcome.output_dir

    planned = plan_search(config)
    ledger = PrivacyLedger.open(run.ledger_path)
    assert ledger.spent_epsilon() == pytest.approx(planned.search_epsilon, rel=1e-9)
    # Independent recomputation of the charge from the stored event alone.
    (charge,) = ledger.charges()
    assert rdp_epsilon(charge.event, 1e-5) == pytest.approx(planned.search_epsilon, rel=1e-9)
    assert charge.status == "completed"

    records = run.selected[-1]
    assert len(records) >= 3
    best = outcome.best
    assert best is not None
    assert best.final_score == max(r.final_score for r in records)
    assert outcome.disclosed_trials == (best,)

    report = json.loads((out / "report.json").read_text())
    assert report["trials"] is None and "trial_count" not in report
    assert report["best"]["final_score"] == best.final_score
    assert (out / "best_model.pt").is_file()

    # Everything printed (stdout, stderr, a console observer) and every file of the output folder.
    visible = run.printed + run.console + _all_text(out)
    for record in records:
        if (record.point, record.released_scores) == (best.point, best.released_scores):
            continue
        for text in (repr(record.final_score), f"{record.final_score:.4f}"):
            if text != f"{best.final_score:.4f}":
                assert text not in visible, "a non-best trial's score left the driver"
    assert f"{len(records)} trials" not in visible


@shared_run("random/all")
def test_release_all_is_charged_as_composition_and_shows_every_trial(
    ray_session: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = random_all(expected_trials=2.0, max_trials=3)
    run = contract_run(config, tmp_path_factory)  # the search-mode contract's run: K ∈ {2, 3}
    outcome = run.outcome

    planned = plan_search(config)
    composed = rdp_epsilon(planned.trial.dp_event(), 1e-5)
    assert planned.search_epsilon > composed  # three trials cost more than one
    assert PrivacyLedger.open(run.ledger_path).spent_epsilon() == pytest.approx(planned.search_epsilon, rel=1e-9)
    records = run.selected[-1]
    assert 2 <= len(records) <= 3
    report = json.loads((outcome.output_dir / "report.json").read_text())
    assert report["trial_count"] == len(records) == len(outcome.disclosed_trials)
    assert outcome.best is not None
    assert outcome.best.final_score == max(t["final_score"] for t in report["trials"])


@shared_run("grid-failing")
def test_a_failing_trial_is_charged_and_the_grid_goes_on(
    ray_session: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # momentum 1.5 is outside [0, 1): that trial raises inside Ray (test_search_lifecycle reads this run too).
    config = grid(momenta=[0.9, 1.5])
    run = shared_charged_without_preflight(config, tmp_path_factory)
    outcome = run.outcome
    statuses = sorted(t.status for t in outcome.disclosed_trials)
    assert statuses == ["completed", "failed"]
    assert outcome.best is not None and outcome.best.point["momentum"] == 0.9
    planned = plan_search(config)
    assert planned.shape.max_trials == 2
    assert PrivacyLedger.open(run.ledger_path).spent_epsilon() == pytest.approx(planned.search_epsilon, rel=1e-9)


def test_a_search_whose_every_trial_fails_exits_with_the_charge_kept(ray_session: str, tmp_path: Path) -> None:
    config = grid(momenta=[1.5])
    ledger_path = _ledger(tmp_path)
    with pytest.raises(SearchError, match="every trial failed"):
        charge_past_preflight(config, ledger_path, tmp_path / "f")
    (charge,) = PrivacyLedger.open(ledger_path).charges()
    assert charge.status == "failed"
    assert charge.epsilon == pytest.approx(plan_search(config).search_epsilon, rel=1e-9)
    assert (tmp_path / "f" / "report.json").is_file()


@shared_run("adaptive")
def test_adaptive_with_asha_reports_noisy_scores_and_charges_full_length(
    ray_session: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = adaptive(max_trials=3, evaluations=2)
    run = contract_run(config, tmp_path_factory)  # the search-mode contract's run
    ledger_path, outcome = run.ledger_path, run.outcome
    planned = plan_search(config)
    # Charged as three full-length trials with two score releases each, whatever ASHA stopped.
    expected = rdp_epsilon(
        type(planned.event)(planned.trial.dp_event(), 3),  # SelfComposedDpEvent(trial, 3)
        1e-5,
    )
    assert planned.trial.score_releases == 2
    assert PrivacyLedger.open(ledger_path).spent_epsilon() == pytest.approx(expected, rel=1e-9)
    assert len(outcome.disclosed_trials) == 3
    for trial in outcome.disclosed_trials:
        assert trial.status in {"completed", "stopped"}
        assert 1 <= len(trial.released_scores) <= 2
        assert all(0.0 <= s <= 1.0 for s in trial.released_scores)


def _script(code: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**env, "PYTHONPATH": str(REPO / "tests")}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def test_a_budget_the_ledger_cannot_admit_is_refused_before_ray_and_data(tmp_path: Path) -> None:
    ledger_path = _ledger(tmp_path, epsilon=1.0)
    before = ledger_path.read_bytes()
    code = f"""
import sys, json
from search_helpers import random_best
from tunedp.run.driver import search
from tunedp.ledger.sqlite import BudgetExceededError
try:
    search(random_best(), ledger_path={str(ledger_path)!r}, seed=0)
except BudgetExceededError as error:
    import ray
    print(json.dumps({{"error": str(error), "ray": ray.is_initialized(),
                      "data_loaded": "tunedp.workloads.digits_torch" in sys.modules, "torch": "torch" in sys.modules}}))
"""
    done = _script(code, {**os.environ, "TUNEDP_TRACKING": "0"})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "budget" in result["error"]
    assert result == {**result, "ray": False, "data_loaded": False, "torch": False}
    assert ledger_path.read_bytes() == before

    # The CLI says the same in one line with exit code 2.
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(random_best().model_dump(mode="json")))
    cli = subprocess.run(
        [TUNEDP, "search", "--config", str(config_path), "--ledger", str(ledger_path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "TUNEDP_TRACKING": "0"},
    )  # fmt: skip
    assert cli.returncode == 2
    assert len(cli.stderr.strip().splitlines()) == 1 and "budget" in cli.stderr
    assert ledger_path.read_bytes() == before


def _write_config(tmp_path: Path, config: SearchConfig) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    return path


@shared_run("cli-best")
def test_cli_search_end_to_end_and_report(ray_session: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    # test_search_lifecycle reads this run too (its progress lines without a terminal).
    run = cli_search(random_best(expected_trials=2.0), ray_session, tmp_path_factory, *CLI_BEST_OPTIONS)
    done = run.done
    assert done.returncode == 0, done.stdout + done.stderr
    assert "charged ε" in done.stdout and "best: released score" in done.stdout
    assert "Number of trials" not in done.stdout + done.stderr  # Ray's banner would reveal K
    report = json.loads((run.output / "report.json").read_text())
    assert report["privacy"]["budget_epsilon"] == 6.0
    assert report["privacy"]["charged_epsilon"] <= 6.0
    shown = subprocess.run([TUNEDP, "report", str(run.output)], capture_output=True, text=True, env=run.env)
    assert shown.returncode == 0 and report["search_id"][:12] in shown.stdout


def _status(ledger_path: Path) -> list[str]:
    with sqlite3.connect(ledger_path) as connection:
        return [row[0] for row in connection.execute("SELECT status FROM charges")]


def test_a_killed_driver_leaves_the_ledger_charged(ray_session: str, tmp_path: Path) -> None:
    config_path = _write_config(tmp_path, random_best(expected_trials=50.0))  # long enough to kill
    ledger_path = _ledger(tmp_path, epsilon=40.0)
    env = {**os.environ, "TUNEDP_TRACKING": "0"}
    driver = subprocess.Popen(
        [TUNEDP, "search", "--config", str(config_path), "--ledger", str(ledger_path),
         "--ray-address", ray_session, "--output", str(tmp_path / "k")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _status(ledger_path) != ["running"]:
            time.sleep(0.2)
        assert _status(ledger_path) == ["running"]
        time.sleep(2.0)  # trials are reading data now
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    ledger = PrivacyLedger.open(ledger_path)
    (charge,) = ledger.charges()
    assert charge.status == "running"  # it never got to say more, and the charge stands
    spent = ledger.spent_epsilon()
    assert spent > 0
    later = subprocess.run(
        [TUNEDP, "plan", "--config", str(config_path), "--ledger", str(ledger_path), "--json"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    figures: dict[str, Any] = json.loads(later.stdout)
    assert figures["ledger_spent_epsilon"] == pytest.approx(spent)
    assert figures["ledger_spent_after_epsilon"] > spent


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.xdist_group("ray_cluster")  # never beside the other two-node test (make test runs two workers)
def test_two_node_ray_cluster_runs_trials_on_both_nodes(tmp_path: Path) -> None:
    ray_bin = str(Path(sys.executable).with_name("ray"))
    address = f"127.0.0.1:{_free_port()}"
    tests = str(Path(__file__).resolve().parents[1])  # workload_fixtures, importable on both nodes
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled", "TUNEDP_TRACKING": "0"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, env.get("PYTHONPATH")]))
    common = ["--node-ip-address", "127.0.0.1", "--object-store-memory", str(128 * 1024 * 1024),
              "--num-cpus", "1", "--block", "--disable-usage-stats"]  # fmt: skip
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--port", address.rsplit(":", 1)[1], "--include-dashboard", "false", *common],
        env=env, **quiet,
    )  # fmt: skip
    worker = None
    try:
        wait_for_port(address)  # the worker node joins as soon as the head's GCS listens
        # This node's copy of the DIGITS_NODE_COPY data differs in one row (workload_fixtures), and
        # a trial's worker here starts 8 s late where tests/slow_start.py asks for it.
        worker = subprocess.Popen(
            [ray_bin, "start", "--address", address, *common],
            env={**env, NODE_COPY_ENV: "modified", SLOW_START_ENV: "8"},
            **quiet,
        )
        wait_for_alive_nodes(sys.executable, address, 2, env)
        _both_nodes_run_a_trial_even_when_one_starts_late(tmp_path / "late", address, env)
        _a_node_with_another_copy_of_the_data_is_refused(tmp_path / "copy", address, env)
        _worker_node_dies_mid_search(tmp_path / "dead", address, env, worker)
    finally:
        for process in (worker, head):
            if process is not None:
                stop_node(process)


def _both_nodes_run_a_trial_even_when_one_starts_late(folder: Path, address: str, env: dict[str, str]) -> None:
    """Two trials at once on the two one-CPU nodes, the worker node's starting after the head's has finished.

    With Tune's worker reuse on, the head's finished worker was handed to the
    late trial and both ran on the head (CI saw this once by chance; the delay
    makes the order certain). ``tests/slow_start.py`` runs the search, on the
    library's driver (the CLI on a cluster: the cases below and ``test_wheel``).
    """
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parents[1] / "slow_start.py"), str(folder), address],
        capture_output=True, text=True, timeout=400, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((folder / "out" / "report.json").read_text())
    assert report["trial_count"] == 2
    assert len(report["ray_nodes"]) == 2, report["ray_nodes"]  # one trial on each node


def _a_node_with_another_copy_of_the_data_is_refused(folder: Path, address: str, env: dict[str, str]) -> None:
    """The driver's copy matches the ledger, the worker node's differs in one row or is missing: refused."""
    _refused_for_the_worker_nodes_copy(folder, address, env, "DIGITS_NODE_COPY", "reads different rows")
    _refused_for_the_worker_nodes_copy(
        folder.with_name("missing"), address, env, "DIGITS_NODE_MISSING", "cannot load workload"
    )


def _refused_for_the_worker_nodes_copy(folder: Path, address: str, env: dict[str, str], name: str, why: str) -> None:
    """A search of ``workload_fixtures:name`` on the cluster: one line naming the node and ``why``, nothing charged."""
    folder.mkdir()
    config = grid(momenta=[0.5, 0.9]).model_copy(update={"workload": f"workload_fixtures:{name}"})
    config_path = _write_config(folder, config)
    ledger_path = folder / "ledger.sqlite"
    dataset = name.lower()
    create_ledger(ledger_path, dataset=dataset, epsilon=100.0, delta=1e-5, workload=config.workload)
    before = ledger_path.read_bytes()
    done = subprocess.run(
        [TUNEDP, "search", "--config", str(config_path), "--ledger", str(ledger_path),
         "--ray-address", address, "--output", str(folder / "out")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = [text for text in done.stderr.splitlines() if text.startswith("error:")]
    assert "Ray node " in line and "(node " in line and why in line and "nothing charged" in line
    assert ledger_path.read_bytes() == before and PrivacyLedger.open(ledger_path).charges() == []
    # Only the verdict leaves the driver: no per-search digest (a function of the private rows) is
    # printed or written anywhere in the search's folder (the ledger holds its own, bound fingerprint).
    assert "hmac-sha256" not in done.stdout + done.stderr
    written = [path for path in folder.rglob("*") if path.is_file() and not path.name.startswith(ledger_path.name)]
    assert not [path for path in written if b"hmac-sha256" in path.read_bytes()], written


def _training_trial_pids(group: int) -> list[int]:
    """The Tune trials training right now on the node whose processes form the process group ``group``.

    Ray's worker processes lead process groups of their own; they are children
    of their node's raylet, which is in the node's group. Ray names a worker
    after the task it runs: ``ray::ImplicitFunc.train`` is a trial inside its
    training function.
    """
    processes = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        processes.append((int(stat.parent.name), int(fields[1]), int(fields[2]), command))
    node = {pid for pid, _, pgrp, _ in processes if pgrp == group}
    training = b"ray::ImplicitFunc.train"
    return [pid for pid, ppid, _, command in processes if ppid in node and command.startswith(training)]


def _worker_node_dies_mid_search(
    folder: Path, address: str, env: dict[str, str], worker: subprocess.Popen[bytes]
) -> None:
    """Kill the worker node (its whole process group) while its trial trains, the other trial on the head.

    Its trial fails and stays charged; the search goes on and reports it
    (exit 0 when the other trial completed, 1 if none did). The kill waits
    for the worker node's trial to be training, not a fixed time: a fixed
    sleep could end during the pre-flight on a loaded machine (the search is
    then refused, nothing charged) or after the trials.
    """
    folder.mkdir()
    long = grid(momenta=[0.5, 0.9])
    # Long enough that the trial is still training when the kill lands (milliseconds after it is
    # seen training), short enough that the surviving trial ends soon after.
    long = long.model_copy(update={"training": long.training.model_copy(update={"steps": 2000})})
    config_path = _write_config(folder, long)
    ledger_path = _ledger(folder)
    running = subprocess.Popen(
        [TUNEDP, "search", "--config", str(config_path), "--ledger", str(ledger_path),
         "--ray-address", address, "--max-concurrent", "2", "--seed", "4",
         "--output", str(folder / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and running.poll() is None and not _training_trial_pids(worker.pid):
            time.sleep(0.1)
        assert _training_trial_pids(worker.pid), f"no trial trained on the worker node (status {_status(ledger_path)})"
        assert _status(ledger_path) == ["running"]  # charged before any trial read data
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        out, err = running.communicate(timeout=400)
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode in (0, 1), out + err
    (charge,) = PrivacyLedger.open(ledger_path).charges()
    assert charge.epsilon == pytest.approx(plan_search(long).search_epsilon, rel=1e-9)
    assert charge.status in ("completed", "failed")
    report = json.loads((folder / "out" / "report.json").read_text())
    statuses = [t["status"] for t in report["trials"]]
    assert len(statuses) == 2
    assert "failed" in statuses  # the worker node's trial died while it trained
    assert ("completed" in statuses) == (running.returncode == 0)
    for trial in report["trials"]:
        if trial["status"] == "failed":
            assert trial["error"] and "\n" not in trial["error"]


def test_trial_count_draws_follow_the_charged_distribution() -> None:
    """The secret K has the mean the repeat-and-select bound was computed for."""
    config = random_best(expected_trials=4.0)
    shape = plan_search(config).shape
    rng = np.random.default_rng(0)
    draws = np.array([draw_trial_count(shape, rng) for _ in range(20_000)])
    assert draws.min() >= 1
    # geometric with mean 4: std = sqrt(4*3) ≈ 3.46; 6 standard errors of the mean.
    assert abs(draws.mean() - 4.0) < 6 * math.sqrt(12.0 / draws.size)


def test_ctrl_c_stops_the_trials_and_keeps_the_charge(ray_session: str, tmp_path: Path) -> None:
    config_path = _write_config(tmp_path, random_best(expected_trials=50.0))
    ledger_path = _ledger(tmp_path, epsilon=40.0)
    driver = subprocess.Popen(
        [TUNEDP, "search", "--config", str(config_path), "--ledger", str(ledger_path),
         "--ray-address", ray_session, "--output", str(tmp_path / "i")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TUNEDP_TRACKING": "0"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _status(ledger_path) != ["running"]:
            time.sleep(0.2)
        time.sleep(4.0)
        driver.send_signal(signal.SIGINT)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, out + err
    assert "the charge stays" in err
    assert "finished" not in out + err  # issue 11: it used to say "search finished" before "interrupted"
    (charge,) = PrivacyLedger.open(ledger_path).charges()
    assert charge.status == "interrupted"
    report = json.loads((tmp_path / "i" / "report.json").read_text())
    assert report["status"] == "interrupted" and report["best"] is None
    assert not (tmp_path / "i" / "best_model.pt").exists()
