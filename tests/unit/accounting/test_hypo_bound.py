"""The charge of a ``hypo`` search: DP-HyPO's Theorem 1 (Wang et al., NeurIPS 2023).

Checked three ways: (a) at C = c it is exactly the repeat-and-select bound
dp_accounting computes for ``RepeatAndSelectDpEvent`` (Papernot & Steinke,
Theorem 2), curve for curve; (b) it equals the theorem written out here from
the paper, on a trial with a closed-form RDP curve, with γ, the monotone
envelope and RDP → (ε, δ) all from ``reference_dp`` (no dp_accounting, no
tunedp); (c) the paper prints no table of ε′ values we could check a figure
against (its figures are utility curves), so the figure checked is the one its
text does state: log(C/c) enters the RDP bound with the factor
α/(α − 1) + 1 + θ, order by order. The event is then stored, composed on a
real ledger, calibrated, and refused by everything that cannot price it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_dp import epsilon_from_rdp, gaussian_rdp, hypo_rdp_theorem_1

from tunedp.accounting.calibration import calibrate_noise_multiplier
from tunedp.accounting.epsilon import RDP_ORDERS, pld_epsilon, rdp_accountant, rdp_epsilon
from tunedp.accounting.hypo import HypoDpEvent, hypo_epsilon, hypo_gamma, hypo_rdp
from tunedp.accounting.search_event import SearchShape, draw_trial_count, search_event, tnb_gamma
from tunedp.accounting.serialization import EventDecodeError, event_from_json, event_to_json
from tunedp.errors import CalibrationError
from tunedp.ledger.sqlite import PrivacyLedger

DELTA = 1e-5


def _subsampled_trial(sigma: float) -> dp_event.DpEvent:
    """A digits-sized trial: 90 Poisson-sampled steps at q = 1/6 and one private score (σ_score = 5)."""
    steps = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(1 / 6, dp_event.GaussianDpEvent(sigma)), 90)
    return dp_event.ComposedDpEvent([steps, dp_event.GaussianDpEvent(5.0)])


def _curve(event: dp_event.DpEvent, accountant: rdp_privacy_accountant.RdpAccountant | None = None) -> np.ndarray:
    accountant = accountant or rdp_accountant()
    return np.asarray(accountant.compose(event)._rdp, dtype=np.float64)


# ----------------------------------------------------------------------------- (a) C = c is repeat-and-select


@pytest.mark.parametrize("trial", [dp_event.GaussianDpEvent(2.0), _subsampled_trial(1.0), _subsampled_trial(6.0)])
@pytest.mark.parametrize(("mean", "shape"), [(1.0, 1.0), (4.0, 1.0), (10.0, 0.0), (3.0, 2.5), (40.0, 0.5)])
def test_at_c_equal_to_big_c_it_is_dp_accountings_repeat_and_select(
    trial: dp_event.DpEvent, mean: float, shape: float
) -> None:
    """Same orders, same γ, same formula: the curves agree to round-off (the sums run in another order)."""
    plain = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
    reference = _curve(dp_event.RepeatAndSelectDpEvent(trial, mean, shape), plain)
    ours = _curve(HypoDpEvent(trial, mean, shape, 1.0))
    np.testing.assert_allclose(ours, reference, rtol=1e-13, atol=0)
    assert hypo_epsilon(HypoDpEvent(trial, mean, shape, 1.0), DELTA, orders=RDP_ORDERS) == pytest.approx(
        plain.get_epsilon(DELTA), rel=1e-12
    )


def test_the_driver_draws_k_with_the_gamma_the_charge_assumed() -> None:
    """One γ everywhere: the plan's, the accountant's and the one K is drawn with (dp_accounting's solver)."""
    shape = SearchShape(
        mode="hypo", release="best", expected_trials=6.0, max_trials=None, count_shape=1.0, density_ratio=1.2
    )
    assert hypo_gamma(6.0, 1.0) == tnb_gamma(6.0, 1.0)
    rng = np.random.default_rng(7)
    draws = np.array([draw_trial_count(shape, rng) for _ in range(20_000)])
    assert draws.min() >= 1
    assert draws.mean() == pytest.approx(6.0, rel=0.03)  # geometric with mean 1/γ = 6: std of the mean ≈ 0.04


# ----------------------------------------------------------------------------- (b) the theorem written out here


@settings(max_examples=30, deadline=None)
@given(
    sigma=st.floats(min_value=0.7, max_value=20.0),
    releases=st.integers(min_value=1, max_value=5),
    mean=st.floats(min_value=1.5, max_value=60.0),
    shape=st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.0]),
    ratio=st.floats(min_value=1.0, max_value=5.0),
)
def test_matches_theorem_1_written_from_the_paper(
    sigma: float, releases: int, mean: float, shape: float, ratio: float
) -> None:
    """Trial = ``releases`` Gaussian releases: RDP releases·α/(2σ²) exactly, so nothing of dp_accounting enters."""
    orders = list(RDP_ORDERS)
    trial = [releases * gaussian_rdp(a, sigma) for a in orders]
    reference = epsilon_from_rdp(orders, hypo_rdp_theorem_1(orders, trial, mean=mean, shape=shape, ratio=ratio), DELTA)
    event = HypoDpEvent(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), releases), mean, shape, ratio)
    ours = hypo_epsilon(event, DELTA, orders=RDP_ORDERS)
    # dp_accounting solves for γ by bisection (tolerance 1e-9, on the conservative side); the rest is exact.
    assert ours == pytest.approx(reference, rel=1e-7)
    assert ours >= reference * (1 - 1e-9)
    assert rdp_epsilon(event, DELTA) == pytest.approx(ours, rel=1e-12)  # the ledger's path agrees


