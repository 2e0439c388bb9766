"""The registry of update rules and the factory that builds one from a search-space mapping.

Names are the strings search spaces use; adding a rule means adding its class
to ``_RULES`` (no if/elif dispatch). This module never privatizes.
"""

from __future__ import annotations

from collections.abc import Mapping

from tunedp.optim.adam import DpAdam
from tunedp.optim.adamwosm import DpAdamWosm
from tunedp.optim.dp2 import Dp2RmsProp
from tunedp.optim.sgd import DpSgd
from tunedp.optim.update_rule import UpdateRule

__all__ = ["UPDATE_RULES", "build_update_rule"]

_RULES: dict[str, type[UpdateRule]] = {rule.name: rule for rule in (DpSgd, DpAdam, DpAdamWosm, Dp2RmsProp)}

UPDATE_RULES: tuple[str, ...] = tuple(_RULES)
"""Every optimizer name :func:`build_update_rule` accepts."""


def build_update_rule(name: str, hyperparameters: Mapping[str, float]) -> UpdateRule:
    """A fresh rule ``name`` with ``hyperparameters`` over its defaults; one-line ValueError otherwise."""
    rule = _RULES.get(name)
    if rule is None:
        raise ValueError(f"Unknown optimizer={name!r}; expected one of {', '.join(UPDATE_RULES)}")
    return rule.from_hyperparameters(hyperparameters)
