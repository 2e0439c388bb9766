"""The clip check (tunedp/audit/clip_check.py), checked against independent computations.

* the statistic against a hand computation with the standard library's
  ``statistics`` (means, sample variances, the normal tail by ``math.erfc``);
* validity by simulation: the canary coordinate of DP-SGD with momentum,
  written out here step by step (Poisson sampling, a clipped contribution s,
  Gaussian noise σ·C, the heavy-ball recursion), drawn many times: with
  s = C the check rejects in at most ≈ β of the draws (the level promised),
  with s = 2·C (a clip at 2·C) in nearly all, and its contribution estimate
  centres on s/C;
* bad input is refused naming the field.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from tunedp.audit.clip_check import MIN_PER_GROUP, clip_check

RHO = 0.9


def test_statistic_matches_a_hand_computation() -> None:
    rng = np.random.default_rng(7)
    audit, reference = rng.normal(0.0, 3.0, 240), rng.normal(0.0, 3.0, 260)
    audit_in, reference_in = rng.random(240) < 0.5, rng.random(260) < 0.5
    audit[audit_in] += 5.0
    reference[reference_in] += 2.0
    check = clip_check(audit, audit_in, reference, reference_in, reference_factor=RHO, confidence=0.975)

    def gap(scores: np.ndarray, member: np.ndarray) -> tuple[float, float]:
        inside, outside = [float(v) for v in scores[member]], [float(v) for v in scores[~member]]
        variance = statistics.variance(inside) / len(inside) + statistics.variance(outside) / len(outside)
        return statistics.fmean(inside) - statistics.fmean(outside), variance

    (a, va), (r, vr) = gap(audit, audit_in), gap(reference, reference_in)
    z = (a - r / RHO) / math.sqrt(va + vr / RHO**2)
    assert check.statistic == pytest.approx(z, rel=1e-10)
    assert check.p_value == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-9)
    assert check.contribution == pytest.approx(RHO * a / r, rel=1e-10)
    assert check.rejected == (check.p_value < 0.025)


def _canary_scores(
    rng: np.random.Generator, draws: int, count: int, contribution: float, *, q: float, steps: int, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Final canary coordinates of DP-SGD with momentum 0.9 (C = 1, η/qN = 1): ``draws`` × ``count``."""
    included = rng.random((draws, count)) < 0.5
    velocity = np.zeros((draws, count))
    coordinate = np.zeros((draws, count))
    for _ in range(steps):
        sampled = included & (rng.random((draws, count)) < q)
        gradient = -(sampled * contribution) + sigma * rng.standard_normal((draws, count))
        velocity = 0.9 * velocity + gradient
        coordinate -= velocity
    return coordinate, included


@pytest.mark.parametrize(("contribution", "expect_rejections"), [(1.0, False), (2.0, True)])
def test_level_and_power_by_simulation(contribution: float, expect_rejections: bool) -> None:
    """s = C: rejected in ≤ β (+3 standard errors) of 2000 draws; s = 2·C: in nearly all of them."""
    rng = np.random.default_rng(2024)
    draws, count, beta = 2000, 400, 0.05
    settings = {"q": 0.2, "steps": 30, "sigma": 1.5}
    audit, audit_in = _canary_scores(rng, draws, count, contribution, **settings)
    reference, reference_in = _canary_scores(rng, draws, count, RHO, **settings)
    checks = [
        clip_check(audit[i], audit_in[i], reference[i], reference_in[i], reference_factor=RHO, confidence=1 - beta)
        for i in range(draws)
    ]
    rate = float(np.mean([c.rejected for c in checks]))
    if expect_rejections:
        assert rate > 0.95
    else:
        assert rate <= beta + 3 * math.sqrt(beta * (1 - beta) / draws)
    # The estimate is of s/C (a ratio of noisy means: its median, not its mean, is the stable summary).
    assert float(np.median([c.contribution for c in checks])) == pytest.approx(contribution, rel=0.1)


def test_too_few_canaries_and_bad_arguments_are_refused() -> None:
    scores, member = np.arange(100.0), np.arange(100) < 2 * MIN_PER_GROUP - 1
    few = np.arange(100) < MIN_PER_GROUP - 1  # 29 in
    with pytest.raises(ValueError, match="at least 30"):
        clip_check(scores, few, scores, member, reference_factor=RHO, confidence=0.95)
    with pytest.raises(ValueError, match="reference_factor"):
        clip_check(scores, member, scores, member, reference_factor=1.0, confidence=0.95)
    with pytest.raises(ValueError, match="confidence"):
        clip_check(scores, member, scores, member, reference_factor=RHO, confidence=1.0)
    with pytest.raises(ValueError, match="must match"):
        clip_check(scores, member[:-1], scores, member, reference_factor=RHO, confidence=0.95)
    with pytest.raises(ValueError, match="finite"):
        clip_check(np.full(100, np.nan), member, scores, member, reference_factor=RHO, confidence=0.95)
