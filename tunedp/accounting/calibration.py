"""Calibration: the smallest noise multiplier σ whose *whole search* fits the budget.

We solve ε(σ) = target with Brent's method on the RDP accountant inside a
bracket we find ourselves. Every ε is computed by a fresh accountant and
remembered, so no σ is priced twice (each pricing is the whole cost of
calibration). The σ returned is the smallest one *priced* at or below the
target — never overshooting is by construction, not by a later correction —
and bisection continues until that ε is within 1 % of the target.

Some costs do not vanish as σ → ∞ (private score releases, the log(mean)
term of repeat-and-select); when even a huge σ cannot fit, the error says so
and names what to change.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dp_accounting import dp_event
from scipy import optimize

from tunedp.accounting.calibration_memo import CalibrationMemo, memo_key
from tunedp.accounting.epsilon import RDP_ORDERS, rdp_epsilon
from tunedp.errors import CalibrationError

__all__ = ["Calibration", "CalibrationError", "calibrate_noise_multiplier"]

#: σ above this is useless for learning; a budget that needs more is refused.
MAX_NOISE_MULTIPLIER = 1e4
#: Relative tolerance on σ for Brent's method (ε then lands ~0.01 % below target).
SIGMA_RELATIVE_TOLERANCE = 1e-4
#: The ε of the returned σ is at least this fraction of the target (bisection enforces it).
LANDING_FRACTION = 0.99


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
    memo: CalibrationMemo | None = None,
) -> Calibration:
    """σ such that ``rdp_epsilon(make_event(σ), delta) <= target_epsilon`` and close to it.

    With a ``memo``, a σ an earlier calibration of the same problem returned
    is tried first, priced afresh, and used only if it meets both promises
    (within budget, within :data:`LANDING_FRACTION` of it); see
    :mod:`tunedp.accounting.calibration_memo`.
    """
    if not target_epsilon > 0:
        raise CalibrationError(f"budget.epsilon={target_epsilon} must be > 0")
    key = None
    if memo is not None:
        key = memo_key(
            make_event,
            target_epsilon=target_epsilon,
            delta=delta,
            orders=RDP_ORDERS,
            constants=(MAX_NOISE_MULTIPLIER, SIGMA_RELATIVE_TOLERANCE, LANDING_FRACTION),
        )
        remembered = memo.recall(key) if key is not None else None
        if remembered is not None:
            epsilon = rdp_epsilon(make_event(remembered), delta)
            if LANDING_FRACTION * target_epsilon <= epsilon <= target_epsilon:
                return Calibration(
                    noise_multiplier=remembered, epsilon=epsilon, target_epsilon=target_epsilon, delta=delta
                )
    calibration = _calibrate(make_event, target_epsilon=target_epsilon, delta=delta)
    if memo is not None and key is not None:
        memo.remember(key, calibration.noise_multiplier)
    return calibration


def _calibrate(
    make_event: Callable[[float], dp_event.DpEvent],
    *,
    target_epsilon: float,
    delta: float,
) -> Calibration:
    """Root-finding from scratch: bracket by doubling, Brent's method, then bisect until it lands."""
    priced: dict[float, float] = {}

    def epsilon_at(sigma: float) -> float:
        if sigma not in priced:
            priced[sigma] = rdp_epsilon(make_event(sigma), delta)
        return priced[sigma]

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
    if epsilon_at(high) < target_epsilon:
        optimize.brentq(
            lambda sigma: epsilon_at(sigma) - target_epsilon,
            low,
            high,
            xtol=SIGMA_RELATIVE_TOLERANCE * low,
        )
    # Fail closed by construction: answer with a σ that was priced within budget.
    sigma = min(s for s, e in priced.items() if e <= target_epsilon)
    too_little = max((s for s, e in priced.items() if e > target_epsilon and s < sigma), default=low)
    while priced[sigma] < LANDING_FRACTION * target_epsilon and sigma - too_little > 1e-12 * sigma:
        middle = (sigma + too_little) / 2.0
        if epsilon_at(middle) <= target_epsilon:
            sigma = middle
        else:
            too_little = middle
    return Calibration(noise_multiplier=sigma, epsilon=priced[sigma], target_epsilon=target_epsilon, delta=delta)