# ----------------------------------------------------------------------------- (c) the term the paper adds


@pytest.mark.parametrize("shape", [0.0, 1.0, 3.0])
@pytest.mark.parametrize("ratio", [1.05, 1.5, 4.0])
def test_log_density_ratio_enters_with_alpha_over_alpha_minus_one_plus_one_plus_theta(
    shape: float, ratio: float
) -> None:
    """Where the monotone envelope is inactive, ε′_R(α) − ε′_1(α) = (α/(α−1) + 1 + θ)·log R.

    A single Gaussian at σ = 1 has RDP α/2, which outgrows the falling
    log-terms from α ≈ 3.5 on (mean 5, R ≤ 4), so at orders ≥ 4 both curves are
    the raw bound and their difference is the term itself.
    """
    trial = dp_event.GaussianDpEvent(1.0)
    orders = np.asarray(RDP_ORDERS)
    raw = orders >= 4
    with_ratio = _curve(HypoDpEvent(trial, 5.0, shape, ratio))[raw]
    without = _curve(HypoDpEvent(trial, 5.0, shape, 1.0))[raw]
    expected = (orders[raw] / (orders[raw] - 1) + 1 + shape) * math.log(ratio)
    np.testing.assert_allclose(with_ratio - without, expected, rtol=1e-9)


@settings(max_examples=15, deadline=None)
@given(
    sigma=st.floats(min_value=0.8, max_value=8.0),
    low=st.floats(min_value=1.0, max_value=3.0),
    factor=st.floats(min_value=1.01, max_value=3.0),
)
def test_a_wider_density_ratio_never_costs_less(sigma: float, low: float, factor: float) -> None:
    trial = _subsampled_trial(sigma)
    narrow = rdp_epsilon(HypoDpEvent(trial, 4.0, 1.0, low), DELTA)
    wide = rdp_epsilon(HypoDpEvent(trial, 4.0, 1.0, low * factor), DELTA)
    random = rdp_epsilon(dp_event.RepeatAndSelectDpEvent(trial, 4.0, 1.0), DELTA)
    assert random <= narrow * (1 + 1e-12) and narrow <= wide * (1 + 1e-12)


