"""What a Tune trial reports, and the :class:`~tunedp.release.records.TrialRecord` the driver builds from it.

Every report of a trial (:mod:`~tunedp.run.ray_backend.trainable`) carries its
*released* score under :data:`METRIC` and every score released so far; a
record holds only those, the trial's point and where it ran. The searched
model variant travels in a trial's Tune config under :data:`MODEL_KEY`.
No Ray import of its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tunedp.config import SearchConfig
from tunedp.config.space import optimizer_hyperparameters
from tunedp.release.records import TrialRecord, TrialStatus
from tunedp.run.failures import describe_failure

__all__ = ["METRIC", "MODEL_KEY", "record_of_result", "split_variant", "trial_record"]

#: The metric every trial reports to Tune: its last released (noisy or public) validation score.
METRIC = "score"

MODEL_KEY = "model"
"""The key of the searched model variant in a Tune trial's config (hyperparameter names never clash with it)."""


def split_variant(point: Mapping[str, Any], config: SearchConfig) -> tuple[str | None, dict[str, float]]:
    """(the trial's model variant, its numeric hyperparameters) from a Tune trial config."""
    variant = point.get(MODEL_KEY, config.model) if config.space.model is not None else config.model
    numeric = {k: float(v) for k, v in point.items() if k in config.space.params}
    return (str(variant) if variant is not None else None), numeric


def trial_record(
    config: SearchConfig,
    trial_config: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    *,
    failed: bool,
    error: BaseException | None = None,
    checkpoint_path: str | None = None,
) -> TrialRecord:
    """What the driver knows about one trial, from its Tune config and its last reported metrics."""
    variant, point = split_variant(trial_config or {}, config)
    metrics = metrics or {}
    try:
        hyper = optimizer_hyperparameters(point, config)
    except ValueError:
        hyper = {}
    status: TrialStatus
    if failed:
        status = "failed"
    elif metrics.get("finished"):
        status = "completed"
    else:
        status = "stopped"  # early-stopped by ASHA: its released scores are real
    # Every report carries the scores released so far (see _trainable).
    scores = [float(x) for x in json.loads(metrics["released_scores"])] if metrics.get("released_scores") else []
    # Ray's RayTaskError wraps the trial's exception; only a data-independent message is kept.
    reason = describe_failure(error) if error is not None else None
    return TrialRecord(
        point=point,
        variant=variant,
        hyperparameters=hyper,
        status=status,
        released_scores=() if failed else tuple(scores),
        node_id=metrics.get("node_id"),
        device=metrics.get("device"),
        gpu_ids=tuple(json.loads(metrics["gpu_ids"])) if metrics.get("gpu_ids") else (),
        train_seconds=float(metrics.get("train_seconds", 0.0) or 0.0),
        wall_time_s=float(metrics.get("trial_wall_s", 0.0) or 0.0),
        error=reason.text if reason is not None else None,
        error_public=reason is not None and reason.data_independent,
        checkpoint_path=checkpoint_path,
    )


def record_of_result(config: SearchConfig, result: Any) -> TrialRecord:
    """The record of one of Tune's final results (``ResultGrid[i]``)."""
    return trial_record(
        config,
        result.config,
        result.metrics,
        failed=result.error is not None,
        error=result.error,
        checkpoint_path=result.checkpoint.path if result.checkpoint is not None else None,
    )
