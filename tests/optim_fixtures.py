"""Shared small models and data for the optimizer tests (CPU, seconds)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))


def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, stride=1),
        nn.Tanh(),
        nn.MaxPool2d(2, 1),
        nn.Flatten(),
        nn.Linear(3 * 5 * 5, 4),
    )


@pytest.fixture(scope="session")
def mlp() -> Callable[..., nn.Module]:
    """Factory of a 6 → 5 → 3 tanh MLP, identical for equal seeds."""
    return _mlp


@pytest.fixture(scope="session")
def cnn() -> Callable[..., nn.Module]:
    """Factory of a tiny conv net on 1×8×8 inputs with 4 classes."""
    return _cnn


@pytest.fixture(scope="session")
def batch() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """Factory of a random (inputs, class targets) batch for the MLP."""

    def make(size: int = 8, seed: int = 1, features: int = 6, classes: int = 3):
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(size, features, generator=generator)
        targets = torch.randint(0, classes, (size,), generator=generator)
        return inputs, targets

    return make
