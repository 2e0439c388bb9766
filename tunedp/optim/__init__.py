"""Private optimizers: per-example gradients, flat clipping, Gaussian noise, and update rules on top.

The privatizer (:class:`Privatizer`) is the only DP-relevant computation; the
update rules (DP-SGD, DP-Adam, DP-AdamWOSM, DP²-RMSProp) post-process its
output. :func:`make_private` is the entry point for a user's own pipeline.
This package knows nothing of Ray or MLflow (and loads torch only when a torch-backed name is used:
:mod:`tunedp.optim.specs` and :mod:`tunedp.optim.lr_schedule` are torch-free, for planning); its DpEvents come from
``tunedp.accounting`` so the optimizer and the accountant share one σ_t.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunedp.optim.adam import DpAdam
    from tunedp.optim.adamwosm import DpAdamWosm
    from tunedp.optim.clipping import clip_factors, clipped_sum, per_example_norms
    from tunedp.optim.dp2 import Dp2RmsProp
    from tunedp.optim.independence import check_model
    from tunedp.optim.lr_schedule import ConstantLr, CosineLr, LinearLr
    from tunedp.optim.memory import keep_freed_memory
    from tunedp.optim.noise import gaussian_noise_like, make_generator
    from tunedp.optim.per_sample import LossFn, per_example_gradients
    from tunedp.optim.private import PrivateTrainer, make_private
    from tunedp.optim.privatizer import CLIPPING_METHODS, PerExampleHook, Privatizer
    from tunedp.optim.rules import UPDATE_RULES, build_update_rule
    from tunedp.optim.sgd import DpSgd
    from tunedp.optim.specs import HYPERPARAMETER_RANGES
    from tunedp.optim.update_rule import Clipping, StepContext, UpdateRule

__all__ = [
    "CLIPPING_METHODS",
    "HYPERPARAMETER_RANGES",
    "UPDATE_RULES",
    "Clipping",
    "ConstantLr",
    "CosineLr",
    "Dp2RmsProp",
    "DpAdam",
    "DpAdamWosm",
    "DpSgd",
    "LinearLr",
    "LossFn",
    "PerExampleHook",
    "PrivateTrainer",
    "Privatizer",
    "StepContext",
    "UpdateRule",
    "build_update_rule",
    "check_model",
    "clip_factors",
    "clipped_sum",
    "gaussian_noise_like",
    "keep_freed_memory",
    "make_generator",
    "make_private",
    "per_example_gradients",
    "per_example_norms",
]

#: name → the module defining it; resolved on first use, so the torch-free modules of this package
#: (the optimizer specs, Poisson batches, learning-rate schedules) load without torch.
_LAZY = {
    "CLIPPING_METHODS": "tunedp.optim.privatizer",
    "Clipping": "tunedp.optim.update_rule",
    "ConstantLr": "tunedp.optim.lr_schedule",
    "CosineLr": "tunedp.optim.lr_schedule",
    "Dp2RmsProp": "tunedp.optim.dp2",
    "DpAdam": "tunedp.optim.adam",
    "DpAdamWosm": "tunedp.optim.adamwosm",
    "DpSgd": "tunedp.optim.sgd",
    "HYPERPARAMETER_RANGES": "tunedp.optim.specs",
    "LinearLr": "tunedp.optim.lr_schedule",
    "LossFn": "tunedp.optim.per_sample",
    "PerExampleHook": "tunedp.optim.privatizer",
    "PrivateTrainer": "tunedp.optim.private",
    "Privatizer": "tunedp.optim.privatizer",
    "StepContext": "tunedp.optim.update_rule",
    "UPDATE_RULES": "tunedp.optim.rules",
    "UpdateRule": "tunedp.optim.update_rule",
    "build_update_rule": "tunedp.optim.rules",
    "check_model": "tunedp.optim.independence",
    "clip_factors": "tunedp.optim.clipping",
    "clipped_sum": "tunedp.optim.clipping",
    "gaussian_noise_like": "tunedp.optim.noise",
    "keep_freed_memory": "tunedp.optim.memory",
    "make_generator": "tunedp.optim.noise",
    "make_private": "tunedp.optim.private",
    "per_example_gradients": "tunedp.optim.per_sample",
    "per_example_norms": "tunedp.optim.clipping",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tunedp.optim' has no attribute {name!r}")
