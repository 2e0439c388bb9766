"""Interrupting and resuming: one charge, the same secret K, completed trials kept, the result released.

The slow test kills a real search (SIGTERM) mid-way and resumes it with
``tunedp search --resume``; the fast ones check the secret state's file modes,
``--abandon`` and the refusals, without Ray.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from search_helpers import random_best

from tunedp.accounting.search_event import draw_trial_count
from tunedp.cli import main
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.planning import plan_search
from tunedp.release.records import TrialRecord
from tunedp.run.resume import STATE_DIR, ResumeState, StateRecorder, read_state

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


def _ledger(tmp_path: Path) -> Path:
    path = tmp_path / "digits.sqlite"
    create_ledger(path, dataset="digits", epsilon=40.0, delta=1e-5)
    return path


def _state(tmp_path: Path, ledger: Path, search_id: str = "f" * 32) -> ResumeState:
    config = random_best()
    return ResumeState(
        search_id=search_id,
        config=config.model_dump(mode="json"),
        ledger_path=str(ledger),
        trial_count=5,
        seed=None,
    )


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def test_the_secret_state_is_private_and_holds_each_finished_trial(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    ledger = _ledger(tmp_path)
    recorder = StateRecorder(out, _state(tmp_path, ledger), PrivacyLedger.open(ledger))
    recorder.record(
        TrialRecord(point={"step_size": 1.0}, hyperparameters={}, status="completed", released_scores=(0.5,))
    )
    recorder.close()
    folder = out / STATE_DIR
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "state.json").stat().st_mode) == 0o600
    state = read_state(out)
    assert state.trial_count == 5 and len(state.completed) == 1
    assert state.completed[0].released_scores == (0.5,)


def test_abandon_deletes_the_state_and_leaves_the_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = _ledger(tmp_path)
    before = ledger.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    StateRecorder(out, _state(tmp_path, ledger), PrivacyLedger.open(ledger)).close()
    code, stdout, err = _run(["search", "--abandon", str(out)], capsys)
    assert code == 0, err
    assert "abandoned" in stdout and "charge stays" in stdout
    assert not (out / STATE_DIR).exists()
    assert ledger.read_bytes() == before
    code, _, err = _run(["search", "--resume", str(out)], capsys)
    assert code == 2 and "--resume" in err and err.count("\n") == 1


def test_a_folder_with_an_interrupted_search_is_not_a_new_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = _ledger(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    StateRecorder(out, _state(tmp_path, ledger), PrivacyLedger.open(ledger)).close()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(random_best().model_dump(mode="json", exclude_none=True)))
    before = ledger.read_bytes()
    code, _, err = _run(
        ["search", "--config", str(config), "--ledger", str(ledger), "--output", str(out), "--force"], capsys
    )
    assert code == 2 and "--resume" in err and "--abandon" in err
    assert ledger.read_bytes() == before


def test_resume_refuses_a_search_the_ledger_does_not_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = _ledger(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    StateRecorder(out, _state(tmp_path, ledger), PrivacyLedger.open(ledger)).close()
    code, _, err = _run(["search", "--resume", str(out)], capsys)
    assert code == 2 and "--resume" in err and "not on ledger" in err


def test_a_search_another_driver_runs_cannot_be_resumed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two drivers on one search would run more than the K trials charged."""
    out = tmp_path / "out"
    out.mkdir()
    ledger = _ledger(tmp_path)
    running = StateRecorder(out, _state(tmp_path, ledger), PrivacyLedger.open(ledger))
    try:
        code, _, err = _run(["search", "--resume", str(out)], capsys)
    finally:
        running.close()
    assert code == 2 and "another tunedp is running" in err


def _seed_with_trials(low: int, high: int) -> int:
    shape = plan_search(random_best(expected_trials=6.0)).shape
    for seed in range(1000):
        if low <= draw_trial_count(shape, np.random.default_rng(seed)) <= high:
            return seed
    raise AssertionError("no seed found")


def _completed(out: Path) -> int:
    try:
        return len(json.loads((out / STATE_DIR / "state.json").read_text())["state"]["completed"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


@pytest.mark.slow
def test_kill_mid_way_then_resume_charges_once_and_releases(ray_session: str, tmp_path: Path) -> None:
    config = random_best(expected_trials=6.0)
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    ledger_path = _ledger(tmp_path)
    out = tmp_path / "out"
    env = {**os.environ, "TUNEDP_TRACKING": "0"}
    # A seeded K (tests only) long enough to interrupt after two trials, with room for the one or two
    # that finish while the SIGTERM lands; the resumed search runs all the rest, so no longer.
    seed = _seed_with_trials(5, 7)
    first = subprocess.Popen(
        [TUNEDP, "search", "--config", str(config_path), "--ledger", str(ledger_path), "--ray-address", ray_session,
         "--max-concurrent", "1", "--seed", str(seed), "--output", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and _completed(out) < 2:
            time.sleep(0.2)
        assert _completed(out) >= 2
        first.send_signal(signal.SIGTERM)
        out1, err1 = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 143, out1 + err1
    ledger_after_charge = PrivacyLedger.open(ledger_path)
    (charge,) = ledger_after_charge.charges()
    assert charge.status == "interrupted"
    spent = ledger_after_charge.spent_epsilon()
    state = read_state(out)
    assert 2 <= len(state.completed) < state.trial_count  # mid-way: some trials done, some not
    report = (out / "report.json").read_text()
    assert json.loads(report)["best"] is None
    assert str(state.trial_count) not in json.loads(report).get("trials_note", "")

    second = subprocess.run(
        [TUNEDP, "search", "--resume", str(out), "--ray-address", ray_session, "--max-concurrent", "1"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    ledger = PrivacyLedger.open(ledger_path)
    (only,) = ledger.charges()  # one charge, the first run's
    assert only.search_id == charge.search_id and only.status == "completed"
    assert ledger.spent_epsilon() == pytest.approx(spent, rel=1e-12)
    final = json.loads((out / "report.json").read_text())
    assert final["status"] == "completed" and final["best"] is not None
    assert final["search_id"] == charge.search_id
    assert (out / "best_model.pt").is_file()
    assert not (out / STATE_DIR).exists()  # K and the other trials' models are gone
    assert second.stdout.startswith("resuming search")  # no new charge announced
    assert final["ledger"]["spent_before"] == pytest.approx(0.0, abs=1e-12)
