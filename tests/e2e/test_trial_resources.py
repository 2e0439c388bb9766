"""Per-trial resources: CPUs and (fractional) GPUs are scheduled by Ray, checked before trials run.

GPU scheduling is tested here with Ray's *logical* GPUs (this machine has
no CUDA); the CUDA placement path runs only where CUDA is available and is
reported as skipped elsewhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from search_helpers import REPO, random_all, small_config

from tunedp.accounting.search_event import draw_trial_count
from tunedp.config import ConfigError, Resources
from tunedp.config.space import optimizer_hyperparameters
from tunedp.planning import plan_search
from tunedp.run.trial import TrialError, TrialSettings, run_trial

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


def test_resources_default_to_one_cpu_and_no_gpu() -> None:
    assert small_config().resources == Resources(cpus=1.0, gpus=0.0)


def test_a_negative_gpu_request_is_refused_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"resources\.gpus"):
        small_config(resources={"gpus": -1})
    done = subprocess.run(
        [TUNEDP, "search", "--config", str(REPO / "search_spaces" / "example.yaml"), "--gpus-per-trial", "-1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "--gpus-per-trial" in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.slow
def test_the_cluster_must_have_what_a_trial_asks_for(ray_session: str) -> None:
    from tunedp.run.ray_backend import check_resources

    assert check_resources(Resources(cpus=1, gpus=0)) == 2
    assert check_resources(Resources(cpus=2, gpus=0)) == 1
    with pytest.raises(
        ConfigError, match=r"resources\.gpus \(--gpus-per-trial\) = 0\.5 per trial but the Ray cluster has 0 GPUs"
    ):
        check_resources(Resources(cpus=1, gpus=0.5))
    with pytest.raises(ConfigError, match=r"resources\.cpus \(--cpus-per-trial\) = 4 per trial .*; give at most 2$"):
        check_resources(Resources(cpus=4, gpus=0))


@pytest.mark.slow
def test_trials_asking_for_half_a_gpu_share_ray_s_logical_gpu(tmp_path: Path) -> None:
    shape = plan_search(random_all(expected_trials=2.0, max_trials=2)).shape
    seed = next(s for s in range(1000) if draw_trial_count(shape, np.random.default_rng(s)) == 2)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "resources_child.py"), str(tmp_path), str(seed)],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    trials = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(trials) == 2 and all(t["status"] == "completed" for t in trials)
    assert all(t["gpu_ids"] for t in trials), trials  # Ray assigned each trial a (logical) GPU
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert {t["device"] for t in trials} == {expected}


def _settings(device: str) -> TrialSettings:
    config = small_config()
    plan = plan_search(config)
    point = {"step_size": 0.5, "clip_norm": 1.0}
    return TrialSettings(
        workload="digits",
        optimizer="dp_sgd",
        hyperparameters=optimizer_hyperparameters(point, config),
        plan=plan.trial,
        seed=1,
        device=device,
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the refusal does not apply")
def test_asking_for_cuda_without_cuda_is_a_one_line_trial_error() -> None:
    with pytest.raises(TrialError, match="device: 'cuda' requested but torch sees no CUDA device"):
        run_trial(_settings("cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="SKIPPED: no CUDA device here; CUDA placement untested")
def test_a_trial_trains_on_cuda_and_returns_a_cpu_model() -> None:
    result = run_trial(dataclasses.replace(_settings("cuda"), seed=None))
    assert all(t.device.type == "cpu" for t in result.model_state.values())
    assert 0.0 <= result.final_score <= 1.0
