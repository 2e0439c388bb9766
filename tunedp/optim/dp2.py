"""DP²-RMSProp (Li et al., ICLR 2023): delayed preconditioners built from privatized gradients.

Steps alternate in phases of ``delay`` steps. In an *SGD phase* the step is
plain DP-SGD (clip C, rate ``lr``) and its privatized gradients are averaged;
at the end of the phase that average Ḡ updates the preconditioner
v ← γv + (1−γ)Ḡ². In the following *preconditioned phase* each example's
gradient is divided by √v + eps *before* clipping (at ``clip_norm_2``) and
noising, and the step uses ``lr_2``. Because v is built only from privatized
(already noised) gradients it is post-processing, and since the preconditioned
gradients are clipped, each step costs exactly one DP-SGD step's event (noise
σ·clip for that phase's clip norm). The rule never sees a raw gradient except
through the pre-clip hook, whose output the privatizer clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from tunedp.optim.specs import Dp2Hyperparameters
from tunedp.optim.update_rule import Clipping, StepContext, UpdateRule

__all__ = ["Dp2RmsProp"]


class Dp2RmsProp(UpdateRule):
    """Alternating DP-SGD / preconditioned phases of ``delay`` steps each, starting with DP-SGD."""

    name: ClassVar[str] = "dp2_rmsprop"
    hyperparameters_type: ClassVar[type[Dp2Hyperparameters]] = Dp2Hyperparameters

    def __init__(self, hyperparameters: Dp2Hyperparameters | None = None, /, **values: float) -> None:
        hp = hyperparameters or Dp2Hyperparameters.from_mapping(values)
        self.lr, self.clip_norm, self.delay, self.gamma = hp.lr, hp.clip_norm, hp.delay, hp.gamma
        self.clip_norm_2, self.lr_2, self.eps = hp.clip_norm_2, hp.lr_2, hp.eps
        self._preconditioner: list[Tensor] = []
        self._gradient_sum: list[Tensor] = []
        self._summed_steps = 0

    def preconditioned(self, step: int) -> bool:
        """Whether 0-based ``step`` lies in a preconditioned phase (odd-numbered phase)."""
        return (step // self.delay) % 2 == 1

    def clipping(self, step: int) -> Clipping:
        if self.preconditioned(step):
            return Clipping(clip_norm=self.clip_norm_2, hook=self._precondition)
        return Clipping(clip_norm=self.clip_norm)

    def _precondition(self, gradients: list[Tensor]) -> list[Tensor]:
        # Broadcasts the parameter-shaped denominator over the chunk dimension.
        return [g / (v.sqrt() + self.eps) for g, v in zip(gradients, self._preconditioner, strict=True)]

    def update(self, params: Sequence[Tensor], gradients: Sequence[Tensor], context: StepContext) -> None:
        if not self._preconditioner:
            self._preconditioner = [torch.zeros_like(p) for p in params]
            self._gradient_sum = [torch.zeros_like(p) for p in params]
        with torch.no_grad():
            if self.preconditioned(context.step):
                for param, gradient in zip(params, gradients, strict=True):
                    param.add_(gradient, alpha=-self.lr_2 * context.lr_scale)
                return
            for param, gradient, summed in zip(params, gradients, self._gradient_sum, strict=True):
                param.add_(gradient, alpha=-self.lr * context.lr_scale)
                summed.add_(gradient)
            self._summed_steps += 1
            if context.step % self.delay == self.delay - 1:
                for v, summed in zip(self._preconditioner, self._gradient_sum, strict=True):
                    mean = summed / self._summed_steps
                    v.mul_(self.gamma).addcmul_(mean, mean, value=1 - self.gamma)
                    summed.zero_()
                self._summed_steps = 0

    def state(self) -> dict[str, list[Tensor]]:
        if not self._preconditioner:
            return {}
        return {"preconditioner": list(self._preconditioner), "gradient_sum": list(self._gradient_sum)}
