"""The privacy cost of a ``hypo`` search: adaptive proposals, a random number of trials, the best one released.

Wang, Gao, Zhang, Su & Shen, "DP-HyPO: An Adaptive Private Hyperparameter
Optimization Framework" (NeurIPS 2023), Theorem 1. The number of trials K is
drawn from the truncated negative binomial TNB(θ, γ) of Papernot & Steinke
(2022); trial j + 1's hyperparameters are drawn from a density π⁽ʲ⁺¹⁾ that
may depend on every earlier trial's (already privatised) output, provided

    c ≤ π⁽ʲ⁺¹⁾(λ) / π⁽⁰⁾(λ) ≤ C   for every λ and every j,

with c, C fixed before the search; only the best trial is released (K is not).
If one trial is (α, ε)- and (α̂, ε̂)-RDP, the search is (α, ε′)-RDP with

    ε′ = ε + (1+θ)(1 − 1/α̂)·ε̂ + (α/(α−1) + 1 + θ)·log(C/c)
           + (1+θ)·log(1/γ)/α̂ + log E[K]/(α−1).

At C = c (the proposal is the prior: random search) the log(C/c) term
vanishes and what is left is term for term Papernot & Steinke's Theorem 2,
which dp_accounting's RDP accountant implements for ``RepeatAndSelectDpEvent``
as ``ε(α) + log(mean)/(α−1) + (1+θ)·min_α̂[(1 − 1/α̂)ε(α̂) − log(γ)/α̂]``
followed by RDP's monotonicity in α. We compute Theorem 1 the same way on the
same Rényi orders (the min over α̂ taken over them, then the monotone
envelope), so at C = c the two curves coincide exactly, not approximately
(``tests/unit/accounting/test_hypo_bound.py``). γ is dp_accounting's own solution of
E[K] = mean, the γ the driver draws K with (:func:`tunedp.accounting.search_event.tnb_gamma`).

Only the truncated negative binomial is covered (θ ≥ 0; geometric θ = 1,
logarithmic θ = 0): Theorem 1 has no Poisson counterpart of Papernot &
Steinke's Theorem 6, so a Poisson K is refused rather than approximated.

:class:`HypoDpEvent` is a DpEvent of our own (dp_accounting has none for
DP-HyPO). :class:`HypoRdpAccountant` is dp_accounting's RDP accountant taught
this one event, so a hypo charge composes with every other charge on a ledger
exactly as a repeat-and-select charge does; every other accountant (PLD) does
not support it and fails closed.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attr
import numpy as np
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant

__all__ = ["HypoDpEvent", "HypoRdpAccountant", "check_hypo_parameters", "hypo_epsilon", "hypo_gamma", "hypo_rdp"]


@attr.s(frozen=True, slots=True, auto_attribs=True)
class HypoDpEvent(dp_event.DpEvent):  # type: ignore[misc]  # dp_accounting is untyped
    """A DP-HyPO search: ``event`` repeated K ~ TNB(``shape``, γ(``mean``)) times with
    adaptive proposals whose density ratio to the prior spans at most ``density_ratio`` = C/c;
    only the best trial is released."""

    event: dp_event.DpEvent
    mean: float
    shape: float
    density_ratio: float


def check_hypo_parameters(*, mean: float, shape: float, density_ratio: float) -> None:
    """Refuse parameters Theorem 1 does not cover (a ValueError naming the parameter)."""
    if not (math.isfinite(mean) and mean >= 1):
        raise ValueError(f"Expected mean={mean} >= 1 (the expected number of trials)")
    if not (math.isfinite(shape) and shape >= 0):
        raise ValueError(
            f"Expected a finite shape={shape} >= 0: DP-HyPO's bound covers the truncated negative binomial, not Poisson"
        )
    if not (math.isfinite(density_ratio) and density_ratio >= 1):
        raise ValueError(f"Expected density_ratio={density_ratio} >= 1 (it is C/c, and c <= 1 <= C)")


def hypo_gamma(mean: float, shape: float) -> float:
    """γ of TNB(shape, γ) with E[K] = ``mean``: dp_accounting's solver, as for repeat-and-select."""
    return float(rdp_privacy_accountant._gamma_truncated_negative_binomial(shape, mean))


