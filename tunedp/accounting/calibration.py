"""Calibration: the smallest noise multiplier σ whose *whole search* fits the budget.

We solve ε(σ) = target with dp_accounting's ``calibrate_dp_mechanism`` (Brent's
method on the RDP accountant) inside a bracket we find ourselves, then check
the answer again with a fresh accountant: the returned σ never overshoots the
budget (fail closed), and we report how close to the target it lands.

Some costs do not vanish as σ → ∞ (private score releases, the log(mean)
term of repeat-and-select); when even a huge σ cannot fit, the error says so
and names what to change.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dp_accounting
from dp_accounting import dp_event

from tunedp.accounting.epsilon import rdp_accountant, rdp_epsilon

__all__ = ["Calibration", "CalibrationError", "calibrate_noise_multiplier"]

#: σ above this is useless for learning; a budget that needs more is refused.
MAX_NOISE_MULTIPLIER = 1e4
#: Relative tolerance on σ; the ε landed is checked to be within 1 % below target.
SIGMA_RELATIVE_TOLERANCE = 1e-5


class CalibrationError(ValueError):
    """No σ can make the search fit the budget (a user error: one line, with the fix)."""


@dataclass(frozen=True, kw_only=True)
class Calibration:
    noise_multiplier: float
    epsilon: float
    target_epsilon: float
    delta: float

    @property
    def fraction_of_target(self) -> float:
        """ε spent / ε allowed: ≤ 1 always, and close to 1 (we aim within 1 %)."""
        return self.epsilon / self.target_epsilon


def calibrate_noise_multiplier(
    make_event: Callable[[float], dp_event.DpEvent],
    *,
    target_epsilon: float,
    delta: float,
) -> Calibration:
    """σ such that ``rdp_epsilon(make_event(σ), delta) <= target_epsilon`` and close to it."""
    if not target_epsilon > 0:
        raise CalibrationError(f"budget.epsilon={target_epsilon} must be > 0")

    def epsilon_at(sigma: float) -> float:
        return rdp_epsilon(make_event(sigma), delta)

    floor = epsilon_at(MAX_NOISE_MULTIPLIER)
    if floor > target_epsilon:
        raise CalibrationError(
            f"budget.epsilon={target_epsilon:g} is below what this search costs even with "
            f"noise_multiplier={MAX_NOISE_MULTIPLIER:g} (epsilon={floor:.4g}, from score releases or the "
            "number of trials); raise budget.epsilon, validation.score_noise_multiplier, "
            "or lower the trial count/evaluations"
        )
    # Bracket [low, high] with ε(low) > target >= ε(high), by doubling from σ=1.
    high = 1.0
    while epsilon_at(high) > target_epsilon:
        high *= 2.0
    low = high / 2.0
    while epsilon_at(low) <= target_epsilon:
        if low < 1e-3:  # a budget so large that almost no noise is needed
            return Calibration(
                noise_multiplier=low, epsilon=epsilon_at(low), target_epsilon=target_epsilon, delta=delta
            )
        high, low = low, low / 2.0
    sigma = float(
        dp_accounting.calibrate_dp_mechanism(
            rdp_accountant,
            make_event,
            target_epsilon,
            delta,
            bracket_interval=dp_accounting.ExplicitBracketInterval(low, high),
            tol=SIGMA_RELATIVE_TOLERANCE * low,
        )
    )
    epsilon = epsilon_at(sigma)
    # Fail closed: if rounding ever put us above target, step σ up until it is not.
    while epsilon > target_epsilon:
        sigma *= 1.0 + SIGMA_RELATIVE_TOLERANCE
        epsilon = epsilon_at(sigma)
    return Calibration(noise_multiplier=sigma, epsilon=epsilon, target_epsilon=target_epsilon, delta=delta)
