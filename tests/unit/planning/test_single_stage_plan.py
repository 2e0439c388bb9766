"""Planning: a config becomes a calibrated search whose charged event we can rebuild by hand.

Each plan's event is rebuilt here directly from dp_accounting's event classes,
from numbers derived by hand from the config and the declared workload sizes
(not from the planner's own helpers), and priced with a fresh accountant.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from dp_accounting import dp_event

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.config import ConfigError, parse_config
from tunedp.planning import plan_search
from tunedp.planning.single_stage import MAX_GRID_POINTS, SearchPlan, grid_points
from tunedp.workloads import resolve_workload

BASE: dict[str, Any] = {
    "workload": "digits",
    "budget": {"epsilon": 3.0, "delta": 1.0e-5},
    "search": {"mode": "random", "expected_trials": 4, "shape": 1.0},
    "training": {"epochs": 10, "expected_batch_size": 120, "evaluations": 2},
    "validation": {"policy": "private", "score_noise_multiplier": 20.0},
    "optimizer": "dp_sgd",
    "space": {
        "coupling": "lr_clip",
        "params": {
            "step_size": {"distribution": "log_uniform", "low": 0.5, "high": 8.0},
            "clip_norm": {"distribution": "log_uniform", "low": 0.1, "high": 5.0},
        },
    },
}
GRID_PARAMS = {
    "step_size": {"distribution": "choice", "values": [0.5, 1.0, 2.0]},
    "clip_norm": {"distribution": "choice", "values": [0.1, 1.0]},
    "momentum": {"distribution": "fixed", "value": 0.9},
}


PUBLIC_VALIDATION = "workload_fixtures:DIGITS_PUBLIC_VALIDATION"
"""Real digits declared with a public validation source (tests/workload_fixtures.py)."""


def _config(**sections: Any) -> Any:
    data = copy.deepcopy(BASE)
    for key, value in sections.items():
        data[key] = value
    return parse_config(data)


def _hand_built_trial(sigma: float, *, q: float, steps: int, score_noise: float | None, releases: int) -> Any:
    training = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps)
    if score_noise is None:
        return training
    return dp_event.ComposedDpEvent(
        [training, dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(score_noise), releases)]
    )


@pytest.fixture(scope="module")
def random_plan() -> SearchPlan:
    return plan_search(_config())


def test_random_plan_charges_repeat_and_select_of_the_hand_built_trial(random_plan: SearchPlan) -> None:
    """digits: 1200 training examples, batch 120 -> q = 0.1, 10 steps/epoch, 100 steps, scores at 50 and 100."""
    assert random_plan.trial.sampling_rate == pytest.approx(0.1)
    assert random_plan.trial.steps == 100
    assert random_plan.trial.evaluation_steps == (50, 100)
    trial = _hand_built_trial(random_plan.noise_multiplier, q=0.1, steps=100, score_noise=20.0, releases=2)
    search = dp_event.RepeatAndSelectDpEvent(trial, 4.0, 1.0)
    epsilon = rdp_epsilon(search, 1e-5)
    assert 0.99 * 3.0 <= epsilon <= 3.0
    assert random_plan.search_epsilon == pytest.approx(epsilon, rel=1e-12)
    assert random_plan.trial_epsilon == pytest.approx(rdp_epsilon(trial, 1e-5), rel=1e-12)
    assert random_plan.naive_epsilon == pytest.approx(
        rdp_epsilon(dp_event.SelfComposedDpEvent(trial, 4), 1e-5), rel=1e-12
    )


def test_plan_json_is_strict_json_and_consistent_with_the_plan(random_plan: SearchPlan) -> None:
    figures = random_plan.to_json()
    text = json.dumps(figures, allow_nan=False)
    assert json.loads(text) == figures
    assert figures["noise_multiplier"] == random_plan.noise_multiplier
    assert figures["schedule"] == [{"noise_multiplier": random_plan.noise_multiplier, "steps": 100}]
    assert figures["max_trials"] is None
    assert figures["expected_trials"] == 4.0
    assert figures["shape"] == 1.0
    assert figures["score_releases"] == 2
    assert figures["pld_search_epsilon"] is None  # PLD cannot price repeat-and-select
    assert figures["search_epsilon"] <= figures["budget_epsilon"]


def test_poisson_shape_is_written_as_inf_in_strict_json() -> None:
    plan = plan_search(_config(search={"mode": "random", "expected_trials": 4, "distribution": "poisson"}))
    figures = plan.to_json()
    assert figures["shape"] == "inf"
    json.dumps(figures, allow_nan=False)
    assert plan.event == dp_event.RepeatAndSelectDpEvent(plan.trial.dp_event(), 4.0, math.inf)


def test_adaptive_plan_charges_the_composition_of_every_trial() -> None:
    plan = plan_search(_config(search={"mode": "adaptive", "max_trials": 6}))
    trial = _hand_built_trial(plan.noise_multiplier, q=0.1, steps=100, score_noise=20.0, releases=2)
    assert plan.event == dp_event.SelfComposedDpEvent(plan.trial.dp_event(), 6)
    assert plan.search_epsilon == pytest.approx(rdp_epsilon(dp_event.SelfComposedDpEvent(trial, 6), 1e-5))
    assert plan.search_epsilon <= 3.0
    figures = plan.to_json()
    assert (figures["max_trials"], figures["shape"], figures["pld_search_epsilon"] is not None) == (6, None, True)


def test_grid_plan_charges_one_trial_per_grid_point() -> None:
    config = _config(search={"mode": "grid"}, space={"coupling": "lr_clip", "params": GRID_PARAMS})
    assert len(grid_points(config)) == 6
    plan = plan_search(config)
    assert plan.event == dp_event.SelfComposedDpEvent(plan.trial.dp_event(), 6)
    assert plan.search_epsilon <= 3.0


def test_random_search_showing_all_trials_costs_more_than_showing_the_best() -> None:
    plan = plan_search(_config(search={"mode": "random", "expected_trials": 4, "release": "all", "max_trials": 12}))
    assert plan.event == dp_event.SelfComposedDpEvent(plan.trial.dp_event(), 12)
    assert plan.best_release_epsilon is not None
    assert plan.best_release_epsilon < plan.search_epsilon <= 3.0


def test_noise_schedule_reaches_the_trial_per_epoch() -> None:
    """A linear schedule over 4 epochs of 10 steps: four segments, σ rising 1× → 2× of the base."""
    training = {**BASE["training"], "epochs": 4, "noise_schedule": {"kind": "linear", "start": 1.0, "end": 2.0}}
    plan = plan_search(_config(training=training))
    sigmas = [s.noise_multiplier for s in plan.trial.segments]
    assert [s.steps for s in plan.trial.segments] == [10] * 4
    base = plan.noise_multiplier
    assert sigmas == pytest.approx([base * (1 + i / 3) for i in range(4)])
    by_hand = dp_event.ComposedDpEvent(
        [
            *[
                dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(0.1, dp_event.GaussianDpEvent(s)), 10)
                for s in sigmas
            ],
            dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(20.0), 2),
        ]
    )
    assert plan.search_epsilon == pytest.approx(
        rdp_epsilon(dp_event.RepeatAndSelectDpEvent(by_hand, 4.0, 1.0), 1e-5), rel=1e-9
    )


def test_public_validation_releases_are_free_and_buy_less_noise(random_plan: SearchPlan) -> None:
    plan = plan_search(_config(workload=PUBLIC_VALIDATION, validation={"policy": "public"}))
    assert plan.trial.score_releases == 0
    assert plan.to_json()["score_noise_multiplier"] is None
    assert plan.noise_multiplier < random_plan.noise_multiplier


def test_steps_and_sampling_rate_can_be_given_directly() -> None:
    plan = plan_search(_config(training={"steps": 37, "sampling_rate": 0.05, "evaluations": 3}))
    assert (plan.trial.steps, plan.trial.sampling_rate) == (37, 0.05)
    assert plan.trial.evaluation_steps == (13, 25, 37)


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "delta above 1/n": ({"budget": {"epsilon": 2.0, "delta": 1e-3}}, "budget.delta=0.001 exceeds 1/n"),
    "unknown workload": ({"workload": "cifar10"}, "workload: unknown workload 'cifar10'"),
    "batch above the training split": (
        {"training": {"epochs": 1, "expected_batch_size": 5000}},
        "training.expected_batch_size=5000 exceeds",
    ),
    "more evaluations than steps": (
        {"training": {"steps": 3, "sampling_rate": 0.1, "evaluations": 5}},
        "training.evaluations=5",
    ),
    "grid too large": (
        {
            "search": {"mode": "grid"},
            "space": {
                "coupling": "lr_clip",
                "params": {
                    "step_size": {"distribution": "choice", "values": [float(i + 1) for i in range(101)]},
                    "clip_norm": {"distribution": "choice", "values": [float(i + 1) for i in range(100)]},
                },
            },
        },
        f"at most {MAX_GRID_POINTS}",
    ),
    "budget below the cost of the score releases": (
        {"budget": {"epsilon": 0.05, "delta": 1e-5}},
        "budget.epsilon=0.05 is below",
    ),
}


@pytest.mark.parametrize(("sections", "expected"), list(REFUSED.values()), ids=list(REFUSED))
def test_plan_refuses_with_one_line_naming_the_field(sections: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        plan_search(_config(**sections))
    assert "\n" not in str(caught.value)
    assert expected in str(caught.value)


def test_declared_sizes_drive_the_delta_check() -> None:
    sizes = resolve_workload("fashion_mnist").sizes
    assert sizes.protected == sizes.train + sizes.validation == 60000
    plan_search(_config(workload="fashion_mnist", budget={"epsilon": 3.0, "delta": 1 / 60000}))
    with pytest.raises(
        ConfigError, match=r"budget.delta=1.66669e-05 exceeds 1/n = 1.67e-05 for 60000 protected examples"
    ):
        plan_search(_config(workload="fashion_mnist", budget={"epsilon": 3.0, "delta": 1 / 59999}))
    with pytest.raises(ConfigError, match="workload"):
        resolve_workload("nope")


@pytest.mark.parametrize("workload", ["digits", "adult", "fashion_mnist"])
def test_public_validation_is_refused_for_validation_carved_from_protected_data(workload: str) -> None:
    """Issue 10 §2: exact validation scores are uncharged releases; only a separate public source allows them."""
    with pytest.raises(ConfigError) as error:
        plan_search(_config(workload=workload, validation={"policy": "public"}))
    message = str(error.value)
    assert "\n" not in message and message.startswith("validation.policy: public needs a validation split")
    assert f"carves it from dataset {workload!r}" in message


def test_absurd_budget_plans_quickly_without_the_pld_second_opinion() -> None:
    """ε = 1e6 calibrates to σ ≈ 0.008, where one PLD second opinion would take minutes."""
    plan = plan_search(
        _config(workload=PUBLIC_VALIDATION, budget={"epsilon": 1e6, "delta": 1e-5}, validation={"policy": "public"})
    )
    assert plan.noise_multiplier < 0.1
    figures = plan.to_json()
    assert (figures["pld_trial_epsilon"], figures["pld_search_epsilon"], figures["pld_naive_epsilon"]) == (
        None,
        None,
        None,
    )
    assert figures["search_epsilon"] <= 1e6
