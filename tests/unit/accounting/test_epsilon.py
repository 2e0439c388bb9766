"""ε of an event, checked against computations that share no code with ours.

Three independent references, each in the same test as the figure it checks:

- a closed form for the Gaussian mechanism: its RDP α/(2σ²) through the
  standard conversion (must equal our figure), and the exact Balle–Wang
  analytic δ(ε) (our RDP figure must lie above it, by a stated looseness);
- dp_accounting's PLD accountant at a fine grid for compositions of
  subsampled Gaussians (RDP ≥ PLD, and RDP ≤ 1.4 × PLD in the stated regime);
- published figures: the TF Privacy MNIST tutorial table.
"""

from __future__ import annotations

import math

import pytest
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from reference_dp import (
    analytic_gaussian_epsilon,
    epsilon_from_rdp,
    epsilon_from_rdp_classic,
    gaussian_rdp,
    subsampled_gaussian_rdp,
)

from tunedp.accounting.epsilon import RDP_ORDERS, UnsupportedEventError, pld_epsilon, rdp_epsilon
from tunedp.accounting.schedule import NoiseSegment
from tunedp.accounting.trial_event import steps_event

DELTA = 1e-5


def _reference_pld(event: dp_event.DpEvent, delta: float = DELTA, interval: float = 1e-3) -> float:
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=interval)
    return float(accountant.compose(event).get_epsilon(delta))


# ----------------------------------------------------------------------------- Gaussian: closed forms


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.0, 5.0, 20.0])
@pytest.mark.parametrize("count", [1, 10, 300])
def test_gaussian_epsilon_equals_closed_form_rdp_through_standard_conversion(sigma: float, count: int) -> None:
    """k releases of N(0, σ²): RDP is k·α/(2σ²) exactly, so our ε must equal its conversion."""
    event = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), count)
    closed_form = epsilon_from_rdp(RDP_ORDERS, [count * gaussian_rdp(a, sigma) for a in RDP_ORDERS], DELTA)
    assert rdp_epsilon(event, DELTA) == pytest.approx(closed_form, rel=1e-10)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.0, 5.0, 20.0])
@pytest.mark.parametrize("count", [1, 10])
def test_gaussian_epsilon_is_above_the_exact_analytic_gaussian_by_at_most_15_percent(sigma: float, count: int) -> None:
    """Balle–Wang gives the exact ε; RDP is an upper bound, 6–11 % loose for σ in [0.7, 20].

    k Gaussians of std σ compose exactly into one of std σ/√k.
    """
    event = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), count)
    exact = analytic_gaussian_epsilon(DELTA, sigma / math.sqrt(count))
    ours = rdp_epsilon(event, DELTA)
    assert exact <= ours <= 1.15 * exact
    # The PLD second opinion is (pessimistically) exact for a Gaussian.
    pld = pld_epsilon(event, DELTA)
    assert pld is not None
    assert exact - 1e-6 <= pld <= exact + 1e-4


# ----------------------------------------------------------------------------- subsampled Gaussian


@pytest.mark.parametrize(
    ("q", "sigma", "steps"),
    [(256 / 55000, 1.0, 12900), (0.01, 4.0, 10000), (0.1, 1.5, 300), (0.05, 0.8, 1000)],
)
def test_subsampled_gaussian_epsilon_agrees_with_integer_order_reference(q: float, sigma: float, steps: int) -> None:
    """Mironov–Talwar–Zhang's integer-order RDP, converted by the same standard bound.

    Our accountant also uses fractional and larger orders, so its ε can only be
    lower than the integer-order reference, and not by much (≤ 3 %); it must
    never fall below the (tighter) PLD figure.
    """
    event = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps)
    integer_orders = list(range(2, 64))
    reference = epsilon_from_rdp(
        integer_orders, [steps * subsampled_gaussian_rdp(q, sigma, a) for a in integer_orders], DELTA
    )
    ours = rdp_epsilon(event, DELTA)
    assert 0.97 * reference <= ours <= reference * (1 + 1e-9)
    assert ours >= _reference_pld(event)


# TF Privacy, tutorials/README.md ("Select Parameters" table; MNIST, N = 60000,
# 256 examples per step, δ = 1e-5, steps = epochs · 60000 // 256). The figures
# were computed with the classic RDP conversion at orders 1.1..10.9 and 12..63.
TF_PRIVACY_TABLE = [(1.12, 60, 2.92), (0.6, 30, 9.74), (1.2, 10, 1.20)]


@pytest.mark.parametrize(("sigma", "epochs", "published"), TF_PRIVACY_TABLE)
def test_published_tf_privacy_mnist_figures(sigma: float, epochs: int, published: float) -> None:
    """Reproduce the published ε within 1.5 % with the reference; ours is lower but above PLD.

    Our accountant uses the improved RDP → (ε, δ) conversion (Balle et al. 2020),
    which is why it reports less than the table (e.g. ≈ 2.52 vs 2.92); it must
    not report more, and must not fall below the PLD figure for the same event.
    """
    q, steps = 256 / 60000, epochs * 60000 // 256
    integer_orders = list(range(2, 64))
    rdp = [steps * subsampled_gaussian_rdp(q, sigma, a) for a in integer_orders]
    assert epsilon_from_rdp_classic(integer_orders, rdp, DELTA) == pytest.approx(published, rel=0.015)
    event = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps)
    ours = rdp_epsilon(event, DELTA)
    assert _reference_pld(event) <= ours <= published + 0.005


