"""Ranges of the update rules' hyperparameters, and the one-line errors for values outside them.

Every key a search space may name (``lr``, ``clip_norm``, ``beta1``, ...) has one
range here, so the factory, the rule constructors and the error messages agree.
This module only validates numbers; it never builds a rule or touches a tensor.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["HYPERPARAMETER_RANGES", "check_hyperparameter", "check_integer_hyperparameter"]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Range:
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


HYPERPARAMETER_RANGES: dict[str, _Range] = {
    "lr": _Range(low=0, low_open=True),
    "clip_norm": _Range(low=0, low_open=True),
    "momentum": _Range(low=0, high=1),
    "weight_decay": _Range(low=0),
    "beta1": _Range(low=0, high=1),
    "beta2": _Range(low=0, high=1),
    "eps": _Range(low=0, low_open=True),
    "cutoff": _Range(low=0, integer=True),
    "delay": _Range(low=1, integer=True),
    "gamma": _Range(low=0, high=1),
    "clip_norm_2": _Range(low=0, low_open=True),
    "lr_2": _Range(low=0, low_open=True),
}
"""Allowed range of every hyperparameter key, whichever rule takes it."""


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
