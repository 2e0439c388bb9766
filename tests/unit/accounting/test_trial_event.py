"""One trial's DpEvent: the run-length (segment) form must cost exactly what the steps cost.

``TrialPlan.dp_event`` compresses T steps into one ``SelfComposedDpEvent`` per
σ segment. These tests rebuild the same trial by hand, one event per step with
σ_t typed out from the schedule's documented formula, and check both
accountants give the same ε — so the compression can never drop a step, a
release, or the schedule.
"""

from __future__ import annotations

import math

import pytest
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.schedule import CyclicSchedule, NoiseSegment, noise_segments
from tunedp.accounting.trial_event import TrialPlan, steps_event

DELTA = 1e-5


def _pld(event: dp_event.DpEvent) -> float:
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-3)
    return float(accountant.compose(event).get_epsilon(DELTA))


def _cyclic_trial(*, score_noise: float | None) -> TrialPlan:
    segments = noise_segments(
        CyclicSchedule(low=1.0, high=2.0, period=4), base_noise_multiplier=1.5, total_steps=20, segment_steps=3
    )
    return TrialPlan(
        dataset_size=1000,
        sampling_rate=0.05,
        steps=20,
        segments=segments,
        evaluation_steps=(7, 14, 20),
        score_noise_multiplier=score_noise,
    )


def _hand_built_steps() -> list[dp_event.DpEvent]:
    """20 steps in 3-step segments of a period-4 triangle wave between 1σ and 2σ, σ = 1.5."""
    factors = [2.0, 1.5, 1.0, 1.5]  # phases 0, 1/4, 1/2, 3/4
    return [
        dp_event.PoissonSampledDpEvent(0.05, dp_event.GaussianDpEvent(1.5 * factors[(t // 3) % 4])) for t in range(20)
    ]


def test_trial_event_costs_the_same_as_one_event_per_step() -> None:
    trial = _cyclic_trial(score_noise=7.0)
    by_hand = dp_event.ComposedDpEvent([*_hand_built_steps(), *[dp_event.GaussianDpEvent(7.0)] * 3])
    assert rdp_epsilon(trial.dp_event(), DELTA) == pytest.approx(rdp_epsilon(by_hand, DELTA), rel=1e-9)
    # PLD composes the two forms by different FFT paths; the discretisation makes them agree to ~1 %.
    assert _pld(trial.dp_event()) == pytest.approx(_pld(by_hand), rel=0.02)


def test_public_validation_costs_only_the_training_steps() -> None:
    trial = _cyclic_trial(score_noise=None)
    assert trial.score_releases == 0
    by_hand = dp_event.ComposedDpEvent(_hand_built_steps())
    assert rdp_epsilon(trial.dp_event(), DELTA) == pytest.approx(rdp_epsilon(by_hand, DELTA), rel=1e-9)


def test_each_private_score_release_adds_cost() -> None:
    """The validation scores are charged: more releases, or less score noise, cost more."""
    segments = (NoiseSegment(noise_multiplier=1.5, steps=20),)
    eps = [
        rdp_epsilon(
            TrialPlan(
                dataset_size=1000,
                sampling_rate=0.05,
                steps=20,
                segments=segments,
                evaluation_steps=ev,
                score_noise_multiplier=sn,
            ).dp_event(),
            DELTA,
        )
        for ev, sn in [((20,), None), ((20,), 10.0), ((10, 20), 10.0), ((10, 20), 2.0)]
    ]
    assert eps == sorted(eps)
    assert len(set(eps)) == 4


def test_steps_event_is_one_self_composition_per_segment() -> None:
    segments = (NoiseSegment(noise_multiplier=2.0, steps=5), NoiseSegment(noise_multiplier=1.0, steps=3))
    assert steps_event(0.1, segments) == dp_event.ComposedDpEvent(
        [
            dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(0.1, dp_event.GaussianDpEvent(2.0)), 5),
            dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(0.1, dp_event.GaussianDpEvent(1.0)), 3),
        ]
    )
    assert steps_event(0.1, ()) == dp_event.NoOpDpEvent()


def test_expected_batch_size_is_q_times_n() -> None:
    assert _cyclic_trial(score_noise=None).expected_batch_size == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"dataset_size": 0}, "dataset_size"),
        ({"sampling_rate": 0.0}, "sampling_rate"),
        ({"sampling_rate": 1.5}, "sampling_rate"),
        ({"steps": 21}, "cover exactly"),
        ({"evaluation_steps": (0, 20)}, "evaluation steps"),
        ({"evaluation_steps": (21,)}, "evaluation steps"),
        ({"evaluation_steps": (14, 7)}, "strictly increasing"),
        ({"evaluation_steps": (7, 7)}, "strictly increasing"),
        ({"score_noise_multiplier": 0.0}, "score_noise_multiplier"),
        ({"score_noise_multiplier": math.nan}, "score_noise_multiplier"),
        ({"score_noise_multiplier": math.inf}, "score_noise_multiplier"),
    ],
)
def test_inconsistent_trial_plan_is_refused(changes: dict[str, object], match: str) -> None:
    fields: dict[str, object] = dict(
        dataset_size=1000,
        sampling_rate=0.05,
        steps=20,
        segments=(NoiseSegment(noise_multiplier=1.0, steps=20),),
        evaluation_steps=(7, 14, 20),
        score_noise_multiplier=5.0,
    )
    fields.update(changes)
    with pytest.raises(ValueError, match=match):
        TrialPlan(**fields)  # type: ignore[arg-type]


def test_segment_of_zero_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="segment steps"):
        steps_event(0.1, (NoiseSegment(noise_multiplier=1.0, steps=0),))
