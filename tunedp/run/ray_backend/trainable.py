"""One Ray Tune trial: the function Tune runs in a worker, and what every trial of a search shares.

A trial trains one DP run (:func:`tunedp.run.trial.run_trial`) and reports
each *released* score to Tune (:data:`~tunedp.run.ray_backend.records.METRIC`),
the last one with the trained model as its checkpoint. Every trial draws its
batches, noise and initialisation from fresh OS entropy; only a ``--seed`` run
(not private) derives them from the seed and the trial's index — never from
its point, since two trials at one point with shared batches are one
mechanism at σ/√2, not two at σ.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune

from tunedp.accounting.trial_event import TrialPlan
from tunedp.config import Resources, SearchConfig
from tunedp.config.space import optimizer_hyperparameters
from tunedp.run.ray_backend.records import METRIC, split_variant

__all__ = ["TrialStatic", "trainable", "trial_seed"]


@dataclass(frozen=True, kw_only=True)
class TrialStatic:
    """What every trial of a search shares; passed to Ray via ``tune.with_parameters``."""

    config_json: str
    plan: TrialPlan
    #: ``None`` in a private search: every trial seeds itself from OS entropy.
    base_seed: int | None
    threads: int


def trial_seed(base_seed: int, trial_index: int) -> int:
    """A seeded (not private) run's seed for its ``trial_index``-th trial."""
    digest = hashlib.sha256(f"{base_seed}|trial|{trial_index}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def _trial_index() -> int:
    """This trial's index in the search (Tune's trial ids end in ``_00007``)."""
    trial_id = str(tune.get_context().get_trial_id())
    tail = trial_id.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else int.from_bytes(hashlib.sha256(trial_id.encode()).digest()[:4], "big")


def _trainable(point: dict[str, Any], static: TrialStatic) -> None:
    """One Ray Tune trial: run the trial and report each *released* score."""
    import torch

    from tunedp.optim import keep_freed_memory
    from tunedp.run.trial import EvaluationReport, TrialSettings, run_trial

    torch.set_num_threads(static.threads)
    # The trial's worker process exists to train: keeping freed heap memory
    # mapped removes ~15 ms of page faults per private step (benchmarks/optim).
    keep_freed_memory()
    config = SearchConfig.model_validate_json(static.config_json)
    variant, numeric = split_variant(point, config)
    hyper = optimizer_hyperparameters(numeric, config)
    device = _device()
    settings = TrialSettings(
        workload=config.workload,
        model=variant,
        optimizer=config.optimizer,
        hyperparameters=hyper,
        plan=static.plan,
        seed=trial_seed(static.base_seed, _trial_index()) if static.base_seed is not None else None,
        device=device,
        lr_schedule=config.training.lr_schedule,
        train_on_validation=config.training.train_on_validation,
    )
    node_id = _node_id()
    released: list[float] = []

    def report(evaluation: EvaluationReport) -> None:
        released.append(evaluation.released_score)
        if not evaluation.is_last:  # the last one goes out with the checkpoint below
            # Every report carries all scores released so far, so a trial that
            # ASHA stops still has its full released history in its last result.
            tune.report(
                {
                    METRIC: evaluation.released_score,
                    "evaluation": evaluation.index + 1,
                    "released_scores": json.dumps(released),
                    "node_id": node_id,
                }
            )

    # Only the selected model's test metric is ever reported; the driver
    # measures it after selection instead of every trial paying for it.
    result = run_trial(settings, report=report, evaluate_test=False)
    with tempfile.TemporaryDirectory() as folder:
        torch.save(result.model_state, Path(folder) / "model.pt")
        tune.report(
            {
                METRIC: result.final_score,
                "evaluation": len(result.released_scores),
                "released_scores": json.dumps(result.released_scores),
                "train_seconds": result.train_seconds,
                "trial_wall_s": result.wall_time_s,
                "node_id": node_id,
                "device": device,
                "gpu_ids": json.dumps([str(g) for g in ray.get_gpu_ids()]),
                "finished": True,
            },
            checkpoint=tune.Checkpoint.from_directory(folder),
        )


def _device() -> str:
    """Where this trial trains: the GPU Ray assigned it, if torch can see one; else the CPU.

    Ray exports the assigned GPU as CUDA_VISIBLE_DEVICES, so it is ``cuda:0``
    inside the trial. With Ray's *logical* GPUs on a machine without CUDA
    (how scheduling is tested) the trial trains on the CPU.
    """
    import torch

    return "cuda:0" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"


def _node_id() -> str:
    """The Ray node this trial runs on (nodes of one machine share an IP, not an id)."""
    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # informational only
        return "unknown"


def trainable(static: TrialStatic, resources: Resources) -> Any:
    """What ``tune.Tuner`` runs: every trial of a search, with its shared ``static`` part and ``resources``."""
    return tune.with_resources(
        tune.with_parameters(_trainable, static=static), {"cpu": resources.cpus, "gpu": resources.gpus}
    )
