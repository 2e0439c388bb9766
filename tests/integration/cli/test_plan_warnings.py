"""What the plan tells a user about the wait and about a budget that buys nothing (before paying)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from search_helpers import REPO, example_dict, small_config

from tunedp.config import load_config
from tunedp.planning import plan_search
from tunedp.run.preflight import learning_noise_warning

TUNEDP = str(Path(sys.executable).with_name("tunedp"))
HOPELESS = {"epochs": 3000, "expected_batch_size": 120, "evaluations": 1}


def test_a_plan_whose_noise_swamps_every_gradient_is_warned() -> None:
    config = small_config(budget={"epsilon": 1.0, "delta": 1e-5}, training=HOPELESS,
                          validation={"policy": "private", "score_noise_multiplier": 200.0})  # fmt: skip
    plan = plan_search(config)
    sigma = max(segment.noise_multiplier for segment in plan.trial.segments)
    assert sigma / plan.trial.expected_batch_size > 1  # ≈ 128 at 120
    warning = learning_noise_warning(plan)
    assert warning is not None and warning.startswith(f"training: noise multiplier σ = {sigma:.4g}")


@pytest.mark.parametrize("config", sorted((REPO / "search_spaces").glob("*.yaml")), ids=lambda p: p.stem)
def test_no_shipped_config_is_warned(config: Path) -> None:
    if config.stem == "adult_csv" and not (REPO / "data" / "adult.csv").is_file():
        config = REPO / "search_spaces" / "adult.yaml"  # the same search over the built-in rows
    assert learning_noise_warning(plan_search(load_config(config))) is None


def test_plan_shows_the_spread_of_k_and_the_warning(tmp_path: Path) -> None:
    data = example_dict()
    data["budget"] = {"epsilon": 1.0, "delta": 1e-5}
    data["training"] = HOPELESS
    data["validation"] = {"policy": "private", "score_noise_multiplier": 200.0}
    config = tmp_path / "hopeless.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "TUNEDP_HOME": str(tmp_path / "home"), "COLUMNS": "250"}
    done = subprocess.run([TUNEDP, "plan", "--config", str(config), "--no-preflight"],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    shape = plan_search(load_config(config)).shape
    median, p90 = shape.trial_count_quantile(0.5), shape.trial_count_quantile(0.9)
    assert f"median {median}, 90% of draws ≤ {p90}" in done.stdout
    assert "warning: training: noise multiplier" in done.stderr and "will not learn" in done.stderr


def test_the_plan_suggests_showing_every_trial_when_that_costs_less() -> None:
    from dp_accounting import dp_event
    from dp_accounting.rdp import rdp_privacy_accountant

    from tunedp.accounting.epsilon import RDP_ORDERS
    from tunedp.planning.single_stage import cheaper_mode_note

    few = plan_search(small_config(search={"mode": "random", "expected_trials": 2.0, "shape": 3.0, "release": "best"}))
    figures = few.figures()
    accountant = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
    composed = accountant.compose(dp_event.SelfComposedDpEvent(few.trial.dp_event(), 2)).get_epsilon(few.delta)
    assert composed < figures.search_epsilon  # two trials composed cost less than hiding K here
    note = cheaper_mode_note(figures)
    assert note is not None and f"max_trials: 2 would cost ε = {composed:.4f}" in note
    # Showing every trial of that search, recalibrated, buys a smaller σ for the same budget.
    shown = plan_search(small_config(search={"mode": "random", "expected_trials": 2.0, "shape": 3.0,
                                             "release": "all", "max_trials": 2}))  # fmt: skip
    assert shown.noise_multiplier < few.noise_multiplier
    many = plan_search(small_config(search={"mode": "random", "expected_trials": 6.0, "shape": 1.0, "release": "best"}))
    assert cheaper_mode_note(many.figures()) is None


def test_the_time_estimate_counts_the_measured_fixed_costs_and_k_s_spread() -> None:
    """What a user waits for: the measured overheads (benchmarks/overheads.py) plus K's median and tail."""
    import json

    from tunedp.run.preflight import SEARCH_OVERHEAD_S, TRIAL_OVERHEAD_S, estimate_wall_seconds

    measured = json.loads((REPO / "benchmarks" / "results" / "overheads.json").read_text())["results"]
    assert max(m["search_overhead_s"] for m in measured.values()) <= SEARCH_OVERHEAD_S
    assert max(m["trial_overhead_s"] for m in measured.values()) <= TRIAL_OVERHEAD_S

    plan = plan_search(small_config(search={"mode": "random", "expected_trials": 6.0, "shape": 1.0, "release": "best"}))
    step = 0.01
    median = estimate_wall_seconds(plan, step, 1, quantile=0.5)
    p90 = estimate_wall_seconds(plan, step, 1, quantile=0.9)
    trials_at = plan.shape.trial_count_quantile
    assert median == pytest.approx(SEARCH_OVERHEAD_S + trials_at(0.5) * (TRIAL_OVERHEAD_S + step * plan.trial.steps))
    assert p90 == pytest.approx(SEARCH_OVERHEAD_S + trials_at(0.9) * (TRIAL_OVERHEAD_S + step * plan.trial.steps))
    assert median < p90
    from search_helpers import grid as grid_config

    grid = plan_search(grid_config([0.5, 0.9]))
    assert estimate_wall_seconds(grid, step, 1) == estimate_wall_seconds(grid, step, 1, quantile=0.9)
