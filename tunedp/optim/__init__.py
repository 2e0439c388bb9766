"""Private optimizers: per-example gradients, flat clipping, Gaussian noise, and update rules on top.

The privatizer (:class:`Privatizer`) is the only DP-relevant computation; the
update rules (DP-SGD, DP-Adam, DP-AdamWOSM, DP²-RMSProp) post-process its
output. :func:`make_private` is the entry point for a user's own pipeline.
This package knows nothing of Ray or MLflow; its DpEvents come from
``tunedp.accounting`` so the optimizer and the accountant share one σ_t.
"""

from __future__ import annotations

from tunedp.lr_schedule import ConstantLr, CosineLr, LinearLr
from tunedp.optim.adam import DpAdam
from tunedp.optim.adamwosm import DpAdamWosm
from tunedp.optim.clipping import clip_factors, clipped_sum, per_example_norms
from tunedp.optim.dp2 import Dp2RmsProp
from tunedp.optim.memory import keep_freed_memory
from tunedp.optim.noise import gaussian_noise_like, make_generator
from tunedp.optim.per_sample import LossFn, check_model, per_example_gradients
from tunedp.optim.private import PrivateTrainer, make_private
from tunedp.optim.privatizer import CLIPPING_METHODS, PerExampleHook, Privatizer
from tunedp.optim.rules import UPDATE_RULES, build_update_rule
from tunedp.optim.sgd import DpSgd
from tunedp.optim.update_rule import Clipping, StepContext, UpdateRule
from tunedp.optimizers import HYPERPARAMETER_RANGES

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
