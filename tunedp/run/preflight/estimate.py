"""What the pre-flight adds to a plan: the expected wall time, and warnings that the budget buys nothing.

The wall time starts from the synthetic step the model check timed
(:mod:`~tunedp.run.preflight.model`); the warnings read only the plan's σ,
batch and validation size. Nothing here depends on private data.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunedp.planning.single_stage import SearchPlan

__all__ = [
    "SCORE_NOISE_WARNING_STD",
    "SEARCH_OVERHEAD_S",
    "TRIAL_OVERHEAD_S",
    "concurrency",
    "estimate_wall_seconds",
    "learning_noise_warning",
    "score_noise_std",
    "score_noise_warning",
]

#: Above this std (in accuracy units) a released validation score is mostly noise.
SCORE_NOISE_WARNING_STD = 0.05


def score_noise_std(plan: SearchPlan) -> float | None:
    """Std of a released validation score in accuracy units: σ_score / validation size (None if public)."""
    sigma = plan.trial.score_noise_multiplier
    return None if sigma is None else sigma / plan.sizes.validation


def score_noise_warning(plan: SearchPlan) -> str | None:
    """A warning when the score noise swamps differences between trials (std > 0.05 in accuracy)."""
    std = score_noise_std(plan)
    if std is None or std <= SCORE_NOISE_WARNING_STD:
        return None
    return (
        f"validation.score_noise_multiplier: score noise std ≈ {std:.3g} in accuracy units "
        f"(σ_score {plan.trial.score_noise_multiplier:g} / {plan.sizes.validation} validation rows) exceeds "
        f"{SCORE_NOISE_WARNING_STD:g}: released scores are mostly noise and selection close to random; "
        f"lower it to ≤ {SCORE_NOISE_WARNING_STD * plan.sizes.validation:.3g}"
    )


def learning_noise_warning(plan: SearchPlan) -> str | None:
    """A warning when a step's noise exceeds anything its gradient can carry: training will not learn.

    Each coordinate of the averaged clipped gradient is at most C in size
    (a whole clipped gradient on one coordinate); the noise added to that
    average has standard deviation σC / (qN) per coordinate. When σ / (qN)
    exceeds 1 the noise is larger than the largest possible signal on every
    coordinate at every step (σ = 157 at a batch of 120, a plan seen in the
    wild): the budget buys nothing. Data-independent: σ and qN are the plan's.
    """
    sigma = max(segment.noise_multiplier for segment in plan.trial.segments)
    batch = plan.trial.expected_batch_size
    if sigma / batch <= 1.0:
        return None
    return (
        f"training: noise multiplier σ = {sigma:.4g} at an expected batch of {batch:.4g} puts more noise on every "
        "coordinate of the averaged gradient than any gradient can carry; training will not learn. Raise "
        "training.expected_batch_size (σ grows more slowly than the batch), train fewer steps, or raise the budget"
    )


#: What a search costs on top of its trials' steps, measured by ``benchmarks/overheads.py`` on the
#: 2-core development machine (``benchmarks/results/overheads.json``): a local Ray start, the
#: pre-flight, the charge and the MLflow run, and the release (the test metric, the model, MLflow's
#: artifacts), and the first trial's worker. Measured 20–22 s (digits, Fashion-MNIST); example.yaml's
#: search then took 21 s against an estimate of 24 s (was 0.5 s without these costs).
SEARCH_OVERHEAD_S = 22.0
#: What each trial costs on top of its steps (same benchmark): a Ray worker, its imports, the data
#: loaded and the model built, the evaluations, Tune's bookkeeping (Ray reuses the worker: ≤ 0.6 s).
#: On a cluster of several nodes workers are not reused (``ray_backend.cluster.reuse_actors``), so
#: each trial there also starts its worker, which this estimate (made before any cluster is seen) leaves out.
TRIAL_OVERHEAD_S = 1.0


def estimate_wall_seconds(
    plan: SearchPlan, step_seconds: float, concurrency: int, *, quantile: float | None = None
) -> float:
    """What a user waits for: fixed costs, then waves of trials (their steps and their own overhead).

    ``quantile`` (for a random K) takes that quantile of K's distribution
    instead of its mean: the plan shows the median and the 90th percentile,
    since a geometric K's tail is long. A staged search runs its stage-1
    trials, then one final run.
    """

    def trials_seconds(single: SearchPlan) -> float:
        shape = single.shape
        random_k = quantile is not None and shape.max_trials is None
        trials = float(shape.trial_count_quantile(quantile)) if random_k and quantile else shape.expected_trials
        waves = max(1, math.ceil(trials / concurrency))
        return waves * (TRIAL_OVERHEAD_S + step_seconds * single.trial.steps)

    total = SEARCH_OVERHEAD_S + trials_seconds(plan)
    for stage in plan.earlier_stages:  # a staged search's stage 1 first (steps timed at the final run's batch)
        total += trials_seconds(stage)
    return total


def concurrency(plan: SearchPlan, max_concurrent: int | None) -> int:
    """How many trials the estimate assumes run at once (the machine's cores, at most ⌈E[K]⌉)."""
    return max(1, min(max_concurrent or os.cpu_count() or 1, math.ceil(plan.shape.expected_trials)))
