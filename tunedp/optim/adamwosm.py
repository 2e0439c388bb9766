"""DP-AdamWOSM (Mohapatra et al., AAAI 2022): Adam without its second moment, limit-derived.

Under DP noise Adam's second moment is dominated by the noise and tends to
(σC/B)², B = qN the expected batch size; replacing √v̂ by that limit gives
θ ← θ − lr/(σC/B) · m̂ₜ with bias-corrected momentum m̂. The step uses σ_t of
the step being taken, so noise schedules are followed. Optionally the first
``cutoff`` steps are plain DP-Adam (whose v then is dropped). With σ = 0 the
limit is 0 and the rule is undefined: refused with an error, never a
division by zero. Post-processing only; it never sees raw gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from tunedp.accounting.schedule import NoiseSegment
from tunedp.optim.adam import DpAdam
from tunedp.optim.specs import AdamWosmHyperparameters
from tunedp.optim.update_rule import StepContext

__all__ = ["DpAdamWosm"]


class DpAdamWosm(DpAdam):
    """DP-Adam for ``step < cutoff``, then θ ← θ(1 − lr·λ) − lr · m̂ₜ/(σₜC/B)."""

    name: ClassVar[str] = "dp_adamwosm"
    hyperparameters_type: ClassVar[type[AdamWosmHyperparameters]] = AdamWosmHyperparameters

    def __init__(self, hyperparameters: AdamWosmHyperparameters | None = None, /, **values: float) -> None:
        hp = hyperparameters or AdamWosmHyperparameters.from_mapping(values)
        super().__init__(hp)
        self.cutoff = hp.cutoff

    def check_segments(self, segments: Sequence[NoiseSegment]) -> None:
        start = 0
        for segment in segments:
            if segment.noise_multiplier <= 0 and start + segment.steps > self.cutoff:
                raise ValueError(self._undefined(max(start, self.cutoff), segment.noise_multiplier))
            start += segment.steps

    @staticmethod
    def _undefined(step: int, sigma: float) -> str:
        return (
            f"dp_adamwosm needs noise_multiplier > 0 (got {sigma} at step {step}): its second-moment "
            "limit (σC/B)² is 0 there; use dp_adam, or a cutoff past the noiseless steps"
        )

    def update(self, params: Sequence[Tensor], gradients: Sequence[Tensor], context: StepContext) -> None:
        if context.step < self.cutoff:
            self._adam_step(params, gradients, context)
            return
        limit = context.noise_std
        if not limit > 0:
            raise ValueError(self._undefined(context.step, context.noise_multiplier))
        self._moments(params, second=False)
        self._second = []  # the limit replaces v from here on
        lr = self.lr * context.lr_scale
        step_size = lr / ((1 - self.beta1 ** (context.step + 1)) * limit)
        with torch.no_grad():
            for param, gradient, first in zip(params, gradients, self._first, strict=True):
                param.mul_(1 - lr * self.weight_decay)
                first.lerp_(gradient, 1 - self.beta1)
                param.add_(first, alpha=-step_size)
