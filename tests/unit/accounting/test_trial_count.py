"""The quantiles of K the plan shows, against scipy's distributions and against the driver's own draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tunedp.accounting.search_event import SearchShape, draw_trial_count, tnb_gamma

SHAPES = [(6.0, 0.0), (6.0, 0.5), (6.0, 1.0), (10.0, 3.0), (3.0, 1.0), (6.0, math.inf), (1.0, 1.0), (30.0, 1.0)]


def _shape(mean: float, eta: float) -> SearchShape:
    return SearchShape(mode="random", release="best", expected_trials=mean, max_trials=None, count_shape=eta)


def _scipy_quantile(mean: float, eta: float, q: float) -> int:
    """The same quantile from scipy: truncated nbinom / logser / poisson (an independent implementation)."""
    if math.isinf(eta):
        return int(stats.poisson(mean).ppf(q))
    if mean == 1.0:
        return 1
    gamma = tnb_gamma(mean, eta)
    if eta == 0:
        return int(stats.logser(1 - gamma).ppf(q))
    distribution = stats.nbinom(eta, gamma)
    below_one = distribution.pmf(0)
    # Conditioned on K >= 1: P(K <= k | K >= 1) = (F(k) - F(0)) / (1 - F(0)).
    return int(distribution.ppf(below_one + q * (1 - below_one)))


@pytest.mark.parametrize(("mean", "eta"), SHAPES)
@pytest.mark.parametrize("q", [0.5, 0.9, 0.99])
def test_quantiles_match_scipy(mean: float, eta: float, q: float) -> None:
    assert _shape(mean, eta).trial_count_quantile(q) == _scipy_quantile(mean, eta, q)


@pytest.mark.parametrize(("mean", "eta"), SHAPES)
def test_quantiles_match_the_driver_s_draws(mean: float, eta: float) -> None:
    shape = _shape(mean, eta)
    rng = np.random.default_rng(7)
    draws = np.array([draw_trial_count(shape, rng) for _ in range(20_000)])
    for q in (0.5, 0.9):
        k = shape.trial_count_quantile(q)
        assert np.mean(draws <= k) >= q - 0.01  # k covers q of the draws …
        assert k == 0 or np.mean(draws <= k - 1) < q + 0.01  # … and k − 1 does not


def test_a_composed_search_has_its_fixed_count() -> None:
    shape = SearchShape(mode="grid", release="all", expected_trials=4, max_trials=4)
    assert shape.trial_count_quantile(0.5) == shape.trial_count_quantile(0.9) == 4
    with pytest.raises(ValueError, match="q=1"):
        shape.trial_count_quantile(1)