@settings(max_examples=10, deadline=None)
@given(
    q=st.floats(min_value=0.004, max_value=0.1),
    sigmas=st.lists(st.floats(min_value=0.7, max_value=3.0), min_size=1, max_size=3),
    epochs=st.integers(min_value=5, max_value=60),
    score_noise=st.one_of(st.none(), st.floats(min_value=2.0, max_value=50.0)),
)
def test_rdp_is_above_pld_and_at_most_40_percent_above_for_dp_sgd_compositions(
    q: float, sigmas: list[float], epochs: int, score_noise: float | None
) -> None:
    """RDP vs dp_accounting's PLD (pessimistic, grid 1e-3) for a scheduled DP-SGD trial.

    Regime where the 1.4 factor holds (measured max ≈ 1.38 on a grid): q ∈ [0.004, 0.1],
    σ ∈ [0.7, 5] (sampled up to 3), ≥ 5 epochs, ε_PLD ≥ 1.5. Outside it RDP can be looser:
    near ε_PLD = 1 (q = 0.004, σ = 0.875, 5 epochs: 1.48×, found by this test) and much more
    far below (1 epoch at q = 0.001 and ε ≈ 0.06: 11×), which is why the bound is stated.
    """
    steps = math.ceil(epochs / q)
    per_segment = [steps // len(sigmas)] * len(sigmas)
    per_segment[-1] += steps - sum(per_segment)
    segments = tuple(NoiseSegment(noise_multiplier=s, steps=n) for s, n in zip(sigmas, per_segment, strict=True))
    ours_event = steps_event(q, segments)
    by_hand: list[dp_event.DpEvent] = [
        dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(s)), n)
        for s, n in zip(sigmas, per_segment, strict=True)
    ]
    if score_noise is not None:
        ours_event = dp_event.ComposedDpEvent([ours_event, dp_event.GaussianDpEvent(score_noise)])
        by_hand.append(dp_event.GaussianDpEvent(score_noise))
    pld = _reference_pld(dp_event.ComposedDpEvent(by_hand))
    ours = rdp_epsilon(ours_event, DELTA)
    assert pld <= ours  # RDP is never below the tighter accountant, in any regime
    assume(pld >= 1.5)  # the regime where the looseness bound is stated
    assert ours <= 1.4 * pld


# ----------------------------------------------------------------------------- fail closed


@pytest.mark.parametrize(
    "event",
    [
        dp_event.UnsupportedDpEvent(),
        dp_event.ComposedDpEvent([dp_event.GaussianDpEvent(1.0), dp_event.UnsupportedDpEvent()]),
    ],
)
def test_event_the_rdp_accountant_cannot_analyse_raises_instead_of_returning_zero(
    event: dp_event.DpEvent,
) -> None:
    with pytest.raises(UnsupportedEventError):
        rdp_epsilon(event, DELTA)


def test_non_private_event_costs_infinite_epsilon() -> None:
    """A release without noise is charged ε = ∞ (so no finite budget admits it), never 0."""
    assert rdp_epsilon(dp_event.NonPrivateDpEvent(), DELTA) == math.inf
    assert (
        rdp_epsilon(dp_event.ComposedDpEvent([dp_event.GaussianDpEvent(9.0), dp_event.NonPrivateDpEvent()]), DELTA)
        == math.inf
    )


def test_pld_second_opinion_is_none_for_repeat_and_select_not_zero() -> None:
    event = dp_event.RepeatAndSelectDpEvent(dp_event.GaussianDpEvent(2.0), 5.0, 1.0)
    assert pld_epsilon(event, DELTA) is None
    assert rdp_epsilon(event, DELTA) > rdp_epsilon(dp_event.GaussianDpEvent(2.0), DELTA)


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, math.nan, math.inf])
def test_delta_outside_open_unit_interval_is_refused(delta: float) -> None:
    with pytest.raises(ValueError, match="delta"):
        rdp_epsilon(dp_event.GaussianDpEvent(1.0), delta)
    with pytest.raises(ValueError, match="delta"):
        pld_epsilon(dp_event.GaussianDpEvent(1.0), delta)


def test_epsilon_falls_as_delta_grows_and_as_sigma_grows() -> None:
    eps_by_delta = [rdp_epsilon(dp_event.GaussianDpEvent(2.0), d) for d in (1e-9, 1e-7, 1e-5, 1e-3)]
    assert eps_by_delta == sorted(eps_by_delta, reverse=True)
    eps_by_sigma = [rdp_epsilon(dp_event.GaussianDpEvent(s), DELTA) for s in (0.5, 1.0, 2.0, 8.0)]
    assert eps_by_sigma == sorted(eps_by_sigma, reverse=True)
