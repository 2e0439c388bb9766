"""Noise schedules: the σ_t the optimizer uses is the σ_t the accountant composes.

The schedule module is the single source of truth for σ_t, so these tests pin
its output against the formulas written in each schedule's docstring (typed
out here by hand, not recomputed with the module's own ``factor``), check that
run-length merging loses nothing, and that ``noise_multiplier_at`` (the
optimizer's view) agrees with the segments (the accountant's view) step by step.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tunedp.accounting.schedule import (
    ConstantSchedule,
    CyclicSchedule,
    ExponentialSchedule,
    LinearSchedule,
    NoiseSegment,
    StepSchedule,
    noise_multiplier_at,
    noise_segments,
)

Schedule = ConstantSchedule | LinearSchedule | ExponentialSchedule | StepSchedule | CyclicSchedule


def _segments(schedule: Schedule, base: float, total: int, every: int) -> list[tuple[float, int]]:
    out = noise_segments(schedule, base_noise_multiplier=base, total_steps=total, segment_steps=every)
    return [(s.noise_multiplier, s.steps) for s in out]


def _documented_factor(schedule: Schedule, index: int, count: int) -> float:
    """The per-segment factor exactly as each schedule's docstring states it."""
    if isinstance(schedule, ConstantSchedule):
        return 1.0
    if isinstance(schedule, LinearSchedule):
        if count == 1:
            return schedule.start
        return schedule.start + (schedule.end - schedule.start) * index / (count - 1)
    if isinstance(schedule, ExponentialSchedule):
        return schedule.start * schedule.decay**index
    if isinstance(schedule, StepSchedule):
        return schedule.start * schedule.gamma ** (index // schedule.every)
    phase = (index % schedule.period) / schedule.period
    return schedule.low + (schedule.high - schedule.low) * abs(2 * phase - 1)


# ----------------------------------------------------------------------------- documented values


def test_constant_schedule_is_one_segment_of_base_sigma() -> None:
    assert _segments(ConstantSchedule(), 2.0, 10, 3) == [(2.0, 10)]


def test_linear_schedule_goes_from_start_to_end_across_segments() -> None:
    # 3 segments of 3 steps: factors 1, 2, 3 times σ = 2.
    assert _segments(LinearSchedule(start=1.0, end=3.0), 2.0, 9, 3) == [(2.0, 3), (4.0, 3), (6.0, 3)]


def test_linear_schedule_with_one_segment_uses_start() -> None:
    assert _segments(LinearSchedule(start=1.5, end=3.0), 2.0, 4, 10) == [(3.0, 4)]


def test_exponential_schedule_decays_geometrically_and_last_segment_is_partial() -> None:
    # 7 steps in segments of 2: 4 segments, the last one of 1 step.
    assert _segments(ExponentialSchedule(start=2.0, decay=0.5), 1.0, 7, 2) == [
        (2.0, 2),
        (1.0, 2),
        (0.5, 2),
        (0.25, 1),
    ]


def test_step_schedule_is_a_staircase_and_equal_neighbours_merge() -> None:
    # factors 1, 1, 2, 2, 4 per 1-step segment: equal neighbours become one segment.
    assert _segments(StepSchedule(start=1.0, gamma=2.0, every=2), 1.0, 5, 1) == [(1.0, 2), (2.0, 2), (4.0, 1)]


def test_cyclic_schedule_starts_high_falls_to_low_at_half_period() -> None:
    # period 4: phases 0, 1/4, 1/2, 3/4 -> high, mid, low, mid, then again.
    assert _segments(CyclicSchedule(low=1.0, high=3.0, period=4), 1.0, 8, 1) == [
        (3.0, 1),
        (2.0, 1),
        (1.0, 1),
        (2.0, 1),
        (3.0, 1),
        (2.0, 1),
        (1.0, 1),
        (2.0, 1),
    ]


# ----------------------------------------------------------------------------- properties

_factor = st.floats(min_value=0.2, max_value=5.0)
_schedules = st.one_of(
    st.just(ConstantSchedule()),
    st.builds(LinearSchedule, start=_factor, end=_factor),
    st.builds(ExponentialSchedule, start=_factor, decay=st.floats(min_value=0.5, max_value=1.5)),
    st.builds(StepSchedule, start=_factor, gamma=st.sampled_from([0.5, 1.0, 2.0]), every=st.integers(1, 4)),
    st.builds(CyclicSchedule, low=_factor, high=_factor, period=st.integers(2, 6)),
)


@settings(max_examples=60, deadline=None)
@given(
    schedule=_schedules,
    base=st.floats(min_value=0.3, max_value=20.0),
    total=st.integers(1, 300),
    every=st.integers(1, 50),
)
def test_segments_match_documented_sigma_at_every_step(schedule: Schedule, base: float, total: int, every: int) -> None:
    """Every step's σ (both views) is base × the documented factor of its segment."""
    segments = noise_segments(schedule, base_noise_multiplier=base, total_steps=total, segment_steps=every)
    count = math.ceil(total / every)
    assert sum(s.steps for s in segments) == total
    assert all(s.steps >= 1 for s in segments)
    # Merged: no two neighbours share σ (the smallest exact description).
    assert all(a.noise_multiplier != b.noise_multiplier for a, b in itertools.pairwise(segments))
    expanded = [s.noise_multiplier for s in segments for _ in range(s.steps)]
    for step in range(total):
        expected = base * _documented_factor(schedule, step // every, count)
        assert expanded[step] == pytest.approx(expected, rel=1e-12)
        assert noise_multiplier_at(segments, step) == expanded[step]
    with pytest.raises(ValueError, match="past the end"):
        noise_multiplier_at(segments, total)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("base", "total", "every", "match"),
    [
        (1.0, 0, 1, "total_steps"),
        (1.0, 10, 0, "segment_steps"),
        (0.0, 10, 1, "base_noise_multiplier"),
        (-1.0, 10, 1, "base_noise_multiplier"),
        (math.nan, 10, 1, "base_noise_multiplier"),
        (math.inf, 10, 1, "base_noise_multiplier"),
    ],
)
def test_invalid_geometry_or_sigma_is_refused(base: float, total: int, every: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        noise_segments(ConstantSchedule(), base_noise_multiplier=base, total_steps=total, segment_steps=every)


def test_schedule_that_underflows_to_zero_sigma_is_refused() -> None:
    """σ = 0 would mean ε = ∞; the schedule must refuse rather than emit it."""
    with pytest.raises(ValueError, match="must stay > 0"):
        noise_segments(ExponentialSchedule(decay=1e-200), base_noise_multiplier=1e-200, total_steps=3, segment_steps=1)


def test_schedule_that_overflows_sigma_is_refused() -> None:
    with pytest.raises(ValueError, match="must stay > 0"):
        noise_segments(ExponentialSchedule(decay=1e200), base_noise_multiplier=1e200, total_steps=3, segment_steps=1)


def test_negative_step_is_refused() -> None:
    segments = (NoiseSegment(noise_multiplier=1.0, steps=3),)
    with pytest.raises(ValueError, match="step=-1"):
        noise_multiplier_at(segments, -1)


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (LinearSchedule, {"end": 0.0}),
        (ExponentialSchedule, {"decay": -1.0}),
        (StepSchedule, {"gamma": 2.0, "every": 0}),
        (CyclicSchedule, {"low": 1.0, "high": 2.0, "period": 1}),
        (ConstantSchedule, {"sigma": 1.0}),
        (LinearSchedule, {"end": True}),
    ],
)
def test_schedule_models_refuse_nonpositive_or_unknown_fields(model: type, fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        model(**fields)


def test_schedule_models_are_frozen() -> None:
    schedule = LinearSchedule(end=2.0)
    with pytest.raises(ValidationError):
        schedule.end = 3.0
