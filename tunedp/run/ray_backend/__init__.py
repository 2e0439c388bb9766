"""The Ray Tune backend: the cluster, the trials of a charged plan and their records.

With the search modes' Tune hooks (:mod:`tunedp.modes`, which import Ray
only inside their functions) this package is the only code that imports
Ray, Tune or Optuna, and it is imported only when a search connects Ray or
runs trials: planning, reporting, tracking and the console never load Ray.

- :mod:`~tunedp.run.ray_backend.cluster` — Ray's lifetime: connected (or a
  local Ray started in a private folder) after the pre-flight, before the
  charge; stopped when the search ends; every node's copy of the data checked.
- :mod:`~tunedp.run.ray_backend.tuner` — :func:`run_trials`: K trials of a plan,
  configured by the mode (:class:`~tunedp.run.ray_backend.tuner.TuneHooks`),
  never retried, silenced where the disclosure rule hides the trials.
- :mod:`~tunedp.run.ray_backend.trainable` — one trial in a Ray worker.
- :mod:`~tunedp.run.ray_backend.records` — what a trial reports and the record built from it.
- :mod:`~tunedp.run.ray_backend.searchers` — Tune searchers of tunedp's own (``hypo``'s).
"""

from __future__ import annotations

from tunedp.run.mode_run import TrialsRun
from tunedp.run.ray_backend.cluster import (
    check_resources,
    connect_ray,
    ensure_ray,
    node_fingerprints,
    ray_cluster,
    stop_ray,
)
from tunedp.run.ray_backend.records import METRIC, MODEL_KEY, split_variant, trial_record
from tunedp.run.ray_backend.searchers import HypoSearcher
from tunedp.run.ray_backend.trainable import trial_seed
from tunedp.run.ray_backend.tuner import TuneHooks, run_trials

__all__ = [
    "METRIC",
    "MODEL_KEY",
    "HypoSearcher",
    "TrialsRun",
    "TuneHooks",
    "check_resources",
    "connect_ray",
    "ensure_ray",
    "node_fingerprints",
    "ray_cluster",
    "run_trials",
    "split_variant",
    "stop_ray",
    "trial_record",
    "trial_seed",
]
