"""DP-SGD (Abadi et al. 2016): SGD with optional momentum and L2 weight decay on privatized gradients.

The momentum and weight-decay arithmetic follows ``torch.optim.SGD`` (no
dampening, no Nesterov), so with zero noise and a huge clip norm the two agree.
Post-processing only; it never sees raw gradients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from tunedp.optim.specs import SgdHyperparameters
from tunedp.optim.update_rule import Clipping, StepContext, UpdateRule

__all__ = ["DpSgd"]


class DpSgd(UpdateRule):
    """θ ← θ − lr · b, b ← μ·b + (g̃ + λθ) (b = g̃ + λθ without momentum)."""

    name: ClassVar[str] = "dp_sgd"
    hyperparameters_type: ClassVar[type[SgdHyperparameters]] = SgdHyperparameters

    def __init__(self, hyperparameters: SgdHyperparameters | None = None, /, **values: float) -> None:
        hp = hyperparameters or SgdHyperparameters.from_mapping(values)
        self.lr, self.clip_norm, self.momentum, self.weight_decay = hp.lr, hp.clip_norm, hp.momentum, hp.weight_decay
        self._buffers: list[Tensor] = []

    def clipping(self, step: int) -> Clipping:
        del step
        return Clipping(clip_norm=self.clip_norm)

    def update(self, params: Sequence[Tensor], gradients: Sequence[Tensor], context: StepContext) -> None:
        lr = self.lr * context.lr_scale
        with torch.no_grad():
            for index, (param, gradient) in enumerate(zip(params, gradients, strict=True)):
                direction = gradient if self.weight_decay == 0 else gradient.add(param, alpha=self.weight_decay)
                if self.momentum > 0:
                    if len(self._buffers) <= index:
                        self._buffers.append(direction.clone())
                    else:
                        self._buffers[index].mul_(self.momentum).add_(direction)
                    direction = self._buffers[index]
                param.add_(direction, alpha=-lr)

    def state(self) -> dict[str, list[Tensor]]:
        return {"momentum_buffer": list(self._buffers)} if self._buffers else {}
