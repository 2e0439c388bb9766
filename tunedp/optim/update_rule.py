"""The contract every update rule implements: what to clip with, and how to step.

An update rule only *post-processes* privatized gradients (and, through a
clipping hook, may transform each example's gradient before it is clipped), so
it never changes the privacy guarantee: the DP event of a step is fixed by the
privatizer's clip norm and σ_t. Rules hold their own state (momenta,
preconditioners) and change parameters in place. This module defines the
interface only; it never privatizes and knows nothing of accounting.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from tunedp.accounting.schedule import NoiseSegment
from tunedp.optim.privatizer import PerExampleHook
from tunedp.optim.specs import Hyperparameters

__all__ = ["Clipping", "StepContext", "UpdateRule"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Clipping:
    """How one step privatizes: the clip norm C (noise std is σ·C) and an optional pre-clip hook."""

    clip_norm: float
    hook: PerExampleHook | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StepContext:
    """What a rule may know about the step it applies: its 0-based index and its privacy numbers.

    ``lr_scale`` is the learning-rate schedule's multiplier at this step
    (:mod:`tunedp.optim.lr_schedule`); every rule multiplies each of its learning
    rates (and so its decoupled weight decay) by it.
    """

    step: int
    noise_multiplier: float
    clip_norm: float
    expected_batch_size: float
    lr_scale: float = 1.0

    @property
    def noise_std(self) -> float:
        """σC/B: std of the noise in each coordinate of the privatized gradient."""
        return self.noise_multiplier * self.clip_norm / self.expected_batch_size


class UpdateRule(ABC):
    """A private optimizer's update on top of the privatizer.

    Its hyperparameters — keys, defaults, ranges — are the frozen dataclass
    ``hyperparameters_type`` of :mod:`tunedp.optim.specs` (the torch-free
    registry the config also reads); the rule never repeats them.
    ``clipping(step)`` is asked before the step is privatized, ``update``
    after, with the same ``step``.
    """

    name: ClassVar[str]
    hyperparameters_type: ClassVar[type[Hyperparameters]]

    def __init__(self, hyperparameters: Hyperparameters | None = None, /, **values: float) -> None:
        """Each rule takes its hyperparameter dataclass, or its fields as keywords (validated there)."""
        del hyperparameters, values

    @classmethod
    def defaults(cls) -> dict[str, float]:
        """Every hyperparameter key the rule takes, with its default."""
        return cls.hyperparameters_type().as_dict()

    @classmethod
    def from_hyperparameters(cls, hyperparameters: Mapping[str, Any]) -> UpdateRule:
        """Build from a search-space mapping over the defaults (one-line ValueError for a bad key or value)."""
        return cls(cls.hyperparameters_type.from_mapping(hyperparameters))

    @abstractmethod
    def clipping(self, step: int) -> Clipping:
        """Clip norm (and pre-clip hook) for 0-based ``step``."""

    @abstractmethod
    def update(self, params: Sequence[Tensor], gradients: Sequence[Tensor], context: StepContext) -> None:
        """Change ``params`` in place from their privatized ``gradients``."""

    @abstractmethod
    def state(self) -> dict[str, list[Tensor]]:
        """The rule's state tensors by kind (one per parameter, parameter-shaped); empty before a step."""

    def check_segments(self, segments: Sequence[NoiseSegment]) -> None:
        """Refuse a noise schedule the rule cannot run with (default: any schedule is fine)."""
        del segments
