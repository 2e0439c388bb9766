"""DP-Adam: bias-corrected Adam with decoupled (AdamW) weight decay on privatized gradients.

Weight decay is decoupled (θ ← θ(1 − lr·λ)) rather than added to the gradient:
a coupled L2 term would be divided by Adam's noise-dominated √v̂ and so change
strength with σ. The arithmetic follows ``torch.optim.AdamW`` (``Adam`` when
λ = 0), so with zero noise and a huge clip norm the two agree. Post-processing
only; it never sees raw gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from tunedp.optim.specs import AdamHyperparameters
from tunedp.optim.update_rule import Clipping, StepContext, UpdateRule

__all__ = ["DpAdam"]


class DpAdam(UpdateRule):
    """m ← β₁m + (1−β₁)g̃, v ← β₂v + (1−β₂)g̃², θ ← θ − lr · m̂/(√v̂ + eps)."""

    name: ClassVar[str] = "dp_adam"
    hyperparameters_type: ClassVar[type[AdamHyperparameters]] = AdamHyperparameters

    def __init__(self, hyperparameters: AdamHyperparameters | None = None, /, **values: float) -> None:
        hp = hyperparameters or self.hyperparameters_type.from_mapping(values)
        self.lr, self.clip_norm, self.weight_decay = hp.lr, hp.clip_norm, hp.weight_decay
        self.beta1, self.beta2, self.eps = hp.beta1, hp.beta2, hp.eps
        self._first: list[Tensor] = []
        self._second: list[Tensor] = []

    def clipping(self, step: int) -> Clipping:
        del step
        return Clipping(clip_norm=self.clip_norm)

    def _moments(self, params: Sequence[Tensor], *, second: bool) -> None:
        if not self._first:
            self._first = [torch.zeros_like(p) for p in params]
        if second and not self._second:
            self._second = [torch.zeros_like(p) for p in params]

    def update(self, params: Sequence[Tensor], gradients: Sequence[Tensor], context: StepContext) -> None:
        self._adam_step(params, gradients, context)

    def _adam_step(self, params: Sequence[Tensor], gradients: Sequence[Tensor], context: StepContext) -> None:
        self._moments(params, second=True)
        t = context.step + 1
        lr = self.lr * context.lr_scale
        step_size = lr / (1 - self.beta1**t)
        root_correction = math.sqrt(1 - self.beta2**t)
        with torch.no_grad():
            for param, gradient, first, second in zip(params, gradients, self._first, self._second, strict=True):
                param.mul_(1 - lr * self.weight_decay)
                first.lerp_(gradient, 1 - self.beta1)
                second.mul_(self.beta2).addcmul_(gradient, gradient, value=1 - self.beta2)
                denominator = (second.sqrt() / root_correction).add_(self.eps)
                param.addcdiv_(first, denominator, value=-step_size)

    def state(self) -> dict[str, list[Tensor]]:
        kinds = {"exp_avg": self._first, "exp_avg_sq": self._second}
        return {kind: list(tensors) for kind, tensors in kinds.items() if tensors}
