"""The step-curve accountant (``rdp_accountant()``) prices every event exactly as dp_accounting does.

It remembers each leaf step's RDP curve per process; these tests compare
its curves and ε, bit for bit, with dp_accounting's own ``RdpAccountant``
(and with the hypo accountant, for Theorem 1) on events built the way the
planner builds them — first while nothing is remembered, then again from
what was remembered.
"""

from __future__ import annotations

import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

import tunedp.accounting.epsilon as epsilon_module
from tunedp.accounting.epsilon import RDP_ORDERS, StepCurveRdpAccountant, rdp_accountant, rdp_epsilon
from tunedp.accounting.hypo import HypoDpEvent, HypoRdpAccountant


def _step(q: float, sigma: float) -> dp_event.DpEvent:
    return dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma))


def _trial(sigma: float) -> dp_event.DpEvent:
    """A trial as the planner writes it: two noise segments, then two private score releases."""
    return dp_event.ComposedDpEvent(
        [
            dp_event.SelfComposedDpEvent(_step(0.01, 1.3 * sigma), 300),
            dp_event.SelfComposedDpEvent(_step(0.01, 0.9 * sigma), 200),
            dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(20.0), 2),
        ]
    )


EVENTS = {
    "one step": lambda: _step(0.02, 1.1),
    "a trial": lambda: _trial(1.0),
    "release all (composition)": lambda: dp_event.SelfComposedDpEvent(_trial(0.8), 5),
    "random/best (repeat and select)": lambda: dp_event.RepeatAndSelectDpEvent(_trial(1.2), 4.0, 1.0),
    "a bare Gaussian": lambda: dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(3.0), 7),
}


def _plain_curve(event: dp_event.DpEvent) -> np.ndarray:
    accountant = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
    accountant.compose(event)
    return accountant._rdp


def _cached_curve(event: dp_event.DpEvent) -> np.ndarray:
    accountant = rdp_accountant()
    assert isinstance(accountant, StepCurveRdpAccountant)
    accountant.compose(event)
    return accountant._rdp


@pytest.mark.parametrize("name", list(EVENTS))
def test_the_curve_and_epsilon_equal_dp_accountings_bit_for_bit_cold_and_remembered(name: str) -> None:
    epsilon_module._STEP_CURVES.clear()
    event = EVENTS[name]()
    expected = _plain_curve(event)
    cold = _cached_curve(event)
    assert epsilon_module._STEP_CURVES, "no step curve was remembered"
    warm = _cached_curve(event)
    np.testing.assert_array_equal(cold, expected)
    np.testing.assert_array_equal(warm, expected)
    plain = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS)).compose(event).get_epsilon(1e-5)
    assert rdp_epsilon(event, 1e-5) == plain


def test_a_hypo_search_is_priced_as_the_hypo_accountant_prices_it() -> None:
    epsilon_module._STEP_CURVES.clear()
    event = HypoDpEvent(event=_trial(1.5), mean=3.0, shape=1.0, density_ratio=1.2)
    plain = HypoRdpAccountant(list(RDP_ORDERS))
    plain.compose(event)
    for _ in range(2):  # cold, then from the remembered steps
        np.testing.assert_array_equal(_cached_curve(event), plain._rdp)


def test_a_remembered_curve_cannot_be_changed_through_an_accountant() -> None:
    epsilon_module._STEP_CURVES.clear()
    event = _step(0.05, 2.0)
    first = _cached_curve(dp_event.SelfComposedDpEvent(event, 3))
    first += 1.0  # the accountant's own running sum, not the remembered curve
    np.testing.assert_array_equal(_cached_curve(event), _plain_curve(event))
    for curve in epsilon_module._STEP_CURVES.values():
        assert isinstance(curve, np.ndarray) and not curve.flags.writeable


def test_an_event_dp_accounting_refuses_is_still_refused() -> None:
    bad = dp_event.PoissonSampledDpEvent(0.1, dp_event.LaplaceDpEvent(1.0))
    assert not rdp_accountant().supports(bad)
    with pytest.raises(Exception, match="Gaussian"):
        rdp_accountant().compose(bad)


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(epsilon_module._STEP_CURVES, "kept", 3)
    epsilon_module._STEP_CURVES.clear()
    for sigma in (1.0, 2.0, 3.0, 4.0, 5.0):
        _cached_curve(_step(0.1, sigma))
    assert len(epsilon_module._STEP_CURVES) == 3
    # The newest are kept, and a curve evicted is priced again, as dp_accounting prices it.
    np.testing.assert_array_equal(_cached_curve(_step(0.1, 1.0)), _plain_curve(_step(0.1, 1.0)))


def test_a_remembered_pld_figure_is_dp_accountings_figure() -> None:
    from dp_accounting.pld import pld_privacy_accountant

    from tunedp.accounting.epsilon import PLD_DISCRETIZATION, pld_epsilon

    epsilon_module._PLD_FIGURES.clear()
    event = _trial(1.0)
    plain = pld_privacy_accountant.PLDAccountant(value_discretization_interval=PLD_DISCRETIZATION)
    expected = plain.compose(event).get_epsilon(1e-5)
    assert pld_epsilon(event, 1e-5) == expected
    assert pld_epsilon(event, 1e-5) == expected  # from memory
    assert pld_epsilon(event, 1e-6) != expected  # δ is part of what is remembered
    # PLD cannot price repeat-and-select: None, remembered as None.
    assert pld_epsilon(EVENTS["random/best (repeat and select)"](), 1e-5) is None
