"""The optimizers a search may name: names, hyperparameters with ranges and defaults, clip-invariance.

The one source of truth that the config (which names and couplings are
valid), the search space (which values are integers) and :mod:`tunedp.optim`
(each update rule's constructor) derive from. Torch-free, so a config can
be validated without loading torch.

Each rule's hyperparameters are a frozen keyword-only dataclass whose field
defaults are *the* defaults and whose construction validates every value
against its range, with the one-line ``Expected lr=-1 > 0`` message.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

__all__ = [
    "CLIP_INVARIANT_OPTIMIZERS",
    "HYPERPARAMETER_RANGES",
    "INTEGER_HYPERPARAMETERS",
    "OPTIMIZER_NAMES",
    "OPTIMIZER_SPECS",
    "AdamHyperparameters",
    "AdamWosmHyperparameters",
    "Dp2Hyperparameters",
    "Hyperparameters",
    "OptimizerSpec",
    "SgdHyperparameters",
    "check_hyperparameter",
    "check_integer_hyperparameter",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class HyperparameterRange:
    """Allowed values of one hyperparameter: an interval, optionally of integers."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = True
    integer: bool = False

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


HYPERPARAMETER_RANGES: dict[str, HyperparameterRange] = {
    "lr": HyperparameterRange(low=0, low_open=True),
    "clip_norm": HyperparameterRange(low=0, low_open=True),
    "momentum": HyperparameterRange(low=0, high=1),
    "weight_decay": HyperparameterRange(low=0),
    "beta1": HyperparameterRange(low=0, high=1),
    "beta2": HyperparameterRange(low=0, high=1),
    "eps": HyperparameterRange(low=0, low_open=True),
    "cutoff": HyperparameterRange(low=0, integer=True),
    "delay": HyperparameterRange(low=1, integer=True),
    "gamma": HyperparameterRange(low=0, high=1),
    "clip_norm_2": HyperparameterRange(low=0, low_open=True),
    "lr_2": HyperparameterRange(low=0, low_open=True),
}
"""Allowed range of every hyperparameter key, whichever rule takes it."""

#: Hyperparameters that count steps: sampled as floats, used as integers.
INTEGER_HYPERPARAMETERS = frozenset(name for name, spec in HYPERPARAMETER_RANGES.items() if spec.integer)


def _number(name: str, value: object) -> float:
    # bool is an int subclass; True as a learning rate is a bug, not 1.0. numbers.Real admits numpy scalars.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"Expected {name}={value!r} to be a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"Expected {name}={value!r} to be finite")
    return number


def check_hyperparameter(name: str, value: object) -> float:
    """``value`` as a float if it lies in ``name``'s range, else a one-line ValueError."""
    spec = HYPERPARAMETER_RANGES[name]
    number = _number(name, value)
    if not spec.contains(number):
        raise ValueError(f"Expected {name}={value!r} {spec.describe()}")
    return number


def check_integer_hyperparameter(name: str, value: object) -> int:
    """``value`` as an int (``50.0`` is accepted: search spaces hold floats) if integral and in range."""
    spec = HYPERPARAMETER_RANGES[name]
    number = _number(name, value)
    if not number.is_integer() or not spec.contains(number):
        raise ValueError(f"Expected {name}={value!r} to be an integer {spec.describe()}")
    return int(number)


@dataclass(frozen=True, kw_only=True)
class Hyperparameters:
    """Base of every rule's hyperparameters: validates (and converts) each field on construction."""

    #: The optimizer name, for error messages (set by each subclass).
    rule_name = ""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if HYPERPARAMETER_RANGES[field.name].integer:
                checked: float = check_integer_hyperparameter(field.name, value)
            else:
                checked = check_hyperparameter(field.name, value)
            object.__setattr__(self, field.name, checked)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Self:
        """Build from a search-space mapping over the defaults; one-line ValueError for an unknown key."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ValueError(
                f"{cls.rule_name} does not take hyperparameter {unknown[0]!r}; allowed: {', '.join(cls.names())}"
            )
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return {name: float(value) for name, value in asdict(self).items()}


@dataclass(frozen=True, kw_only=True)
class SgdHyperparameters(Hyperparameters):
    rule_name = "dp_sgd"
    lr: float = 0.1
    clip_norm: float = 1.0
    momentum: float = 0.0
    weight_decay: float = 0.0


@dataclass(frozen=True, kw_only=True)
class AdamHyperparameters(Hyperparameters):
    rule_name = "dp_adam"
    lr: float = 1e-3
    clip_norm: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass(frozen=True, kw_only=True)
class AdamWosmHyperparameters(AdamHyperparameters):
    rule_name = "dp_adamwosm"
    cutoff: int = 0


@dataclass(frozen=True, kw_only=True)
class Dp2Hyperparameters(Hyperparameters):
    rule_name = "dp2_rmsprop"
    lr: float = 0.1
    clip_norm: float = 1.0
    delay: int = 50
    gamma: float = 0.9
    clip_norm_2: float = 1.0
    lr_2: float = 0.1
    eps: float = 1e-8


@dataclass(frozen=True, kw_only=True)
class OptimizerSpec:
    """What the rest of tunedp may know about an update rule without importing torch."""

    name: str
    hyperparameters: type[Hyperparameters]
    #: The update does not depend on the clip norm C (Adam-type normalisation),
    #: so only ``lr`` is searched and C is fixed (``coupling: fixed_clip``).
    clip_invariant: bool

    @property
    def defaults(self) -> dict[str, float]:
        return self.hyperparameters().as_dict()


OPTIMIZER_SPECS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        OptimizerSpec(name="dp_sgd", hyperparameters=SgdHyperparameters, clip_invariant=False),
        OptimizerSpec(name="dp_adam", hyperparameters=AdamHyperparameters, clip_invariant=True),
        OptimizerSpec(name="dp_adamwosm", hyperparameters=AdamWosmHyperparameters, clip_invariant=True),
        OptimizerSpec(name="dp2_rmsprop", hyperparameters=Dp2Hyperparameters, clip_invariant=False),
    )
}
OPTIMIZER_NAMES: tuple[str, ...] = tuple(OPTIMIZER_SPECS)
CLIP_INVARIANT_OPTIMIZERS: tuple[str, ...] = tuple(n for n, s in OPTIMIZER_SPECS.items() if s.clip_invariant)
