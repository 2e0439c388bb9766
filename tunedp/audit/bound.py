"""The arithmetic of one-run auditing (Steinke, Nasr & Jagielski, NeurIPS 2023): guesses → ε lower bound.

The audit includes each of m canaries independently with probability 1/2,
runs the mechanism once, and then guesses "in" or "out" for r of them
(abstaining on the rest). If the mechanism is (ε, δ)-DP, the number of correct
guesses W is, up to a δ-term, stochastically dominated by Binomial(r, q) with
q = e^ε / (1 + e^ε) — the accuracy of ε-DP randomized response. Observing v
correct guesses therefore rejects (ε, δ)-DP at confidence 1 − β whenever

    P[Binomial(r, q) ≥ v] + 2·m·δ·α  <  β,
    α = max over i ∈ {1..v} of  P[v − i ≤ Binomial(r, q) < v] / i

(the paper's δ-aware bound, its Algorithm 2; α is not needed at δ = 0). The
empirical lower bound is the largest ε rejected. It is a *one-sided* test: a
correct mechanism yields a lower bound ≤ its true ε except with probability
≤ β, whatever the guesses were.

What keeps the bound valid here: the guess counts (k₊ highest scores guessed
"in", k₋ lowest guessed "out") are fixed before the scores are seen; when
several counts are tried, :func:`best_lower_bound` splits β between them
(union bound) instead of reporting the best of many tests at full confidence.

Pure Python + scipy: no torch, so the ledger side of an audit stays light.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "AuditCounts",
    "best_lower_bound",
    "count_guesses",
    "epsilon_lower_bound",
    "p_value",
    "randomized_response_accuracy",
]

#: The paper's confidence: 95 % (β = 0.05).
DEFAULT_CONFIDENCE = 0.95
#: ε is searched in [0, this]; a lower bound at the cap means "at least this".
MAX_EPSILON = 100.0
#: Bisection stops when the bracket is this narrow (ε units).
EPSILON_TOLERANCE = 1e-6


def randomized_response_accuracy(epsilon: float) -> float:
    """e^ε / (1 + e^ε): the best guessing accuracy an ε-DP mechanism allows on one canary."""
    return 1.0 / (1.0 + math.exp(-epsilon))


def _check_counts(canaries: int, guesses: int, correct: int) -> None:
    for name, value in (("canaries", canaries), ("guesses", guesses), ("correct", correct)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"Expected {name}={value!r} to be an integer >= 0")
    if not correct <= guesses <= canaries:
        raise ValueError(f"Expected correct={correct} <= guesses={guesses} <= canaries={canaries}")


def _check_delta(delta: float) -> None:
    if not (math.isfinite(delta) and 0 <= delta < 1):
        raise ValueError(f"Expected delta={delta} in [0, 1)")


def p_value(*, canaries: int, guesses: int, correct: int, epsilon: float, delta: float = 0.0) -> float:
    """Probability of ≥ ``correct`` right guesses out of ``guesses`` if the mechanism were (ε, δ)-DP.

    ``canaries`` (m) enters only through the δ-term 2·m·δ·α: each canary may
    be the one whose δ-event happens.
    """
    _check_counts(canaries, guesses, correct)
    _check_delta(delta)
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise ValueError(f"Expected epsilon={epsilon} >= 0")
    q = randomized_response_accuracy(epsilon)
    tail = float(stats.binom.sf(correct - 1, guesses, q))  # P[Binomial(r, q) >= v]
    if delta == 0 or correct == 0:
        return min(1.0, tail)
    # P[v - i <= Binomial(r, q) < v] for i = 1..v, as a running sum of the pmf below v.
    below = stats.binom.pmf(np.arange(correct - 1, -1, -1), guesses, q)
    alpha = float(np.max(np.cumsum(below) / np.arange(1, correct + 1)))
    return min(1.0, tail + 2.0 * canaries * delta * alpha)


def epsilon_lower_bound(
    *, canaries: int, guesses: int, correct: int, delta: float = 0.0, confidence: float = DEFAULT_CONFIDENCE
) -> float:
    """The largest ε at which (ε, δ)-DP is rejected at ``confidence`` (0 when nothing is rejected).

    The p-value grows with ε, so the rejected set is an interval [0, ε*) and
    bisection finds its end; the returned ε is always a rejected one (or 0).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"Expected confidence={confidence} in (0, 1)")
    beta = 1.0 - confidence

    def rejected(epsilon: float) -> bool:
        return p_value(canaries=canaries, guesses=guesses, correct=correct, epsilon=epsilon, delta=delta) < beta

    if not rejected(0.0):
        return 0.0
    low, high = 0.0, 1.0
    while rejected(high):
        if high >= MAX_EPSILON:
            return MAX_EPSILON
        low, high = high, min(MAX_EPSILON, 2.0 * high)
    while high - low > EPSILON_TOLERANCE:
        middle = (low + high) / 2.0
        if rejected(middle):
            low = middle
        else:
            high = middle
    return low


