"""From a point of the search space to optimizer settings: where the lr–clip coupling lands.

A search samples the *coupled* coordinates the config names (``step_size`` =
η·C and ``clip_norm`` for DP-SGD, only ``lr`` for Adam-type rules); a trial
needs the optimizer's own hyperparameters. This module is the one place that
translates, so the search driver, the trial runner and the reports agree.

Pure Python: imports neither torch nor Ray.
"""

from __future__ import annotations

from collections.abc import Mapping

from tunedp.config.params import FixedParam
from tunedp.config.search_config import SearchConfig
from tunedp.optim.specs import INTEGER_HYPERPARAMETERS

__all__ = ["INTEGER_HYPERPARAMETERS", "fixed_values", "optimizer_hyperparameters"]


def fixed_values(config: SearchConfig) -> dict[str, float]:
    """Parameters with ``distribution: fixed`` (not searched, always passed through)."""
    return {name: p.value for name, p in config.space.params.items() if isinstance(p, FixedParam)}


def optimizer_hyperparameters(point: Mapping[str, float], config: SearchConfig) -> dict[str, float]:
    """The optimizer hyperparameters a sampled ``point`` stands for, under the config's coupling.

    With ``coupling: lr_clip`` the learning rate is η = step_size / C: every
    (step_size, C) pair with the same step_size gives the same clipped DP-SGD
    trajectory up to the scale of C, which is why the space is searched that way.
    """
    values: dict[str, float] = {**fixed_values(config), **{k: float(v) for k, v in point.items()}}
    unknown = sorted(set(values) - set(config.space.params))
    if unknown:
        raise ValueError(f"point has hyperparameter {unknown[0]!r} that the search space does not define")
    missing = sorted(set(config.space.params) - set(values))
    if missing:
        raise ValueError(f"point lacks hyperparameter {missing[0]!r} of the search space")
    if config.training.clip_norm is not None:
        values["clip_norm"] = config.training.clip_norm
    if config.space.coupling == "lr_clip":
        step_size = values.pop("step_size")
        values["lr"] = step_size / values["clip_norm"]
    for name in INTEGER_HYPERPARAMETERS & values.keys():
        values[name] = float(round(values[name]))
    return values
