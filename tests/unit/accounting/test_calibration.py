"""Calibration: the σ it returns never makes the search overshoot its budget, and wastes < 1 %.

Every check recomputes ε with a fresh accountant from the returned σ; the
figure the calibration reports is not trusted. Searches are built the way the
planner builds them (schedule → segments → trial event → search event).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from dp_accounting import dp_event
from hypothesis import given, settings
from hypothesis import strategies as st

from tunedp.accounting.calibration import (
    MAX_NOISE_MULTIPLIER,
    CalibrationError,
    calibrate_noise_multiplier,
)
from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.schedule import (
    ConstantSchedule,
    CyclicSchedule,
    ExponentialSchedule,
    LinearSchedule,
    StepSchedule,
    noise_segments,
)
from tunedp.accounting.search_event import SearchShape, search_event
from tunedp.accounting.trial_event import TrialPlan

DELTA = 1e-5
Schedule = ConstantSchedule | LinearSchedule | ExponentialSchedule | StepSchedule | CyclicSchedule


def _search(
    *,
    shape: SearchShape,
    schedule: Schedule,
    q: float,
    steps: int,
    segment_steps: int,
    evaluations: int,
    score_noise: float | None,
) -> Callable[[float], dp_event.DpEvent]:
    evaluation_steps = tuple(sorted({math.ceil(steps * (i + 1) / evaluations) for i in range(evaluations)}))

    def make_event(sigma: float) -> dp_event.DpEvent:
        segments = noise_segments(schedule, base_noise_multiplier=sigma, total_steps=steps, segment_steps=segment_steps)
        trial = TrialPlan(
            dataset_size=10_000,
            sampling_rate=q,
            steps=steps,
            segments=segments,
            evaluation_steps=evaluation_steps,
            score_noise_multiplier=score_noise,
        )
        return search_event(trial.dp_event(), shape)

    return make_event


_shapes = st.one_of(
    st.builds(
        lambda mean, shape: SearchShape(
            mode="random", release="best", expected_trials=mean, max_trials=None, count_shape=shape
        ),
        st.floats(min_value=1.0, max_value=30.0),
        st.sampled_from([0.0, 1.0, math.inf]),
    ),
    st.builds(
        lambda n: SearchShape(mode="adaptive", release="all", expected_trials=n, max_trials=n),
        st.integers(1, 40),
    ),
    st.builds(lambda n: SearchShape(mode="grid", release="all", expected_trials=n, max_trials=n), st.integers(1, 20)),
)
_factor = st.floats(min_value=0.5, max_value=2.0)
_schedules = st.one_of(
    st.just(ConstantSchedule()),
    st.builds(LinearSchedule, start=_factor, end=_factor),
    st.builds(ExponentialSchedule, decay=st.floats(min_value=0.8, max_value=1.2)),
    st.builds(StepSchedule, gamma=st.sampled_from([0.5, 2.0]), every=st.integers(1, 3)),
    st.builds(CyclicSchedule, low=_factor, high=_factor, period=st.integers(2, 4)),
)


@settings(max_examples=12, deadline=None)
@given(
    shape=_shapes,
    schedule=_schedules,
    q=st.floats(min_value=0.004, max_value=0.1),
    steps=st.integers(20, 3000),
    segments=st.integers(1, 4),
    evaluations=st.integers(1, 5),
    score_noise=st.one_of(st.none(), st.floats(min_value=5.0, max_value=50.0)),
    target=st.floats(min_value=0.5, max_value=10.0),
)
def test_calibrated_search_never_overshoots_and_lands_within_one_percent(
    shape: SearchShape,
    schedule: Schedule,
    q: float,
    steps: int,
    segments: int,
    evaluations: int,
    score_noise: float | None,
    target: float,
) -> None:
    """Modes, shapes of K, schedules, lengths, private or public scores, budgets 0.5–10.

    Each distinct σ segment costs one RDP computation per pricing, so the
    number of segments is kept ≤ 4 to keep this test fast; q ≤ 0.1 covers
    Fashion-MNIST (0.0047) to digits (0.1).
    """
    make_event = _search(
        shape=shape,
        schedule=schedule,
        q=q,
        steps=steps,
        segment_steps=math.ceil(steps / segments),
        evaluations=evaluations,
        score_noise=score_noise,
    )
    try:
        result = calibrate_noise_multiplier(make_event, target_epsilon=target, delta=DELTA)
    except CalibrationError:
        # Refusing is right only if even the largest σ cannot fit.
        assert rdp_epsilon(make_event(MAX_NOISE_MULTIPLIER), DELTA) > target
        return
    spent = rdp_epsilon(make_event(result.noise_multiplier), DELTA)
    assert spent <= target
    assert spent >= 0.99 * target
    assert result.epsilon == pytest.approx(spent, rel=1e-12)
    assert 0.99 <= result.fraction_of_target <= 1.0


def test_budget_below_the_cost_of_score_releases_is_refused_with_one_line() -> None:
    """Private scores cost ε however much noise the training gets; say so, with the fix."""
    make_event = _search(
        shape=SearchShape(mode="adaptive", release="all", expected_trials=30, max_trials=30),
        schedule=ConstantSchedule(),
        q=0.01,
        steps=100,
        segment_steps=100,
        evaluations=5,
        score_noise=2.0,
    )
    with pytest.raises(CalibrationError) as caught:
        calibrate_noise_multiplier(make_event, target_epsilon=1.0, delta=DELTA)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("budget.epsilon=1 ")
    assert "score_noise_multiplier" in message


@pytest.mark.parametrize("target", [0.0, -1.0])
def test_non_positive_budget_is_refused(target: float) -> None:
    with pytest.raises(CalibrationError, match=r"budget\.epsilon"):
        calibrate_noise_multiplier(dp_event.GaussianDpEvent, target_epsilon=target, delta=DELTA)


def test_larger_budget_buys_less_noise() -> None:
    make_event = _search(
        shape=SearchShape(mode="random", release="best", expected_trials=10, max_trials=None, count_shape=1.0),
        schedule=ConstantSchedule(),
        q=0.01,
        steps=1000,
        segment_steps=100,
        evaluations=1,
        score_noise=None,
    )
    sigmas = [
        calibrate_noise_multiplier(make_event, target_epsilon=t, delta=DELTA).noise_multiplier for t in (1, 2, 4, 8)
    ]
    assert sigmas == sorted(sigmas, reverse=True)
    assert len(set(sigmas)) == 4


def test_budget_so_large_that_almost_no_noise_is_needed_still_does_not_overshoot() -> None:
    result = calibrate_noise_multiplier(dp_event.GaussianDpEvent, target_epsilon=1e9, delta=DELTA)
    assert result.noise_multiplier < 1e-3
    assert rdp_epsilon(dp_event.GaussianDpEvent(result.noise_multiplier), DELTA) <= 1e9


def test_calibrating_a_single_gaussian_matches_its_closed_form() -> None:
    """One Gaussian: ε(σ) is the conversion of α/(2σ²); the σ found must invert it."""
    result = calibrate_noise_multiplier(dp_event.GaussianDpEvent, target_epsilon=1.0, delta=DELTA)
    assert rdp_epsilon(dp_event.GaussianDpEvent(result.noise_multiplier), DELTA) <= 1.0
    # 1 % less noise must overshoot: the answer is tight, not merely safe.
    assert rdp_epsilon(dp_event.GaussianDpEvent(result.noise_multiplier * 0.99), DELTA) > 1.0


def test_no_noise_multiplier_is_priced_twice() -> None:
    """Pricing a σ (one accountant run over the whole search) is the entire cost of calibrating."""
    seen: list[float] = []

    def make_event(sigma: float) -> dp_event.DpEvent:
        seen.append(sigma)
        return dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(0.01, dp_event.GaussianDpEvent(sigma)), 500)

    calibrate_noise_multiplier(make_event, target_epsilon=2.0, delta=DELTA)
    assert len(seen) == len(set(seen))
    assert len(seen) <= 15
