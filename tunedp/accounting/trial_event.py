"""The plan of one trial and the DpEvent it implies.

A :class:`TrialPlan` bundles every number whose *combination* is the trial's
privacy guarantee — sampling rate, step count, the σ_t segments and the
validation-score releases — so the optimizer settings and the accounted event
are derived from the same object and cannot drift apart.

One step is ``PoissonSampledDpEvent(q, GaussianDpEvent(σ_t))``. One private
score release is a Gaussian noisy count of correct predictions on the
validation split (sensitivity 1 under add/remove of one example):
``GaussianDpEvent(σ_score)``. With public validation the releases cost nothing
and are left out of the event.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dp_accounting import dp_event

from tunedp.accounting.schedule import NoiseSegment

__all__ = ["TrialPlan", "steps_event", "with_score_releases"]


def steps_event(sampling_rate: float, segments: tuple[NoiseSegment, ...]) -> dp_event.DpEvent:
    """The DpEvent of the training steps alone: one self-composition per σ segment."""
    if not 0 < sampling_rate <= 1:
        raise ValueError(f"Expected sampling_rate={sampling_rate} in (0, 1]")
    parts: list[dp_event.DpEvent] = []
    for segment in segments:
        if segment.steps < 1:
            raise ValueError(f"Expected segment steps={segment.steps} >= 1")
        step = dp_event.PoissonSampledDpEvent(sampling_rate, dp_event.GaussianDpEvent(segment.noise_multiplier))
        parts.append(dp_event.SelfComposedDpEvent(step, segment.steps))
    if not parts:
        return dp_event.NoOpDpEvent()
    return parts[0] if len(parts) == 1 else dp_event.ComposedDpEvent(parts)


def with_score_releases(
    training: dp_event.DpEvent, score_noise_multiplier: float | None, releases: int
) -> dp_event.DpEvent:
    """``training`` composed with ``releases`` Gaussian score releases (none when public)."""
    if score_noise_multiplier is None or releases == 0:
        return training
    scores = dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(score_noise_multiplier), releases)
    return dp_event.ComposedDpEvent([training, scores])


@dataclass(frozen=True, kw_only=True)
class TrialPlan:
    """Everything about one trial that the privacy guarantee depends on.

    ``dataset_size`` is the size of the training split the Poisson sampling
    runs over; ``sampling_rate`` q gives the expected batch size qN, which is
    also the divisor of the noisy gradient sum. ``evaluation_steps`` are the
    (1-based) step counts after which the validation score is released; each
    is one Gaussian release of std ``score_noise_multiplier`` on a count, or
    free when ``score_noise_multiplier`` is ``None`` (public validation).
    """

    dataset_size: int
    sampling_rate: float
    steps: int
    segments: tuple[NoiseSegment, ...]
    evaluation_steps: tuple[int, ...]
    score_noise_multiplier: float | None

    def __post_init__(self) -> None:
        if self.dataset_size < 1:
            raise ValueError(f"Expected dataset_size={self.dataset_size} >= 1")
        if not 0 < self.sampling_rate <= 1:
            raise ValueError(f"Expected sampling_rate={self.sampling_rate} in (0, 1]")
        if sum(s.steps for s in self.segments) != self.steps:
            raise ValueError("noise segments must cover exactly `steps` steps")
        if any(not 1 <= s <= self.steps for s in self.evaluation_steps):
            raise ValueError(f"evaluation steps must lie in [1, {self.steps}]")
        if list(self.evaluation_steps) != sorted(set(self.evaluation_steps)):
            raise ValueError("evaluation steps must be strictly increasing")
        if self.score_noise_multiplier is not None and not (
            math.isfinite(self.score_noise_multiplier) and self.score_noise_multiplier > 0
        ):
            raise ValueError(
                f"Expected score_noise_multiplier={self.score_noise_multiplier} > 0 (or public validation)"
            )

    @property
    def expected_batch_size(self) -> float:
        """qN: the divisor of the noisy gradient sum (not the realised batch size)."""
        return self.sampling_rate * self.dataset_size

    @property
    def score_releases(self) -> int:
        """How many validation scores are charged (0 with public validation)."""
        return 0 if self.score_noise_multiplier is None else len(self.evaluation_steps)

    def dp_event(self) -> dp_event.DpEvent:
        """The trial's event: its steps composed with its charged score releases."""
        return with_score_releases(
            steps_event(self.sampling_rate, self.segments), self.score_noise_multiplier, len(self.evaluation_steps)
        )