@dataclass(frozen=True, kw_only=True)
class AuditCounts:
    """The outcome of guessing: how many canaries, guesses and correct guesses, and the bound."""

    canaries: int
    included: int
    guesses_in: int
    guesses_out: int
    correct: int
    epsilon_lower_bound: float
    confidence: float
    delta: float

    @property
    def guesses(self) -> int:
        return self.guesses_in + self.guesses_out


def count_guesses(
    scores: Sequence[float] | np.ndarray, included: Sequence[bool] | np.ndarray, *, k_in: int, k_out: int
) -> int:
    """Correct guesses when the ``k_in`` highest scores are guessed "in" and the ``k_out`` lowest "out".

    Ties are broken by canary index (a fixed rule, independent of membership).
    """
    scores_array = np.asarray(scores, dtype=np.float64)
    member = np.asarray(included, dtype=bool)
    m = scores_array.shape[0]
    if member.shape != (m,):
        raise ValueError(f"scores hold {m} canaries but included {member.shape}; they must match")
    if k_in < 0 or k_out < 0 or k_in + k_out > m:
        raise ValueError(f"Expected k_in={k_in}, k_out={k_out} >= 0 with k_in + k_out <= {m} canaries")
    if not np.all(np.isfinite(scores_array)):
        raise ValueError("scores must be finite")
    order = np.argsort(scores_array, kind="stable")  # ascending; stable = ties by index
    lowest, highest = order[:k_out], order[m - k_in :]
    return int(member[highest].sum() + (~member[lowest]).sum())


def best_lower_bound(
    scores: Sequence[float] | np.ndarray,
    included: Sequence[bool] | np.ndarray,
    *,
    guess_counts: Sequence[tuple[int, int]],
    delta: float,
    confidence: float = DEFAULT_CONFIDENCE,
) -> AuditCounts:
    """The best bound over a list of (k₊, k₋) fixed in advance, each tested at 1 − β/len(list).

    Splitting β over the candidates (Bonferroni) keeps the reported bound a
    valid lower bound at ``confidence`` although the best candidate is chosen
    after seeing the scores. With one candidate this is the plain audit.
    """
    if not guess_counts:
        raise ValueError("Expected at least one (k_in, k_out) pair in guess_counts")
    member = np.asarray(included, dtype=bool)
    m = int(member.shape[0])
    per_test = 1.0 - (1.0 - confidence) / len(guess_counts)
    best: AuditCounts | None = None
    for k_in, k_out in guess_counts:
        correct = count_guesses(scores, member, k_in=k_in, k_out=k_out)
        bound = epsilon_lower_bound(canaries=m, guesses=k_in + k_out, correct=correct, delta=delta, confidence=per_test)
        if best is None or bound > best.epsilon_lower_bound:
            best = AuditCounts(
                canaries=m,
                included=int(member.sum()),
                guesses_in=k_in,
                guesses_out=k_out,
                correct=correct,
                epsilon_lower_bound=bound,
                confidence=confidence,
                delta=delta,
            )
    assert best is not None
    return best
