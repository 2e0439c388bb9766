"""The DpEvent of a whole search, built from the DpEvent of one trial.

- ``random`` with ``release: best``: ``RepeatAndSelectDpEvent(trial, mean, shape)``
  (Papernot & Steinke 2022). Only the best trial is released — and the number
  of trials K is not released either: the bound assumes K is random *and
  unseen*; publishing K turns the output into best-of-k for a known k, which
  the bound does not cover.
- ``random`` with ``release: all``: every trial is shown, so the charge is the
  composition of ``max_trials`` trials (K is capped at ``max_trials``; the cap
  is data-independent and composing fewer trials never costs more).
- ``adaptive`` and ``grid``: the (adaptive) composition of every trial at full
  planned length with all of its releases.
- ``hypo`` (``release: best``): K drawn as for ``random``, each trial's point
  proposed from earlier trials' released scores within a density ratio
  C/c of the prior: :class:`~tunedp.accounting.hypo.HypoDpEvent` (DP-HyPO,
  Wang et al. 2023; see :mod:`tunedp.accounting.hypo`). K stays unseen, as above.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from dp_accounting import dp_event

from tunedp.accounting.hypo import HypoDpEvent, check_hypo_parameters

__all__ = ["SearchShape", "draw_trial_count", "naive_event", "search_event", "tnb_gamma"]


@dataclass(frozen=True, kw_only=True)
class SearchShape:
    """The mode-dependent part of a search's privacy cost.

    ``expected_trials`` is the mean of K (random) or the fixed number of trials;
    ``max_trials`` is ``None`` when K is unbounded (random, ``release: best``);
    ``count_shape`` is the shape η of the distribution of K in random mode
    (truncated negative binomial; 0 logarithmic, 1 geometric, ∞ Poisson).
    """

    #: ``two_stage``/``public_proxy``: the shape of a staged search as a whole
    #: (one released run; its stage-1 search has its own shape, see tunedp.planning.staged).
    mode: Literal["random", "adaptive", "grid", "two_stage", "public_proxy", "hypo"]
    release: Literal["best", "all"]
    expected_trials: float
    max_trials: int | None
    count_shape: float | None = None
    #: ``hypo`` only: C/c, the most the adaptive proposal's density ratio to the prior may vary.
    density_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.expected_trials < 1:
            raise ValueError(f"Expected expected_trials={self.expected_trials} >= 1")
        if self.mode == "hypo":
            if self.release != "best" or self.count_shape is None or self.density_ratio is None:
                raise ValueError("a hypo search releases only the best trial and needs count_shape and density_ratio")
            check_hypo_parameters(mean=self.expected_trials, shape=self.count_shape, density_ratio=self.density_ratio)
        elif self.density_ratio is not None:
            raise ValueError(f"density_ratio applies to mode hypo only, not {self.mode}")
        if self.repeat_and_select:
            if self.count_shape is None or math.isnan(self.count_shape) or self.count_shape < 0:
                raise ValueError(f"Expected count_shape={self.count_shape} >= 0 for repeat-and-select")
            if self.max_trials is not None:
                raise ValueError("repeat-and-select must not cap the number of trials")
        elif self.max_trials is None or self.max_trials < 1:
            raise ValueError(f"Expected max_trials={self.max_trials} >= 1 for a composed search")

    @property
    def repeat_and_select(self) -> bool:
        """K random and unseen, only the best trial released: ``random/best``, and ``hypo`` (adaptive proposals)."""
        return self.mode in ("random", "hypo") and self.release == "best"

    @property
    def no_trial_probability(self) -> float:
        """P(K = 0): only Poisson K (η = ∞) can draw no trial at all.

        Papernot & Steinke's Poisson variant is *not* truncated — its guarantee
        covers the empty output — so with probability e^(−mean) a search runs
        no trial, releases nothing and keeps its charge. Every other shape draws
        K ≥ 1. The plan shows this figure so a user can choose before paying.
        """
        if self.mode == "random" and self.count_shape is not None and math.isinf(self.count_shape):
            return math.exp(-self.expected_trials)
        return 0.0

    def trial_count_quantile(self, q: float) -> int:
        """The smallest k with P(K ≤ k) ≥ q, K drawn as :func:`draw_trial_count` draws it.

        A property of the plan, not of any draw (so public): the plan shows
        the median and the 90th percentile, so that a user sees before paying
        how long the wait may be — a geometric K has a long tail.
        """
        if not 0 < q < 1:
            raise ValueError(f"Expected 0 < q={q} < 1")
        if self.mode not in ("random", "hypo"):
            assert self.max_trials is not None
            return self.max_trials
        assert self.count_shape is not None
        cumulative = 0.0
        for k, probability in _trial_count_pmf(float(self.expected_trials), float(self.count_shape)):
            cumulative += probability
            if cumulative >= q * (1 - 1e-12):
                return k if self.max_trials is None else min(k, self.max_trials)
        raise AssertionError("unreachable: the probabilities sum to 1")

    @property
    def composed_trials(self) -> int:
        """How many trials a naive composition of this search would charge."""
        if self.max_trials is not None:
            return self.max_trials
        return math.ceil(self.expected_trials)


def _trial_count_pmf(mean: float, eta: float) -> Iterator[tuple[int, float]]:
    """(k, P(K = k)) for k = 0, 1, … of the distribution :func:`draw_trial_count` samples."""
    if math.isinf(eta):  # Poisson, not truncated
        for k in itertools.count():
            yield k, math.exp(k * math.log(mean) - mean - math.lgamma(k + 1))
        return
    if mean == 1.0:  # γ = 1: a point mass at 1
        yield 1, 1.0
        return
    gamma = tnb_gamma(mean, eta)
    if eta == 0:  # logarithmic with parameter 1 − γ
        for k in itertools.count(1):
            yield k, -math.exp(k * math.log1p(-gamma)) / (k * math.log(gamma))
        return
    # Negative binomial (η successes at probability γ; k failures) conditioned on k ≥ 1.
    truncation = -math.expm1(eta * math.log(gamma))  # 1 − γ^η
    for k in itertools.count(1):
        log_pmf = math.lgamma(k + eta) - math.lgamma(eta) - math.lgamma(k + 1)
        yield k, math.exp(log_pmf + eta * math.log(gamma) + k * math.log1p(-gamma)) / truncation


def search_event(trial: dp_event.DpEvent, shape: SearchShape) -> dp_event.DpEvent:
    """The event the ledger is charged for a search whose every trial is ``trial``."""
    if shape.mode == "hypo":
        assert shape.count_shape is not None and shape.density_ratio is not None  # checked in __post_init__
        return HypoDpEvent(trial, float(shape.expected_trials), float(shape.count_shape), float(shape.density_ratio))
    if shape.repeat_and_select:
        assert shape.count_shape is not None  # checked in __post_init__
        return dp_event.RepeatAndSelectDpEvent(trial, float(shape.expected_trials), float(shape.count_shape))
    assert shape.max_trials is not None
    return dp_event.SelfComposedDpEvent(trial, shape.max_trials)


def naive_event(trial: dp_event.DpEvent, shape: SearchShape) -> dp_event.DpEvent:
    """Composition of the same (expected, rounded up) number of trials, for comparison."""
    return dp_event.SelfComposedDpEvent(trial, shape.composed_trials)


def tnb_gamma(mean: float, shape: float) -> float:
    """The γ of the truncated negative binomial the RDP accountant assumes for (mean, shape).

    We call dp_accounting's own (private) solver on purpose: the number of
    trials the driver draws must follow *exactly* the distribution the
    repeat-and-select bound was computed for; re-deriving γ independently
    could drift by the solver's tolerance. (It returns the conservative end:
    the γ whose mean is at least ``mean``.)
    """
    from dp_accounting.rdp import rdp_privacy_accountant

    return float(rdp_privacy_accountant._gamma_truncated_negative_binomial(shape, mean))


def draw_trial_count(shape: SearchShape, rng: np.random.Generator) -> int:
    """Draw K, the number of trials, from the distribution the search was charged for.

    Random mode: truncated negative binomial (shape η > 0; η = 1 geometric),
    logarithmic (η = 0) or Poisson (η = ∞), as in Papernot & Steinke 2022;
    with ``release: all`` the draw is then capped at ``max_trials``.
    ``hypo`` draws K exactly as random mode does (its bound assumes the same
    truncated negative binomial). Other modes: the fixed number of trials.
    The draw is data-independent and must stay secret under ``release: best``
    (see module docstring).
    """
    if shape.mode not in ("random", "hypo"):
        assert shape.max_trials is not None
        return shape.max_trials
    assert shape.count_shape is not None
    mean, eta = float(shape.expected_trials), float(shape.count_shape)
    if math.isinf(eta):
        count = int(rng.poisson(mean))
    elif mean == 1.0:
        count = 1  # γ = 1: the distribution is a point mass at 1
    else:
        gamma = tnb_gamma(mean, eta)
        if eta == 0:
            count = int(rng.logseries(1.0 - gamma))
        else:
            count = 0
            while count == 0:  # truncation: condition on K ≥ 1
                count = int(rng.negative_binomial(eta, gamma))
    if shape.max_trials is not None:
        count = min(count, shape.max_trials)
    return count
