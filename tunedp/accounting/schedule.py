"""Noise schedules σ_t: the one definition both the optimizer and the accountant use.

A schedule is a *shape*: it maps a segment index to a factor that multiplies
the base noise multiplier. The base multiplier is what calibration solves for,
so the shape is chosen by the user and the scale by the privacy budget.

σ changes only at segment boundaries (every ``segment_steps`` steps, by default
one epoch). This keeps the accounting *exact* — the trial's DpEvent is a
composition of a handful of ``SelfComposedDpEvent`` blocks, one per distinct σ —
instead of thousands of distinct per-step events, and the optimizer reads its
σ_t from the very same segments, so the two can never drift apart.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ConstantSchedule",
    "CyclicSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "NoiseSchedule",
    "NoiseSegment",
    "StepSchedule",
    "noise_multiplier_at",
    "noise_segments",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)


class ConstantSchedule(BaseModel):
    """σ_t = σ for every step (plain DP-SGD)."""

    model_config = _FROZEN
    kind: Literal["constant"] = "constant"

    def factor(self, index: int, count: int) -> float:
        del index, count
        return 1.0


class LinearSchedule(BaseModel):
    """σ moves linearly from ``start``·σ (first segment) to ``end``·σ (last)."""

    model_config = _FROZEN
    kind: Literal["linear"] = "linear"
    start: float = Field(default=1.0, gt=0)
    end: float = Field(gt=0)

    def factor(self, index: int, count: int) -> float:
        if count <= 1:
            return self.start
        return self.start + (self.end - self.start) * index / (count - 1)


class ExponentialSchedule(BaseModel):
    """σ_i = start · decay^i: geometric change per segment."""

    model_config = _FROZEN
    kind: Literal["exponential"] = "exponential"
    start: float = Field(default=1.0, gt=0)
    decay: float = Field(gt=0)

    def factor(self, index: int, count: int) -> float:
        del count
        return self.start * self.decay**index


class StepSchedule(BaseModel):
    """σ is multiplied by ``gamma`` every ``every`` segments (staircase)."""

    model_config = _FROZEN
    kind: Literal["step"] = "step"
    start: float = Field(default=1.0, gt=0)
    gamma: float = Field(gt=0)
    every: int = Field(default=1, ge=1)

    def factor(self, index: int, count: int) -> float:
        del count
        return self.start * self.gamma ** (index // self.every)


class CyclicSchedule(BaseModel):
    """Triangular wave between ``low``·σ and ``high``·σ with ``period`` segments.

    The wave starts at ``high`` (most noise), falls to ``low`` at half period
    and climbs back, as in cyclical noise schedules for DP-SGD.
    """

    model_config = _FROZEN
    kind: Literal["cyclic"] = "cyclic"
    low: float = Field(gt=0)
    high: float = Field(gt=0)
    period: int = Field(default=2, ge=2)

    def factor(self, index: int, count: int) -> float:
        del count
        phase = (index % self.period) / self.period  # in [0, 1)
        tri = abs(2.0 * phase - 1.0)  # 1 at phase 0, 0 at phase 1/2
        return self.low + (self.high - self.low) * tri


NoiseSchedule = Annotated[
    ConstantSchedule | LinearSchedule | ExponentialSchedule | StepSchedule | CyclicSchedule,
    Field(discriminator="kind"),
]


@dataclass(frozen=True, kw_only=True, slots=True)
class NoiseSegment:
    """``steps`` consecutive steps that all use ``noise_multiplier`` (σ, relative to C)."""

    noise_multiplier: float
    steps: int


def noise_segments(
    schedule: ConstantSchedule | LinearSchedule | ExponentialSchedule | StepSchedule | CyclicSchedule,
    *,
    base_noise_multiplier: float,
    total_steps: int,
    segment_steps: int,
) -> tuple[NoiseSegment, ...]:
    """The exact run-length list of σ_t for a trial of ``total_steps`` steps.

    Adjacent segments with equal σ are merged so the accountant sees the
    smallest exact description. A σ that is not finite and positive is a
    programming or configuration error and is refused: a zero σ would mean an
    infinite ε, and we never silently produce one.
    """
    if total_steps < 1:
        raise ValueError(f"Expected total_steps={total_steps} >= 1")
    if segment_steps < 1:
        raise ValueError(f"Expected segment_steps={segment_steps} >= 1")
    if not (math.isfinite(base_noise_multiplier) and base_noise_multiplier > 0):
        raise ValueError(f"Expected base_noise_multiplier={base_noise_multiplier} > 0")
    count = math.ceil(total_steps / segment_steps)
    merged: list[NoiseSegment] = []
    for index in range(count):
        steps = min(segment_steps, total_steps - index * segment_steps)
        sigma = base_noise_multiplier * schedule.factor(index, count)
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"noise schedule gives sigma={sigma} at segment {index}; it must stay > 0")
        if merged and merged[-1].noise_multiplier == sigma:
            merged[-1] = NoiseSegment(noise_multiplier=sigma, steps=merged[-1].steps + steps)
        else:
            merged.append(NoiseSegment(noise_multiplier=sigma, steps=steps))
    return tuple(merged)


def noise_multiplier_at(segments: tuple[NoiseSegment, ...], step: int) -> float:
    """σ used at 0-based ``step``; the optimizer's side of the single source of truth."""
    if step < 0:
        raise ValueError(f"Expected step={step} >= 0")
    remaining = step
    for segment in segments:
        if remaining < segment.steps:
            return segment.noise_multiplier
        remaining -= segment.steps
    raise ValueError(f"step {step} is past the end of the schedule ({step - remaining} steps)")
