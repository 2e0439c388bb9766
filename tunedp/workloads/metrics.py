"""The default per-example loss and correct count of classification workloads (imports torch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["accuracy", "correct_count", "cross_entropy_per_example"]


def cross_entropy_per_example(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-example cross entropy (``reduction="none"``): DP-SGD clips each example's gradient."""
    return F.cross_entropy(outputs, targets, reduction="none")


def correct_count(outputs: torch.Tensor, targets: torch.Tensor) -> int:
    """How many argmax predictions are right: the sensitivity-1 count a private score release noises."""
    return int((outputs.argmax(dim=-1) == targets).sum().item())


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of correct argmax predictions."""
    if targets.numel() == 0:
        raise ValueError("accuracy of an empty split is undefined")
    return correct_count(outputs, targets) / int(targets.numel())
