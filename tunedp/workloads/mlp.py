"""Model pieces more than one built-in workload uses (torch): declared once here."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TanhMlp"]


class TanhMlp(nn.Module):
    """One hidden tanh layer: the smallest non-linear model, cheap per example (bounded activations suit DP-SGD).

    ``flatten`` first flattens an image. The layers live in ``self.layers``
    (``Flatten``?, ``Linear``, ``Tanh``, ``Linear``), so a state dict's keys
    are ``layers.<i>.weight`` as they were before the workloads shared it.
    """

    def __init__(self, features: int, hidden: int, classes: int, *, flatten: bool = False) -> None:
        super().__init__()
        first: list[nn.Module] = [nn.Flatten()] if flatten else []
        self.layers = nn.Sequential(*first, nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, classes))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers(inputs)  # type: ignore[no-any-return]
