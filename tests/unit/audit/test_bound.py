"""The one-run audit's arithmetic (tunedp/audit/bound.py), checked against independent computations.

* the p-value against a direct sum of binomial terms written with ``math.comb``;
* all-correct guessing at δ = 0 against the closed form the paper's main
  theorem gives (W dominated by Binomial(r, e^ε/(1+e^ε))): with r guesses all
  right, ε-DP is rejected iff (e^ε/(1+e^ε))^r < β, so the bound is
  log(1 / (β^(−1/r) − 1)) — the ceiling of any audit making r guesses (100
  guesses → 3.49, 1000 → 5.81 at 95 %, computed here, not read off a figure);
* monotone in the number of correct guesses;
* validity: ε-DP randomized response at a known ε, simulated many times,
  yields a bound above ε in at most ≈ 5 % of runs (the confidence promised).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tunedp.audit.bound import (
    best_lower_bound,
    count_guesses,
    epsilon_lower_bound,
    p_value,
    randomized_response_accuracy,
)


def _binomial_pmf(k: int, n: int, p: float) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


def _reference_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Direct evaluation of P[Bin(r,q) ≥ v] + 2mδ·max_i (1/i)·P[v−i ≤ Bin(r,q) < v]."""
    q = math.exp(epsilon) / (1 + math.exp(epsilon))
    tail = sum(_binomial_pmf(k, r, q) for k in range(v, r + 1))
    alpha = max((sum(_binomial_pmf(k, r, q) for k in range(v - i, v)) / i for i in range(1, v + 1)), default=0.0)
    return min(1.0, tail + 2 * m * delta * alpha)


@pytest.mark.parametrize(
    ("m", "r", "v", "epsilon", "delta"),
    [(100, 40, 30, 1.0, 0.0), (100, 40, 30, 1.0, 1e-3), (50, 20, 20, 2.5, 1e-4), (200, 60, 35, 0.3, 1e-2)],
)
def test_p_value_matches_a_direct_binomial_sum(m: int, r: int, v: int, epsilon: float, delta: float) -> None:
    assert p_value(canaries=m, guesses=r, correct=v, epsilon=epsilon, delta=delta) == pytest.approx(
        _reference_p_value(m, r, v, epsilon, delta), rel=1e-9, abs=1e-15
    )


@pytest.mark.parametrize(("guesses", "expected"), [(10, 1.0519), (100, 3.4930), (165, 3.9997), (1000, 5.8091)])
def test_all_correct_guesses_give_the_papers_perfect_guessing_bound(guesses: int, expected: float) -> None:
    closed_form = math.log(1.0 / (0.05 ** (-1.0 / guesses) - 1.0))
    assert closed_form == pytest.approx(expected, abs=1e-4)
    bound = epsilon_lower_bound(canaries=guesses, guesses=guesses, correct=guesses, delta=0.0, confidence=0.95)
    assert bound == pytest.approx(closed_form, abs=1e-5)


def test_the_delta_term_only_lowers_the_bound() -> None:
    pure = epsilon_lower_bound(canaries=1000, guesses=500, correct=500)
    assert 0 < epsilon_lower_bound(canaries=1000, guesses=500, correct=500, delta=1e-5) < pure
    # Each canary may be the one whose δ-event happened: more canaries, same guesses, lower bound.
    by_canaries = [epsilon_lower_bound(canaries=m, guesses=500, correct=500, delta=1e-5) for m in (500, 5000, 50_000)]
    assert by_canaries[0] > by_canaries[1] > by_canaries[2]


@pytest.mark.parametrize("delta", [0.0, 1e-5])
def test_bound_is_monotone_in_correct_guesses(delta: float) -> None:
    bounds = [epsilon_lower_bound(canaries=400, guesses=200, correct=v, delta=delta) for v in range(90, 201, 5)]
    assert all(a <= b for a, b in itertools.pairwise(bounds))
    assert bounds[0] == 0.0 and bounds[-1] > 4.0  # chance level rejects nothing; all right rejects a lot


def test_bound_is_a_rejected_epsilon_and_just_above_is_not() -> None:
    bound = epsilon_lower_bound(canaries=300, guesses=100, correct=90, delta=1e-5)
    assert p_value(canaries=300, guesses=100, correct=90, epsilon=bound, delta=1e-5) < 0.05
    assert p_value(canaries=300, guesses=100, correct=90, epsilon=bound + 1e-4, delta=1e-5) >= 0.05


@pytest.mark.parametrize("epsilon", [0.5, 2.0, 4.0])
def test_randomized_response_at_known_epsilon_is_rarely_over_bounded(epsilon: float) -> None:
    """ε-DP randomized response: each of r guesses right w.p. e^ε/(1+e^ε), independently."""
    rng = np.random.default_rng(20_231_210)
    draws, guesses = 4000, 200
    correct = rng.binomial(guesses, randomized_response_accuracy(epsilon), size=draws)
    cache: dict[int, float] = {}
    for v in np.unique(correct):
        cache[int(v)] = epsilon_lower_bound(canaries=guesses, guesses=guesses, correct=int(v))
    bounds = np.array([cache[int(v)] for v in correct])
    exceed = float(np.mean(bounds > epsilon))
    assert exceed <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / draws)
    assert np.median(bounds) > 0.5 * epsilon  # and the audit is not vacuous: it gets close


def test_count_guesses_on_a_small_example() -> None:
    scores = [0.9, 0.1, 0.5, 0.8, 0.2, 0.4]
    included = [True, False, True, False, False, True]
    # highest two (0.9 in, 0.8 out) → 1 right; lowest two (0.1 out, 0.2 out) → 2 right
    assert count_guesses(scores, included, k_in=2, k_out=2) == 3
    assert count_guesses(scores, included, k_in=0, k_out=0) == 0


def test_best_lower_bound_splits_confidence_between_candidates() -> None:
    scores = np.arange(400, dtype=float)
    included = scores >= 200  # a perfect separator
    one = best_lower_bound(scores, included, guess_counts=[(50, 50)], delta=0.0)
    assert one.correct == 100 and one.epsilon_lower_bound == pytest.approx(3.49297, abs=1e-4)
    many = best_lower_bound(scores, included, guess_counts=[(50, 50), (20, 20), (10, 10)], delta=0.0)
    assert many.guesses == 100 and many.epsilon_lower_bound < one.epsilon_lower_bound  # β/3 per test


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"canaries": 10, "guesses": 11, "correct": 1}, "guesses"),
        ({"canaries": 10, "guesses": 5, "correct": -1}, "correct"),
        ({"canaries": 10, "guesses": 5, "correct": 2, "delta": 1.5}, "delta"),
        ({"canaries": 10, "guesses": 5, "correct": 2, "confidence": 1.0}, "confidence"),
    ],
)
def test_bad_counts_are_refused_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        epsilon_lower_bound(**kwargs)  # type: ignore[arg-type]