def test_hypo_search_event_is_built_from_the_shape() -> None:
    trial = dp_event.GaussianDpEvent(3.0)
    shape = SearchShape(
        mode="hypo", release="best", expected_trials=4.0, max_trials=None, count_shape=2.0, density_ratio=1.3
    )
    assert search_event(trial, shape) == HypoDpEvent(trial, 4.0, 2.0, 1.3)
    assert shape.repeat_and_select and shape.no_trial_probability == 0.0


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"count_shape": math.inf, "density_ratio": 1.2}, "truncated negative binomial"),
        ({"count_shape": 1.0, "density_ratio": 0.9}, "density_ratio"),
        ({"count_shape": 1.0, "density_ratio": None}, "density_ratio"),
        ({"count_shape": None, "density_ratio": 1.2}, "count_shape"),
    ],
)
def test_a_hypo_shape_theorem_1_does_not_cover_is_refused(fields: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SearchShape(mode="hypo", release="best", expected_trials=4.0, max_trials=None, **fields)  # type: ignore[arg-type]


def test_density_ratio_belongs_to_hypo_only() -> None:
    with pytest.raises(ValueError, match="hypo only"):
        SearchShape(
            mode="random", release="best", expected_trials=4.0, max_trials=None, count_shape=1.0, density_ratio=1.2
        )


# ----------------------------------------------------------------------------- fail closed


def test_what_cannot_price_it_refuses_it() -> None:
    event = HypoDpEvent(_subsampled_trial(2.0), 4.0, 1.0, 1.2)
    assert not rdp_privacy_accountant.RdpAccountant().supports(event)  # plain dp_accounting knows no hypo
    assert pld_epsilon(event, DELTA) is None  # the PLD second opinion is absent, never 0
    bad = HypoDpEvent(_subsampled_trial(2.0), 4.0, math.inf, 1.2)  # Poisson K: not in Theorem 1
    assert not rdp_accountant().supports(bad)
    with pytest.raises(ValueError):
        rdp_epsilon(bad, DELTA)
    unsupported = HypoDpEvent(dp_event.UnsupportedDpEvent(), 4.0, 1.0, 1.2)
    assert not rdp_accountant().supports(unsupported)


def test_the_curve_refuses_malformed_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        hypo_rdp([2.0, 3.0], [0.1], mean=2.0, shape=1.0, density_ratio=1.1)
    with pytest.raises(ValueError, match="mean"):
        hypo_rdp([2.0], [0.1], mean=0.5, shape=1.0, density_ratio=1.1)


# ----------------------------------------------------------------------------- stored, composed, calibrated


def test_the_ledger_stores_it_and_reads_it_back_unchanged() -> None:
    event = HypoDpEvent(_subsampled_trial(3.0), 6.5, 0.5, 1.25)
    encoded = event_to_json(event)
    assert encoded["kind"] == "hypo" and encoded["density_ratio"] == 1.25
    back = event_from_json(json.loads(json.dumps(encoded)))
    assert back == event
    assert rdp_epsilon(back, DELTA) == rdp_epsilon(event, DELTA)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ({"density_ratio": 0.5}, "density_ratio"),
        ({"shape": "inf"}, "shape"),
        ({"mean": 0.0}, "mean"),
        ({"density_ratio": True}, "density_ratio"),
        ({"extra": 1}, "fields"),
    ],
)
def test_a_stored_hypo_event_outside_the_theorem_is_refused(edit: dict[str, object], match: str) -> None:
    data = event_to_json(HypoDpEvent(dp_event.GaussianDpEvent(2.0), 3.0, 1.0, 1.2))
    data.update(edit)
    with pytest.raises(EventDecodeError, match=match):
        event_from_json(data)


def test_a_hypo_charge_composes_with_the_others_on_a_real_ledger(tmp_path: Path) -> None:
    """The ledger composes by adding RDP curves: the hypo curve plus the other charge's, converted once."""
    ledger = PrivacyLedger.create(tmp_path / "digits.sqlite", dataset="digits", epsilon=20.0, delta=DELTA)
    hypo = HypoDpEvent(_subsampled_trial(4.0), 5.0, 1.0, 1.5)
    other = dp_event.GaussianDpEvent(3.0)
    ledger.charge(hypo, config_hash="a" * 64, mode="hypo/best")
    ledger.charge(other, config_hash="b" * 64, mode="grid/all")
    assert [c.event for c in PrivacyLedger.open(ledger.path).charges()] == [hypo, other]
    orders = list(RDP_ORDERS)
    trial = rdp_privacy_accountant.RdpAccountant(orders).compose(hypo.event)._rdp
    summed = hypo_rdp(orders, trial, mean=5.0, shape=1.0, density_ratio=1.5) + np.array(
        [gaussian_rdp(a, 3.0) for a in orders]
    )
    by_hand, _ = rdp_privacy_accountant.compute_epsilon(orders, list(summed), DELTA)
    assert ledger.spent_epsilon() == pytest.approx(by_hand, rel=1e-12)
    assert ledger.spent_epsilon() < hypo_epsilon(hypo, DELTA, orders=RDP_ORDERS) + rdp_epsilon(other, DELTA)


@pytest.mark.parametrize("ratio", [1.0, 1.2, 1.5])
def test_calibration_fits_the_whole_hypo_search_within_the_budget(ratio: float) -> None:
    target = 3.0
    calibration = calibrate_noise_multiplier(
        lambda sigma: HypoDpEvent(_subsampled_trial(sigma), 4.0, 1.0, ratio), target_epsilon=target, delta=DELTA
    )
    spent = hypo_epsilon(
        HypoDpEvent(_subsampled_trial(calibration.noise_multiplier), 4.0, 1.0, ratio), DELTA, orders=RDP_ORDERS
    )
    assert spent == pytest.approx(calibration.epsilon, rel=1e-12)
    assert 0.99 * target <= spent <= target


def test_a_density_ratio_no_noise_can_pay_for_is_refused_by_calibration() -> None:
    """(α/(α−1) + 2)·log 2 ≥ 2·log 2 is charged whatever σ: with the score releases it exceeds ε = 3."""
    with pytest.raises(CalibrationError, match="noise_multiplier"):
        calibrate_noise_multiplier(
            lambda sigma: HypoDpEvent(_subsampled_trial(sigma), 4.0, 1.0, 2.0), target_epsilon=3.0, delta=DELTA
        )
