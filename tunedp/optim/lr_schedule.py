"""Learning-rate schedules: a public function of the step index that multiplies every learning rate.

Why it matters for private training: with DP noise the last steps of a run
decide how much of the noise is left in the released weights. Decaying the
step size over the run averages that noise out, and it makes the run far less
sensitive to a step size chosen too large — which is what a cheap, noisy
selection sometimes picks (``benchmarks/README.md``: on the Fashion-MNIST CNN
at η·C = 0.93, 82.2 % with a constant step, 84.4 % with cosine decay).

A schedule depends only on the step index and the planned length, never on
data or gradients, so it is post-processing of the privatized gradients: it
changes no DpEvent. It is a *shape*: the config's learning rate (searched or
fixed) is its peak, and each trial decays over its own planned length.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CONSTANT_LR", "ConstantLr", "CosineLr", "LinearLr", "LrSchedule", "LrScheduleShape"]

_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)


class ConstantLr(BaseModel):
    """The learning rate as configured at every step (the default)."""

    model_config = _FROZEN
    kind: Literal["constant"] = "constant"

    def factor(self, step: int, steps: int) -> float:
        """Multiplier of the learning rate at 0-based ``step`` of ``steps``."""
        del step, steps
        return 1.0


class _Decay(BaseModel):
    model_config = _FROZEN
    #: Multiplier reached at the end of the run (0: decay to zero).
    final_fraction: float = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)
    #: Share of the run spent warming up linearly from ~0 to the peak.
    warmup_fraction: float = Field(default=0.0, ge=0, lt=1, allow_inf_nan=False)

    def _progress(self, step: int, steps: int) -> tuple[float, float]:
        """(warm-up multiplier, progress in [0, 1] through the decay) at ``step``."""
        if steps < 1 or not 0 <= step < steps:
            raise ValueError(f"Expected 0 <= step={step} < steps={steps}")
        warmup = self.warmup_fraction * steps
        if step < warmup:
            return (step + 1) / warmup, 0.0
        span = max(1.0, steps - warmup)
        return 1.0, min(1.0, (step - warmup) / span)

    def _shape(self, progress: float) -> float:
        raise NotImplementedError

    def factor(self, step: int, steps: int) -> float:
        """Multiplier of the learning rate at 0-based ``step`` of ``steps``."""
        warm, progress = self._progress(step, steps)
        return warm * (self.final_fraction + (1.0 - self.final_fraction) * self._shape(progress))


class CosineLr(_Decay):
    """Cosine decay from the peak to ``final_fraction`` of it over the run (after any warm-up)."""

    kind: Literal["cosine"] = "cosine"

    def _shape(self, progress: float) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * progress))


class LinearLr(_Decay):
    """Linear decay from the peak to ``final_fraction`` of it over the run (after any warm-up)."""

    kind: Literal["linear"] = "linear"

    def _shape(self, progress: float) -> float:
        return 1.0 - progress


#: The default of every trainer: the learning rate as configured (frozen, so one instance serves all).
CONSTANT_LR = ConstantLr()

#: Any one schedule (what code that holds one is typed with).
LrScheduleShape = ConstantLr | CosineLr | LinearLr
#: The config field: a schedule chosen by its ``kind``.
LrSchedule = Annotated[LrScheduleShape, Field(discriminator="kind")]
