"""Issue 11 on real searches (digits, real Ray, real ledger): failure reasons, SIGTERM, progress without a terminal.

Each test reproduces one row of the issue's table on today's driver and shows the new behaviour.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from search_helpers import grid, random_all, random_best, small_config
from shared_runs import (
    CLI_BEST_OPTIONS,
    charge_past_preflight,
    charged_without_preflight,
    cli_search,
    contract_run,
    shared_run,
)

from tunedp.config import SearchConfig
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.observe.lines import SILENT_BEST
from tunedp.planning import plan_search
from tunedp.run.driver import SearchError

pytestmark = pytest.mark.slow

TUNEDP = str(Path(sys.executable).with_name("tunedp"))
MOMENTUM_ERROR = "TrialError: Expected momentum=1.5 in [0, 1)"


def _ledger(tmp_path: Path, epsilon: float = 100.0) -> Path:
    path = tmp_path / "digits.sqlite"
    create_ledger(path, dataset="digits", epsilon=epsilon, delta=1e-5)
    return path


@shared_run("grid-failing")
def test_release_all_trial_error_is_its_real_cause_in_one_clean_line(
    ray_session: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Was: ``"RayTaskError(ValueError): \\u001b[36mray::ImplicitFunc.train()…"`` with the message cut off."""
    run = charged_without_preflight(grid(momenta=[0.9, 1.5]), tmp_path_factory)  # test_search's run too
    text = (run.output / "report.json").read_text()
    report = json.loads(text)
    (failed,) = [t for t in report["trials"] if t["status"] == "failed"]
    assert failed["error"] == MOMENTUM_ERROR
    assert "\\u001b" not in text and "\x1b" not in text and "RayTaskError" not in text
    assert report["failure_reasons"] == [MOMENTUM_ERROR]


def test_release_best_says_why_trials_failed_without_which_or_how_many(ray_session: str, tmp_path: Path) -> None:
    """Was: charged, every trial failed, report said only "no trial succeeded"."""
    space = {
        "coupling": "lr_clip",
        "params": {
            "step_size": {"distribution": "log_uniform", "low": 0.1, "high": 2.0},
            "clip_norm": {"distribution": "fixed", "value": 1.0},
            "momentum": {"distribution": "fixed", "value": 1.5},
        },
    }
    config = small_config(
        search={"mode": "random", "expected_trials": 3.0, "shape": 1.0, "release": "best"}, space=space
    )
    with pytest.raises(SearchError) as raised:
        charge_past_preflight(config, _ledger(tmp_path), tmp_path / "b")
    assert f"at least one trial failed: {MOMENTUM_ERROR}" in str(raised.value)
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["failure_reasons"] == [MOMENTUM_ERROR]
    assert report["trials"] is None and "trial_count" not in report
    summary = (tmp_path / "b" / "report.txt").read_text()
    assert summary.count("at least one trial failed") == 1


def _write_config(tmp_path: Path, config: SearchConfig) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    return path


def _status(ledger_path: Path) -> list[str]:
    with sqlite3.connect(ledger_path) as connection:
        return [row[0] for row in connection.execute("SELECT status FROM charges")]


def _wait_running(ledger_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _status(ledger_path) != ["running"]:
        time.sleep(0.2)
    assert _status(ledger_path) == ["running"]


def test_sigterm_stops_the_trials_like_ctrl_c_and_exits_143(ray_session: str, tmp_path: Path) -> None:
    """Was: Ray crash dump, status ``failed``, no report folder."""
    config_path = _write_config(tmp_path, random_best(expected_trials=50.0))
    ledger_path = _ledger(tmp_path, epsilon=40.0)
    driver = subprocess.Popen(
        [TUNEDP, "search", "--config", str(config_path), "--ledger", str(ledger_path),
         "--ray-address", ray_session, "--output", str(tmp_path / "t")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TUNEDP_TRACKING": "0"},
    )  # fmt: skip
    try:
        _wait_running(ledger_path)
        time.sleep(3.0)
        driver.send_signal(signal.SIGTERM)
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 143, out + err
    assert "finished" not in out + err
    assert "interrupted" in err and "the charge stays" in err
    (charge,) = PrivacyLedger.open(ledger_path).charges()
    assert charge.status == "interrupted"
    assert charge.epsilon == pytest.approx(plan_search(random_best(expected_trials=50.0)).search_epsilon, rel=1e-9)
    report = json.loads((tmp_path / "t" / "report.json").read_text())
    assert report["status"] == "interrupted" and report["best"] is None
    assert not (tmp_path / "t" / "best_model.pt").exists()


def _search_piped(tmp_path: Path, config: SearchConfig, ray: str, name: str) -> subprocess.CompletedProcess[str]:
    config_path = _write_config(tmp_path, config)
    env = {**os.environ, "TUNEDP_TRACKING": "0", "TUNEDP_HEARTBEAT_S": "0.5"}
    return subprocess.run(
        [TUNEDP, "search", "--config", str(config_path), "--ledger", str(_ledger(tmp_path / name)),
         "--ray-address", ray, "--seed", "3", "--output", str(tmp_path / name / "out")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


@shared_run("cli-best")
def test_without_a_terminal_progress_is_plain_lines(
    ray_session: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Was: nothing at all between "charged" and "finished" under nohup, in CI or piped."""
    # test_search's CLI run (piped, with a 0.5 s heartbeat): release: best stays silent all the same.
    best = cli_search(random_best(expected_trials=2.0), ray_session, tmp_path_factory, *CLI_BEST_OPTIONS).done
    assert best.returncode == 0, best.stdout + best.stderr
    lines = best.stdout.splitlines()
    charged = next(i for i, line in enumerate(lines) if line.startswith("charged"))
    done = next(i for i, line in enumerate(lines) if line.startswith("search finished"))
    between = lines[charged + 1 : done]
    # A log records: under release: best one line says why it stays silent, and no time is written.
    assert between == [SILENT_BEST], lines
    assert "elapsed" not in best.stdout and " in " not in lines[done]
    assert "\x1b" not in best.stdout

    (tmp_path / "all").mkdir()
    every = _search_piped(tmp_path, random_all(expected_trials=2.0, max_trials=3), ray_session, "all")
    assert every.returncode == 0, every.stdout + every.stderr
    trial_lines = [line for line in every.stdout.splitlines() if line.startswith("[")]
    report = json.loads((tmp_path / "all" / "out" / "report.json").read_text())
    assert len(trial_lines) == report["trial_count"]
    assert "still running" not in every.stdout  # release: all has per-trial lines instead


@shared_run("random/all")
def test_python_api_takes_a_progress_callback_and_logs(
    ray_session: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The search-mode contract's random/all run: search(..., progress=lines.append), the
    # tunedp.progress logger recorded at INFO meanwhile.
    run = contract_run(random_all(expected_trials=2.0, max_trials=3), tmp_path_factory)
    lines = run.progress
    trials = len(run.outcome.disclosed_trials)
    assert lines[0].startswith("charged ε = ")
    assert sum(line.startswith("[") for line in lines) == trials
    assert lines[-1].startswith("search completed in ")
    assert run.logged == lines
