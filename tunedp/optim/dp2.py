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

from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from torch import Tensor

from tunedp.optim.hyperparameters import check_hyperparameter, check_integer_hyperparameter
from tunedp.optim.update_rule import Clipping, StepContext, UpdateRule

__all__ = ["Dp2RmsProp"]


class Dp2RmsProp(UpdateRule):
    """Alternating DP-SGD / preconditioned phases of ``delay`` steps each, starting with DP-SGD."""

    name: ClassVar[str] = "dp2_rmsprop"
    defaults: ClassVar[Mapping[str, float]] = {
        "lr": 0.1,
        "clip_norm": 1.0,
        "delay": 50,
        "gamma": 0.9,
        "clip_norm_2": 1.0,
        "lr_2": 0.1,
        "eps": 1e-8,
    }

    def __init__(
        self,
        *,
        lr: float = 0.1,
        clip_norm: float = 1.0,
        delay: int = 50,
        gamma: float = 0.9,
        clip_norm_2: float = 1.0,
        lr_2: float = 0.1,
        eps: float = 1e-8,
    ) -> None:
        self.lr = check_hyperparameter("lr", lr)
        self.clip_norm = check_hyperparameter("clip_norm", clip_norm)
        self.delay = check_integer_hyperparameter("delay", delay)
        self.gamma = check_hyperparameter("gamma", gamma)
        self.clip_norm_2 = check_hyperparameter("clip_norm_2", clip_norm_2)
        self.lr_2 = check_hyperparameter("lr_2", lr_2)
        self.eps = check_hyperparameter("eps", eps)
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
                    param.add_(gradient, alpha=-self.lr_2)
                return
            for param, gradient, summed in zip(params, gradients, self._gradient_sum, strict=True):
                param.add_(gradient, alpha=-self.lr)
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
