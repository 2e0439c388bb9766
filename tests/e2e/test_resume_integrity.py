"""Issue 23, items 6 and 7: a resume continues the charged search exactly, and only from a state tunedp wrote.

Item 7 (fast, no Ray): the secret state is authenticated under a key derived
from the charged ledger's secret key; an edited state — the issue's
``trial_count`` 63 → 6, a raised score, a swapped model file, another
search's id, an unauthenticated file — is refused by ``tunedp search
--resume`` in one line, exit 2, with the ledger byte-identical.

Item 6 (slow, real Ray): a ``two_stage`` search interrupted (SIGTERM) in
stage 1 resumes with the same stage-1 K and the same finished stage-1
trials, runs only the missing ones, and — interrupted again as its final run
starts — resumes with the final run alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from search_helpers import random_best, two_stage

import tunedp.run.ray_backend as ray_backend
from tunedp.accounting.search_event import draw_trial_count
from tunedp.accounting.staged_event import transfer_point
from tunedp.cli import main
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.planning import plan_search
from tunedp.planning.staged import StagedPlan
from tunedp.release.records import TrialRecord
from tunedp.release.selection import select_best
from tunedp.run.driver import resume_search
from tunedp.run.resume import STATE_DIR, ResumeState, StateRecorder, verified_state

TUNEDP = str(Path(sys.executable).with_name("tunedp"))
SEARCH_ID = "a" * 32


# ---------------------------------------------------------------------------- item 7: an edited state is refused


def _charged(tmp_path: Path, search_ids: tuple[str, ...] = (SEARCH_ID,)) -> tuple[Path, dict[str, Any]]:
    """A ledger holding an interrupted charge of a random/best search with mean K 30 (the issue's figures)."""
    ledger_path = tmp_path / "digits.sqlite"
    ledger = create_ledger(ledger_path, dataset="digits", epsilon=100.0, delta=1e-5)
    config = random_best(expected_trials=30.0)
    plan = plan_search(config)
    for search_id in search_ids:
        ledger.charge(plan.event, config_hash=config.fingerprint(), mode="random/best", search_id=search_id)
        ledger.set_status(search_id, "interrupted")
    return ledger_path, config.model_dump(mode="json")


def _interrupted(tmp_path: Path, config: dict[str, Any], ledger_path: Path, search_id: str = SEARCH_ID) -> Path:
    """The state an interrupted search leaves: K = 63, six finished trials, each with its model."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    state = ResumeState(search_id=search_id, config=config, ledger_path=str(ledger_path), trial_count=63, seed=None)
    recorder = StateRecorder(out, state, PrivacyLedger.open(ledger_path))
    for index in range(6):
        checkpoint = tmp_path / f"tune-trial-{index}"
        checkpoint.mkdir()
        torch.save(torch.nn.Linear(64, 10).state_dict(), checkpoint / "model.pt")
        recorder.record(
            TrialRecord(
                point={"step_size": 0.1 * (index + 1), "clip_norm": 1.0},
                hyperparameters={"lr": 0.1 * (index + 1), "clip_norm": 1.0},
                status="completed",
                released_scores=(0.5 + 0.01 * index,),
                checkpoint_path=str(checkpoint),
            )
        )
    recorder.close()
    return out


def _document(out: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((out / STATE_DIR / "state.json").read_text())
    return document


def _rewrite(out: Path, document: dict[str, Any]) -> None:
    (out / STATE_DIR / "state.json").write_text(json.dumps(document))


def _fewer_trials(out: Path) -> None:
    document = _document(out)
    document["state"]["trial_count"] = 6  # the best of the 6 finished is released at once
    _rewrite(out, document)


def _better_score(out: Path) -> None:
    document = _document(out)
    document["state"]["completed"][0]["released_scores"] = [0.99]
    _rewrite(out, document)


def _swapped_model(out: Path) -> None:
    torch.save(torch.nn.Linear(64, 10).state_dict(), out / STATE_DIR / "trial-5" / "model.pt")


def _unauthenticated(out: Path) -> None:
    _rewrite(out, _document(out)["state"])  # the bare state, as an older tunedp wrote it


def _another_search(out: Path) -> None:
    document = _document(out)
    document["state"]["search_id"] = "b" * 32  # charged on the same ledger, but this is not its state
    _rewrite(out, document)


EDITS = {
    "trial_count 63 -> 6": _fewer_trials,
    "a released score raised": _better_score,
    "a kept model swapped": _swapped_model,
    "no authentication code": _unauthenticated,
    "another search's id": _another_search,
}


def test_an_untouched_state_is_accepted_as_written(tmp_path: Path) -> None:
    ledger_path, config = _charged(tmp_path)
    out = _interrupted(tmp_path, config, ledger_path)
    state = verified_state(out, PrivacyLedger.open(ledger_path))
    assert state.trial_count == 63 and len(state.completed) == 6
    assert [r.released_scores for r in state.completed] == [(0.5 + 0.01 * i,) for i in range(6)]
    assert all(Path(r.checkpoint_path or "", "model.pt").is_file() for r in state.completed)


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_an_edited_state_is_refused_in_one_line_and_nothing_is_charged_or_run(
    tmp_path: Path, edit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger_path, config = _charged(tmp_path, (SEARCH_ID, "b" * 32))
    out = _interrupted(tmp_path, config, ledger_path)
    EDITS[edit](out)
    ledger_before = ledger_path.read_bytes()
    state_before = (out / STATE_DIR / "state.json").read_bytes()
    with pytest.raises(SystemExit) as exited:
        main(["search", "--resume", str(out)])
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    assert err.strip().count("\n") == 0 and "--resume" in err, err
    assert "modified" in err or "replaced" in err or "not an authenticated" in err, err
    assert ledger_path.read_bytes() == ledger_before  # nothing charged, no status changed
    assert (out / STATE_DIR / "state.json").read_bytes() == state_before
    assert not (out / "report.json").exists() and not (out / "best_model.pt").exists()  # nothing released


def test_an_edited_state_can_still_be_abandoned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger_path, config = _charged(tmp_path)
    out = _interrupted(tmp_path, config, ledger_path)
    _fewer_trials(out)
    with pytest.raises(SystemExit) as exited:
        main(["search", "--abandon", str(out)])
    assert exited.value.code == 0, capsys.readouterr().err
    assert not (out / STATE_DIR).exists()


# ---------------------------------------------------------------------------- item 6: a staged search resumed


def _staged_config() -> Any:
    """two_stage on digits: cheap stage-1 trials, stage-1 K drawn with mean 2.5."""
    return two_stage(fraction=0.5)


def _seed_with_stage_one_trials(low: int, high: int) -> tuple[int, int]:
    plan = plan_search(_staged_config())
    assert isinstance(plan, StagedPlan)
    for seed in range(2000):
        count = draw_trial_count(plan.selection_shape, np.random.default_rng(seed))
        if low <= count <= high:
            return seed, count
    raise AssertionError("no seed found")


def _state(out: Path) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads((out / STATE_DIR / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    state: dict[str, Any] = document.get("state", document)
    return state


@pytest.mark.slow
def test_a_staged_search_resumes_with_stage_ones_k_and_trials_then_only_its_final_run(
    ray_session: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _staged_config()
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    ledger_path = tmp_path / "digits.sqlite"
    create_ledger(ledger_path, dataset="digits", epsilon=40.0, delta=1e-5)
    out = tmp_path / "out"
    # A seeded stage-1 K (tests only) long enough to interrupt after two stage-1 trials.
    seed, stage_one_k = _seed_with_stage_one_trials(7, 10)
    first = subprocess.Popen(
        [TUNEDP, "search", "--config", str(config_path), "--ledger", str(ledger_path), "--ray-address", ray_session,
         "--max-concurrent", "1", "--seed", str(seed), "--output", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TUNEDP_TRACKING": "0"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(_state(out).get("completed", ())) < 2 and first.poll() is None:
            time.sleep(0.1)
        first.send_signal(signal.SIGTERM)
        out1, err1 = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 143, out1 + err1
    interrupted = _state(out)
    # The state holds stage 1's K (the driver's one draw) and the stage-1 trials that finished.
    assert interrupted["trial_count"] == stage_one_k, interrupted.get("trial_count")
    finished = interrupted["completed"]
    assert 2 <= len(finished) < stage_one_k and not interrupted["stage1_done"]
    assert all(record["checkpoint_path"] is None for record in finished)  # stage-1 models are never kept
    (charge,) = PrivacyLedger.open(ledger_path).charges()
    spent = PrivacyLedger.open(ledger_path).spent_epsilon()

    # What each resumed run asks Ray for (observed, then passed on to the real backend).
    calls: list[tuple[str, int]] = []
    real_run_trials = ray_backend.run_trials
    interrupt_final_run = [True]

    def observed(plan: Any, *, trial_count: int, **kwargs: Any) -> Any:
        calls.append((plan.shape.mode, trial_count))
        if plan.shape.mode == "grid" and interrupt_final_run[0]:
            raise KeyboardInterrupt  # Ctrl-C as the final run starts
        return real_run_trials(plan, trial_count=trial_count, **kwargs)

    monkeypatch.setattr(ray_backend, "run_trials", observed)
    with pytest.raises(KeyboardInterrupt):
        resume_search(out, ray_address=ray_session, max_concurrent=1)
    # Only the missing stage-1 trials ran (same K), then the final run was about to start.
    assert calls == [("random", stage_one_k - len(finished)), ("grid", 1)]
    stage_one_over = _state(out)
    assert stage_one_over["trial_count"] == stage_one_k
    assert stage_one_over["completed"][: len(finished)] == finished  # the earlier trials, unchanged
    assert len(stage_one_over["completed"]) == stage_one_k and stage_one_over["stage1_done"]
    records = [TrialRecord(**record) for record in stage_one_over["completed"]]
    selected = select_best(records)
    assert selected is not None and stage_one_over["stage1_selected"]["point"] == selected.point

    # Resumed again: the final run alone, at the point stage 1 selected; one charge, never charged again.
    calls.clear()
    interrupt_final_run[0] = False
    outcome = resume_search(out, ray_address=ray_session, max_concurrent=1)
    assert calls == [("grid", 1)]
    plan = plan_search(config)
    assert isinstance(plan, StagedPlan)
    assert outcome.best is not None
    expected = transfer_point(selected.point, plan.transfer_factor)
    assert outcome.best.point == pytest.approx(expected, rel=1e-12)
    ledger = PrivacyLedger.open(ledger_path)
    (only,) = ledger.charges()
    assert only.search_id == charge.search_id and only.status == "completed"
    assert ledger.spent_epsilon() == pytest.approx(spent, rel=1e-12)
    assert not (out / STATE_DIR).exists()
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "completed" and report["best"] is not None
