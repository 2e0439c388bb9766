"""Issue 10's system-level holes, each closed and pinned by a test.

- A grid that lists a value twice is refused before pricing (it was charged
  for more points than Tune runs).
- Trials draw batches, noise and initialisation independently: two trials at
  the same point no longer share Poisson batches (which made them one
  subsampled Gaussian at σ/√2, not two at σ).
- ``release: best`` leaves no trace of K: no non-best hyperparameters, no
  trial count, no duration or end time, in any file the search leaves behind
  (output folder, MLflow store, ledger, temporary folders).
- A ``--seed`` search is labelled "seeded: not private" wherever its ε appears.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from search_helpers import REPO, example_dict, grid, small_config

from tunedp.accounting.search_event import draw_trial_count
from tunedp.config import ConfigError
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.optim.poisson import poisson_indices
from tunedp.planning import plan_search
from tunedp.run.driver import search
from tunedp.run.ray_backend import trial_seed
from tunedp.run.trial import _generators

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


# ---------------------------------------------------------------------------- §7 grids


def test_a_grid_listing_a_value_twice_is_refused_before_pricing() -> None:
    with pytest.raises(ConfigError, match=r"space\.params\.momentum\.values: 0\.9 is listed more than once"):
        plan_search(grid(momenta=[0.9, 0.5, 0.9]))


def test_the_cli_refuses_a_repeated_grid_value_and_charges_nothing(tmp_path: Path) -> None:
    data = example_dict()
    data["search"] = {"mode": "grid"}
    data["space"]["params"] = {
        "step_size": {"distribution": "choice", "values": [1.0, 1.0]},
        "clip_norm": {"distribution": "fixed", "value": 1.0},
        "momentum": {"distribution": "fixed", "value": 0.9},
    }
    config = tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(data))
    ledger = tmp_path / "digits.sqlite"
    create_ledger(ledger, dataset="digits", epsilon=10.0, delta=1e-5)
    before = ledger.read_bytes()
    done = subprocess.run(
        [TUNEDP, "search", "--config", str(config), "--ledger", str(ledger), "--budget", "2"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "space.params.step_size.values" in done.stderr
    assert ledger.read_bytes() == before


# ---------------------------------------------------------------------------- §3 randomness


def test_private_trials_draw_independent_batches_noise_and_initialisation() -> None:
    first, second = _generators(None), _generators(None)
    assert first[0] != second[0]  # initialisation seed
    batches = [poisson_indices(1000, 0.1, generator=g[1]) for g in (first, second)]
    assert not torch.equal(batches[0], batches[1])
    noise = [torch.randn(8, generator=g[2]) for g in (first, second)]
    assert not torch.equal(noise[0], noise[1])


def test_seeded_trials_are_keyed_by_their_index_not_their_point() -> None:
    assert trial_seed(7, 0) != trial_seed(7, 1)
    assert trial_seed(7, 3) == trial_seed(7, 3)
    a, b = _generators(trial_seed(7, 0)), _generators(trial_seed(7, 1))
    assert not torch.equal(poisson_indices(1000, 0.1, generator=a[1]), poisson_indices(1000, 0.1, generator=b[1]))


@pytest.mark.slow
def test_two_trials_at_the_same_point_are_two_independent_runs(ray_session: str, tmp_path: Path) -> None:
    """Every hyperparameter fixed: all trials share one point, yet their runs (and scores) differ."""
    config = small_config(
        search={"mode": "random", "expected_trials": 2, "shape": 1.0, "release": "all", "max_trials": 3},
        space={
            "coupling": "lr_clip",
            "params": {
                "step_size": {"distribution": "fixed", "value": 1.0},
                "clip_norm": {"distribution": "fixed", "value": 1.0},
                "momentum": {"distribution": "fixed", "value": 0.9},
            },
        },
    )
    shape = plan_search(config).shape
    seed = next(s for s in range(1000) if draw_trial_count(shape, np.random.default_rng(s)) >= 2)
    ledger = tmp_path / "digits.sqlite"
    create_ledger(ledger, dataset="digits", epsilon=100.0, delta=1e-5)
    outcome = search(config, ledger_path=ledger, seed=seed, output_dir=tmp_path / "o")
    trials = outcome.disclosed_trials
    assert len(trials) >= 2 and len({json.dumps(t.point, sort_keys=True) for t in trials}) == 1
    # With batches and noise keyed by the point, the seeded runs were identical.
    assert len({t.released_scores for t in trials}) == len(trials)


# ---------------------------------------------------------------------------- §4 and §5: K and seeds


def _seed_with_trials(config_path: Path, low: int) -> tuple[int, int]:
    from tunedp.config import load_config

    shape = plan_search(load_config(config_path)).shape
    for seed in range(1000):
        count = draw_trial_count(shape, np.random.default_rng(seed))
        if count >= low:
            return seed, count
    raise AssertionError("no seed found")


def _files(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_release_best_leaves_no_trace_of_k_in_any_file(tmp_path: Path) -> None:
    data = example_dict()
    data["budget"] = {"epsilon": 8.0, "delta": 1e-5}
    data["training"] = {"steps": 12, "expected_batch_size": 120, "evaluations": 1}
    data["search"] = {"mode": "random", "expected_trials": 3, "shape": 1.0, "release": "best"}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    seed, count = _seed_with_trials(config, 3)
    public = tmp_path / "public"  # everything the search may leave behind lives under here
    home, temp = public / "home", public / "tmp"
    for folder in (home, temp):
        folder.mkdir(parents=True)
    ledger = public / "digits.sqlite"
    create_ledger(ledger, dataset="digits", epsilon=50.0, delta=1e-5)
    secret = tmp_path / "secret.json"  # the spy's notes: outside `public`
    env = {
        **os.environ,
        "HOME": str(home),
        "TMPDIR": str(temp),
        "TUNEDP_HOME": str(public / "tunedp"),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
    }
    env.pop("TUNEDP_TRACKING", None)
    child = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests" / "leak_child.py"),
            str(config),
            str(ledger),
            str(public / "out"),
            f"sqlite:///{public / 'mlflow' / 'mlflow.db'}",
            str(secret),
            str(seed),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=public,
    )
    stdout, stderr = child.communicate(timeout=400)
    done = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    notes = json.loads(secret.read_text())
    assert len(notes["trials"]) == count >= 3

    # Non-best hyperparameters: their exact values (and 4-digit renderings) appear nowhere.
    best = notes["best"]
    hidden = {
        text
        for trial in notes["trials"]
        if trial["point"] != best
        for value in trial["point"].values()
        if value not in best.values()
        for text in (repr(value), f"{value:.4g}")
    }
    assert hidden
    files = _files(public)
    assert any(p.suffix == ".db" for p in files) and (public / "out" / "report.json").is_file()
    console = done.stdout + done.stderr
    for path in files:
        blob = path.read_bytes().decode("latin-1")
        for text in hidden:
            assert text not in blob, f"{text} (a non-best trial's hyperparameter) is in {path}"
        if "code" not in path.parts:  # the MLflow model ships tunedp's source (public code, not data)
            assert "trial_count" not in blob and "Checkpoint successfully created" not in blob, path
        assert f"_{count - 1:05d}" not in blob, f"a Tune trial id of the K-th trial is in {path}"
    for text in hidden:
        assert text not in console
    assert f"{count} trials" not in console and "finished in" not in console
    # Ray ran in a private folder that is gone, and wrote nothing under HOME/TMPDIR.
    # (Named by the driver's pid: other Ray users of this machine may come and go meanwhile.)
    assert not list(Path("/tmp").glob(f"tdp-ray-{child.pid}-*"))
    assert not any("session_" in str(p) for p in files)

    # No duration or end time recorded: report, ledger row, MLflow run times.
    report = json.loads((public / "out" / "report.json").read_text())
    assert report["duration_s"] is None and report["finished_at"] is None
    assert len(report["started_at"]) == len("2026-01-01")
    (charge,) = PrivacyLedger.open(ledger).charges()
    with sqlite3.connect(ledger) as connection:
        (updated,) = connection.execute("SELECT updated_at FROM charges").fetchone()
    assert len(updated) == len("2026-01-01"), updated  # the UTC day only
    with sqlite3.connect(public / "mlflow" / "mlflow.db") as connection:
        times = connection.execute("SELECT start_time, end_time FROM runs").fetchall()
        metric_times = {t for (t,) in connection.execute("SELECT DISTINCT timestamp FROM metrics")}
        tags = dict(connection.execute("SELECT key, value FROM tags WHERE key = 'tunedp.privacy'").fetchall())
    day_ms = {start for start, _ in times}
    assert len(times) == 2 and {end for _, end in times} == day_ms and len(day_ms) == 1
    assert metric_times <= day_ms and next(iter(day_ms)) % 86_400_000 == 0
    assert all(int(p.stat().st_mtime) % 86_400 == 0 for p in _files(public / "out"))

    # §5: the seeded search says "seeded: not private" everywhere its ε appears.
    assert charge.seeded and "seeded: not private" in charge.mode
    assert report["privacy"]["seeded"] is True
    assert "seeded: not private" in (public / "out" / "report.txt").read_text()
    assert "seeded: not private" in done.stdout
    assert tags == {"tunedp.privacy": "seeded: not private"}
