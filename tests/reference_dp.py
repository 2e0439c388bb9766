"""Independent reference computations of privacy loss, written from the papers.

The tests compare what ``tunedp.accounting`` returns (dp_accounting's RDP
accountant underneath) against these. Nothing here calls dp_accounting or
tunedp: each function is a formula from a paper, so a bug in the code under
test cannot also be in its reference.

- Analytic Gaussian mechanism: Balle & Wang, "Improving the Gaussian Mechanism
  for Differential Privacy", ICML 2018, Theorem 8 (exact δ(ε), sensitivity 1).
- RDP of the Gaussian mechanism: α / (2σ²) (Mironov 2017, Proposition 7).
- RDP of the Poisson-subsampled Gaussian at integer orders: Mironov, Talwar &
  Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism",
  Section 3.3 (binomial expansion of A_α).
- RDP → (ε, δ): the classic bound (Mironov 2017, Proposition 3) and the
  improved one (Balle et al. 2020, "Hypothesis testing interpretations and
  Rényi DP", Theorem 21; Canonne, Kamath & Steinke 2020, Proposition 12).
- Repeat-and-select: Papernot & Steinke, "Hyperparameter Tuning with Renyi
  Differential Privacy", ICLR 2022, Theorem 2 (truncated negative binomial,
  including geometric and logarithmic) and Theorem 6 (Poisson).
- DP-HyPO: Wang, Gao, Zhang, Su & Shen, "DP-HyPO: An Adaptive Private
  Hyperparameter Optimization Framework", NeurIPS 2023, Theorem 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from scipy import optimize, special, stats

__all__ = [
    "analytic_gaussian_delta",
    "analytic_gaussian_epsilon",
    "delta_from_rdp",
    "epsilon_from_rdp",
    "epsilon_from_rdp_classic",
    "gaussian_rdp",
    "hypo_rdp_theorem_1",
    "repeat_and_select_rdp_poisson",
    "repeat_and_select_rdp_tnb",
    "subsampled_gaussian_rdp",
    "truncated_negative_binomial_gamma",
]


def analytic_gaussian_delta(epsilon: float, noise_multiplier: float) -> float:
    """Exact δ(ε) of N(0, σ²) noise on a sensitivity-1 query (Balle & Wang, Thm 8).

    δ(ε) = Φ(1/(2σ) − εσ) − e^ε Φ(−1/(2σ) − εσ); the second term is taken
    through log Φ so it stays accurate when e^ε is large.
    """
    s = noise_multiplier
    first = stats.norm.cdf(1.0 / (2.0 * s) - epsilon * s)
    second = math.exp(epsilon + stats.norm.logcdf(-1.0 / (2.0 * s) - epsilon * s))
    return max(0.0, float(first - second))


def analytic_gaussian_epsilon(delta: float, noise_multiplier: float) -> float:
    """The exact smallest ε with δ(ε) ≤ ``delta`` for the Gaussian mechanism."""
    if analytic_gaussian_delta(0.0, noise_multiplier) <= delta:
        return 0.0
    high = 1.0
    while analytic_gaussian_delta(high, noise_multiplier) > delta:
        high *= 2.0
    root = optimize.brentq(
        lambda e: analytic_gaussian_delta(e, noise_multiplier) - delta, 0.0, high, xtol=1e-12, rtol=1e-12
    )
    return float(root)


def gaussian_rdp(order: float, noise_multiplier: float) -> float:
    """RDP of the Gaussian mechanism at ``order``: α / (2σ²)."""
    return order / (2.0 * noise_multiplier**2)


def subsampled_gaussian_rdp(sampling_rate: float, noise_multiplier: float, order: int) -> float:
    """RDP of one Poisson-subsampled Gaussian step at an *integer* order α ≥ 2.

    A_α = Σ_k C(α, k) (1−q)^(α−k) q^k exp((k² − k) / (2σ²)); RDP = log A_α / (α − 1).
    Summed in log space.
    """
    if order < 2 or int(order) != order:
        raise ValueError(f"integer order >= 2 required, got {order}")
    q, s, a = sampling_rate, noise_multiplier, int(order)
    if q == 1.0:
        return gaussian_rdp(a, s)
    log_terms = [
        special.gammaln(a + 1)
        - special.gammaln(k + 1)
        - special.gammaln(a - k + 1)
        + (a - k) * math.log1p(-q)
        + k * math.log(q)
        + (k * k - k) / (2.0 * s * s)
        for k in range(a + 1)
    ]
    return float(special.logsumexp(log_terms)) / (a - 1)


def epsilon_from_rdp(orders: Sequence[float], rdp: Sequence[float], delta: float) -> float:
    """ε at δ by the improved conversion: min over α of r + log(1 − 1/α) − log(δα)/(α − 1)."""
    best = math.inf
    for order, value in zip(orders, rdp, strict=True):
        if order <= 1.01 or not math.isfinite(value):
            continue  # the bound is numerically unusable as α → 1
        best = min(best, value + math.log1p(-1.0 / order) - math.log(delta * order) / (order - 1.0))
    return max(0.0, best)


def epsilon_from_rdp_classic(orders: Sequence[float], rdp: Sequence[float], delta: float) -> float:
    """ε at δ by the classic conversion min over α of r − log δ / (α − 1) (what TF Privacy used)."""
    return min(
        value - math.log(delta) / (order - 1.0)
        for order, value in zip(orders, rdp, strict=True)
        if order > 1 and math.isfinite(value)
    )


def delta_from_rdp(orders: Sequence[float], rdp: Sequence[float], epsilon: float) -> float:
    """δ at ε from RDP: the smaller of two valid bounds, minimised over α.

    - δ ≤ TV ≤ √(1 − e^(−KL)) (Bretagnolle–Huber), with KL ≤ ε(α) for every α;
    - δ ≤ exp((α − 1)(ε(α) − ε + log(1 − 1/α))) / α (Canonne, Kamath & Steinke,
      Proposition 12), for α away from 1 where it is numerically stable.
    """
    best = 0.0  # log δ ≤ 0: δ ≤ 1 always
    for order, value in zip(orders, rdp, strict=True):
        if value <= 0:
            return 0.0
        log_delta = 0.5 * math.log1p(-math.exp(-value))
        if order > 1.01:
            log_delta = min(log_delta, (order - 1.0) * (value - epsilon + math.log1p(-1.0 / order)) - math.log(order))
        best = min(best, log_delta)
    return math.exp(best)


def truncated_negative_binomial_gamma(shape: float, mean: float) -> float:
    """The γ of the truncated negative binomial with this ``shape`` (η) and mean.

    Mean of the TNB (Papernot & Steinke, Definition 1): η(1 − γ) / (γ(1 − γ^η))
    for η > 0, (1 − γ) / (γ log(1/γ)) for η = 0 (logarithmic). Geometric is
    η = 1 with mean 1/γ. Solved for γ in (0, 1).
    """
    if shape == 1.0:
        return 1.0 / mean

    def mean_of(gamma: float) -> float:
        if shape == 0.0:
            return (1.0 - gamma) / (gamma * math.log(1.0 / gamma))
        return float(shape * (1.0 - gamma) / (gamma * (1.0 - gamma**shape)))

    return float(optimize.brentq(lambda g: mean_of(g) - mean, 1e-12, 1.0 - 1e-12, xtol=1e-15, rtol=1e-13))


def repeat_and_select_rdp_tnb(
    orders: Sequence[float], rdp: Sequence[float], *, mean: float, shape: float
) -> list[float]:
    """RDP of best-of-K with K ~ TNB(η = shape, γ) (Papernot & Steinke, Theorem 2).

    ε'(λ) = ε(λ) + (1 + η) · min_λ̂ [(1 − 1/λ̂) ε(λ̂) + log(1/γ) / λ̂] + log(E[K]) / (λ − 1),
    then RDP's monotonicity in λ: ε'(λ) ≤ ε'(λ') for every λ' ≥ λ.
    """
    gamma = truncated_negative_binomial_gamma(shape, mean)
    constant = (1.0 + shape) * min(
        (1.0 - 1.0 / o) * r + math.log(1.0 / gamma) / o for o, r in zip(orders, rdp, strict=True)
    )
    raw = [r + constant + math.log(mean) / (o - 1.0) if o > 1 else math.inf for o, r in zip(orders, rdp, strict=True)]
    return _monotone(orders, raw)


def hypo_rdp_theorem_1(
    orders: Sequence[float], rdp: Sequence[float], *, mean: float, shape: float, ratio: float
) -> list[float]:
    """RDP of a DP-HyPO search (Wang et al., Theorem 1): K ~ TNB(θ = shape, γ), proposals within C/c = ``ratio``.

    ε′(α) = ε(α) + (1+θ)(1 − 1/α̂)ε(α̂) + (α/(α−1) + 1 + θ)·log(C/c) + (1+θ)·log(1/γ)/α̂ + log E[K]/(α−1),
    the best α̂ among ``orders``, then RDP's monotonicity in α.
    """
    gamma = truncated_negative_binomial_gamma(shape, mean)
    best_hat = min((1.0 - 1.0 / h) * e + math.log(1.0 / gamma) / h for h, e in zip(orders, rdp, strict=True))
    raw = [
        e + (1.0 + shape) * best_hat + (a / (a - 1.0) + 1.0 + shape) * math.log(ratio) + math.log(mean) / (a - 1.0)
        if a > 1
        else math.inf
        for a, e in zip(orders, rdp, strict=True)
    ]
    return _monotone(orders, raw)


def repeat_and_select_rdp_poisson(
    orders: Sequence[float],
    rdp: Sequence[float],
    *,
    mean: float,
    delta_at: Callable[[float], float],
) -> list[float]:
    """RDP of best-of-K with K ~ Poisson(mean) (Papernot & Steinke, Theorem 6).

    ε'(λ) = ε(λ) + μ · δ̂ + log(μ) / (λ − 1), where the single run is
    (ε̂, δ̂)-DP with ε̂ = log(1 + 1/(λ − 1)); ``delta_at(ε̂)`` supplies δ̂.
    """
    raw = []
    for order, value in zip(orders, rdp, strict=True):
        if order <= 1:
            raw.append(math.inf)
            continue
        epsilon_hat = math.log1p(1.0 / (order - 1.0))
        raw.append(value + mean * delta_at(epsilon_hat) + math.log(mean) / (order - 1.0))
    return _monotone(orders, raw)


def _monotone(orders: Sequence[float], rdp: Sequence[float]) -> list[float]:
    return [min(r2 for o2, r2 in zip(orders, rdp, strict=True) if o2 >= o) for o in orders]