def hypo_rdp(
    orders: Sequence[float] | np.ndarray,
    rdp: Sequence[float] | np.ndarray,
    *,
    mean: float,
    shape: float,
    density_ratio: float,
) -> np.ndarray:
    """The search's RDP at ``orders`` from one trial's RDP ``rdp`` at the same orders (Theorem 1).

    For each α the α̂ of the theorem is chosen freely, so it is minimised
    over the orders; then an RDP bound at α' ≥ α is one at α too (Rényi
    divergence grows with the order), which gives the monotone envelope.
    """
    check_hypo_parameters(mean=mean, shape=shape, density_ratio=density_ratio)
    alphas = np.asarray(orders, dtype=np.float64)
    trial = np.asarray(rdp, dtype=np.float64)
    if alphas.shape != trial.shape:
        raise ValueError(f"orders and rdp must have the same length, got {len(alphas)} and {len(trial)}")
    if np.any(alphas < 1):
        raise ValueError("Rényi orders must be >= 1")
    gamma = hypo_gamma(mean, shape)
    # (1+θ)·min over α̂ of [(1 − 1/α̂)·ε̂ + log(1/γ)/α̂]: the part that does not depend on α.
    constant = (1.0 + shape) * float(np.min((1.0 - 1.0 / alphas) * trial - math.log(gamma) / alphas))
    log_ratio = math.log(density_ratio)
    raw = np.full_like(alphas, np.inf)
    above = alphas > 1  # the α of the theorem must exceed 1
    a = alphas[above]
    raw[above] = trial[above] + constant + (a / (a - 1.0) + 1.0 + shape) * log_ratio + math.log(mean) / (a - 1.0)
    # Monotone envelope: ε′(α) ≤ ε′(α') for every α' ≥ α among the orders.
    order = np.argsort(alphas)
    envelope = np.minimum.accumulate(raw[order][::-1])[::-1]
    result = np.empty_like(raw)
    result[order] = envelope
    return result


class HypoRdpAccountant(rdp_privacy_accountant.RdpAccountant):  # type: ignore[misc]  # dp_accounting is untyped
    """dp_accounting's RDP accountant that also composes :class:`HypoDpEvent` (Theorem 1).

    Every other event goes to dp_accounting unchanged, and an event neither
    knows is still refused (``supports`` is False, ``compose`` raises).
    """

    _orders: np.ndarray  # set by dp_accounting's __init__
    _rdp: np.ndarray

    def _maybe_compose(
        self, event: dp_event.DpEvent, count: int, do_compose: bool
    ) -> rdp_privacy_accountant.CompositionErrorDetails | None:
        if not isinstance(event, HypoDpEvent):
            return super()._maybe_compose(event, count, do_compose)
        try:
            check_hypo_parameters(mean=event.mean, shape=event.shape, density_ratio=event.density_ratio)
        except ValueError as error:
            return rdp_privacy_accountant.CompositionErrorDetails(invalid_event=event, error_message=str(error))
        # As dp_accounting does for RepeatAndSelectDpEvent: price the trial alone, then restore.
        saved: np.ndarray = self._rdp
        if do_compose:
            self._rdp = np.zeros_like(self._orders, dtype=np.float64)
        error_details = self._maybe_compose(event.event, 1, do_compose)
        if error_details is None and do_compose:
            search = hypo_rdp(
                self._orders, self._rdp, mean=event.mean, shape=event.shape, density_ratio=event.density_ratio
            )
            self._rdp = count * search + saved
        elif do_compose:
            self._rdp = saved
        return error_details


def hypo_epsilon(event: HypoDpEvent, delta: float, *, orders: Sequence[float]) -> float:
    """ε′ at ``delta`` of a hypo search: Theorem 1 minimised over α̂ and α on the trial's RDP curve.

    The trial's RDP comes from dp_accounting's RDP accountant at ``orders``
    (the ledger's are :data:`tunedp.accounting.epsilon.RDP_ORDERS`, where
    :func:`~tunedp.accounting.epsilon.rdp_epsilon` gives the same figure);
    RDP → (ε, δ) is dp_accounting's ``compute_epsilon``, the conversion
    every tunedp ε goes through.
    """
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ValueError(f"Expected delta={delta} in (0, 1)")
    accountant = rdp_privacy_accountant.RdpAccountant(list(orders))
    accountant.compose(event.event)
    trial = accountant._rdp  # the trial's curve at ``orders`` (dp_accounting keeps no public getter)
    search = hypo_rdp(orders, trial, mean=event.mean, shape=event.shape, density_ratio=event.density_ratio)
    epsilon, _ = rdp_privacy_accountant.compute_epsilon(list(orders), list(search), delta)
    return float(epsilon)
