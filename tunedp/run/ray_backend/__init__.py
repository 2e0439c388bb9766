"""The Ray Tune backend: runs a charged plan's trials. The only module that imports Ray, Tune or Optuna.

It is imported only when trials actually run, so planning, reporting,
tracking and the console never load Ray. Modes map to Tune as follows:

- ``random``: K is drawn by the driver; Tune's own sampler draws K points
  i.i.d. from the prior. Under ``release: best`` Ray's console output,
  worker logs and result files are silenced or kept in a temporary folder
  that is deleted.
- ``adaptive``: Optuna TPE via ``OptunaSearch`` (``max_concurrent_trials``
  set, as Ray otherwise drops to one trial at a time), optionally ASHA, whose
  rungs read only the noisy released scores.
- ``grid``: every point of the grid once.
- ``hypo``: K is drawn by the driver as for ``random``; a :class:`HypoSearcher`
  proposes each point from :mod:`tunedp.modes.hypo_proposal`'s bounded density given
  the finished trials' released scores (the metric Tune hands back, nothing
  else), so proposals adapt while the charge stays DP-HyPO's. Silenced and
  kept in a temporary folder as under ``release: best``.

Trials are never retried (``max_failures=0``): a retry would touch the data
again, outside what was charged. Every trial draws its batches, noise and
initialisation from fresh OS entropy; only a ``--seed`` run (not private)
derives them from the seed and the trial's index — never from its point,
since two trials at one point with shared batches are one mechanism at σ/√2,
not two at σ.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.basic_variant import BasicVariantGenerator

from tunedp.accounting.trial_event import TrialPlan
from tunedp.config import (
    AdaptiveSearch,
    ChoiceParam,
    FixedParam,
    GridSearch,
    HypoSearch,
    LogUniformParam,
    Resources,
    SearchConfig,
    UniformParam,
)
from tunedp.config.space import optimizer_hyperparameters
from tunedp.errors import ConfigError
from tunedp.modes.hypo_proposal import BoundedProposal
from tunedp.planning.single_stage import SearchPlan, grid_points
from tunedp.release.disclosure import Disclosure
from tunedp.release.records import TrialRecord, TrialStatus
from tunedp.run.failures import describe_failure
from tunedp.run.scoped import environment, logger_levels
from tunedp.run.scratch import private_folder, private_umask, remove_dead_scratch
from tunedp.workloads import WorkloadReference

__all__ = ["TrialsRun", "check_resources", "ensure_ray", "run_trials", "stop_ray"]

OBJECT_STORE_BYTES = 256 * 1024 * 1024
METRIC = "score"

#: Tune and Ray switches set for the duration of a search only.
_TUNE_ENVIRONMENT = {
    # Per-trial result files are not needed (the driver reads results in
    # memory) and would only be more data-dependent files on disk.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Ray's newer console output prints the number of trials and a results
    # path even at verbose=0; the legacy reporter honours verbose=0 fully.
    "RAY_AIR_NEW_OUTPUT": "0",
}
_RAY_DEFAULTS = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
#: Tune logs failed trials' tracebacks and per-trial status; under release: best keep them in.
_QUIET_LOGGERS = {name: logging.CRITICAL for name in ("ray.tune", "ray.train", "ray.air", "ray")}


@dataclass(frozen=True, kw_only=True)
class TrialsRun:
    """What the trials produced, inside the driver: every record, the selected one with its model."""

    records: tuple[TrialRecord, ...]
    best: TrialRecord | None
    nodes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class _TrialStatic:
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


def _trainable(point: dict[str, Any], static: _TrialStatic) -> None:
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


def _node_fingerprint(workload: WorkloadReference, nonce: bytes) -> str:
    """Runs ON a node: the keyed fingerprint of the workload's protected rows as that node loads them."""
    from tunedp.ledger.binding import protected_fingerprint

    return protected_fingerprint(workload, nonce)


def node_fingerprints(workload: WorkloadReference, nonce: bytes) -> list[tuple[str, str | BaseException]]:
    """(node, fingerprint or the error it raised) for every alive node of the connected cluster.

    One zero-CPU task pinned to each node (hard node affinity), so every copy
    of the data a trial could read is checked, not just the driver's. The
    nonce and the fingerprints travel as task arguments and results through
    Ray's object store only; nothing here logs them.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(_node_fingerprint)
    pending = []
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if not node.get("Alive"):
            continue
        strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        name = f"{node['NodeManagerAddress']} (node {str(node['NodeID'])[:12]})"
        pending.append((name, task.options(scheduling_strategy=strategy).remote(workload, nonce)))
    found: list[tuple[str, str | BaseException]] = []
    for name, ref in pending:
        try:
            found.append((name, str(ray.get(ref))))
        except Exception as error:  # a node that cannot import or load the workload
            cause = getattr(error, "cause", None)
            found.append((name, cause if isinstance(cause, BaseException) else error))
    return found


def _tune_domain(param: Any) -> Any:
    if isinstance(param, LogUniformParam):
        return tune.loguniform(param.low, param.high)
    if isinstance(param, UniformParam):
        return tune.uniform(param.low, param.high)
    if isinstance(param, ChoiceParam):
        return tune.choice(list(param.values))
    assert isinstance(param, FixedParam)
    return param.value


MODEL_KEY = "model"
"""The key of the searched model variant in a Tune trial's config (hyperparameter names never clash with it)."""


def split_variant(point: Mapping[str, Any], config: SearchConfig) -> tuple[str | None, dict[str, float]]:
    """(the trial's model variant, its numeric hyperparameters) from a Tune trial config."""
    variant = point.get(MODEL_KEY, config.model) if config.space.model is not None else config.model
    numeric = {k: float(v) for k, v in point.items() if k in config.space.params}
    return (str(variant) if variant is not None else None), numeric


def _param_space(config: SearchConfig) -> dict[str, Any]:
    if isinstance(config.search, HypoSearch):
        return {}  # the HypoSearcher draws every coordinate (the model variant too) itself
    variants = list(config.space.model.values) if config.space.model is not None else None
    if isinstance(config.search, GridSearch):
        space = {name: tune.grid_search(values) for name, values in _grid_axes(config).items()}
        if variants is not None:
            space[MODEL_KEY] = tune.grid_search(variants)
        return space
    space = {name: _tune_domain(p) for name, p in config.space.params.items()}
    if variants is not None:
        space[MODEL_KEY] = tune.choice(variants)
    return space


def _grid_axes(config: SearchConfig) -> dict[str, list[float]]:
    axes: dict[str, list[float]] = {}
    for point in grid_points(config):
        for name, value in point.items():
            if value not in axes.setdefault(name, []):
                axes[name].append(value)
    return axes


def ensure_ray(ray_address: str | None) -> Path | None:
    """Connect to ``ray_address`` or start a local Ray.

    Returns the private temporary folder of a Ray we started (to be stopped
    and removed by :func:`stop_ray`), ``None`` otherwise. A local Ray keeps its
    session logs — one line per trial from every worker, with its
    hyperparameters — and its workers their temporary files (``TMPDIR``) in
    that folder, inside the driver's mode-0700 scratch folder
    (:mod:`tunedp.run.scratch`), not in the shared ``/tmp/ray``; its processes run
    with umask 077. So nothing about a ``release: best`` search's trials is
    readable by another user while it runs, or outlives it (a killed driver's
    folder is removed by the next tunedp command, here included).
    """
    if ray.is_initialized():
        return None
    with environment(_RAY_DEFAULTS, override=False):
        # Worker output (a trial's prints, Tune's checkpoint chatter, tracebacks)
        # is data-dependent and not a release: it is never forwarded to this
        # console. A failed trial reaches the report through its record instead.
        if ray_address is not None:
            ray.init(address=ray_address, log_to_driver=False, logging_level=logging.WARNING)
            return None
        remove_dead_scratch()  # what a killed driver left, before this one adds its own
        tempfile.gettempdir()  # the driver's own temp folder is fixed (cached) before TMPDIR changes below
        temp_dir = private_folder("r")  # short: Ray's unix sockets live in it (107-byte path limit)
        workers_tmp = temp_dir / "tmp"
        workers_tmp.mkdir(mode=0o700)
        # address="local": start our own instance even if `ray start` left a
        # cluster file behind on this machine (ray.init would try to join it).
        # Ray's processes inherit the umask and TMPDIR set here (its workers
        # are started by the raylet, which inherits them), the driver keeps its own.
        with private_umask(), environment({"TMPDIR": str(workers_tmp)}):
            ray.init(
                address="local",
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=OBJECT_STORE_BYTES,
                log_to_driver=False,
                logging_level=logging.WARNING,
                _node_ip_address="127.0.0.1",
                _temp_dir=str(temp_dir),
            )
    return temp_dir


def stop_ray(temp_dir: Path | None) -> None:
    """Stop a Ray that :func:`ensure_ray` started and remove its private folder (logs included)."""
    if temp_dir is None:
        return
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


def check_resources(resources: Resources) -> int:
    """How many trials the connected cluster runs at once; a one-line ConfigError if it cannot run one.

    Called before the charge (pre-flight) and again when trials start.
    """
    available = ray.cluster_resources()  # type: ignore[no-untyped-call]
    cpus, gpus = float(available.get("CPU", 0)), float(available.get("GPU", 0))
    if resources.gpus > 0 and gpus < resources.gpus:
        raise ConfigError(
            f"resources.gpus (--gpus-per-trial) = {resources.gpus:g} per trial but the Ray cluster has {gpus:g} GPUs; "
            "give at most that (0 trains on CPUs) or connect a cluster with GPUs (--ray-address)"
        )
    if cpus < resources.cpus:
        raise ConfigError(
            f"resources.cpus (--cpus-per-trial) = {resources.cpus:g} per trial but the Ray cluster has {cpus:g} CPUs; "
            f"give at most {cpus:g}"
        )
    slots = int(cpus // resources.cpus)
    if resources.gpus > 0:
        slots = min(slots, int(gpus // resources.gpus))
    return max(1, slots)


def run_trials(
    plan: SearchPlan,
    *,
    trial_count: int,
    rng: np.random.Generator,
    seed: int | None,
    ray_address: str | None,
    max_concurrent: int | None,
    disclosure: Disclosure,
    select: Callable[[Sequence[TrialRecord]], TrialRecord | None],
    on_trial_done: Callable[[TrialRecord, int, int], None] | None = None,
    on_record: Callable[[TrialRecord], None] | None = None,
) -> TrialsRun:
    """Run ``trial_count`` trials of ``plan`` on Ray Tune and keep the selected trial's model.

    Raises ``KeyboardInterrupt`` when the trials were stopped before all
    finished (Tune's own Ctrl-C handler returns normally): nothing of an
    interrupted search is released.

    ``on_record`` (inside the driver, never an observer) receives every trial
    that finished — completed or failed, with its checkpoint folder while it
    still exists — so an interrupted search can be resumed (:mod:`tunedp.run.resume`).
    """
    if trial_count == 0:
        return TrialsRun(records=(), best=None, nodes=())
    config = plan.config
    quiet = {} if disclosure.releases_all else _QUIET_LOGGERS
    ray_temp = ensure_ray(ray_address)
    # Tune's experiment files name every trial and count them: in the driver's 0700 scratch folder.
    storage = private_folder("tune-")
    try:
        with (
            environment(_TUNE_ENVIRONMENT),
            logger_levels({**quiet, "ray.tune.analysis.experiment_analysis": logging.ERROR}),
        ):
            slots = check_resources(config.resources)
            concurrency = max(1, min(max_concurrent or slots, trial_count))
            cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
            own = max(1, int(config.resources.cpus))
            static = _TrialStatic(
                config_json=config.model_dump_json(),
                plan=plan.trial,
                base_seed=seed,
                threads=own if concurrency > 1 else max(own, min(2, cpus)),
            )
            progress = _progress_callback(
                config, trial_count, on_trial_done if disclosure.releases_all else None, on_record
            )
            tuner = tune.Tuner(
                tune.with_resources(
                    tune.with_parameters(_trainable, static=static),
                    {"cpu": config.resources.cpus, "gpu": config.resources.gpus},
                ),
                param_space=_param_space(config),
                tune_config=_tune_config(plan, trial_count, concurrency, rng),
                run_config=tune.RunConfig(
                    name="search",
                    storage_path=str(storage),
                    verbose=0,
                    failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                    callbacks=[progress],
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
            results = tuner.fit()
        if progress.finished < trial_count:
            # Tune's own Ctrl-C handler stopped the trials cleanly and returned.
            # Nothing is released from an interrupted search: under release:
            # best, the best of however many trials happened to finish is not
            # what the charge's repeat-and-select bound covers.
            raise KeyboardInterrupt
        records = [_record_of_result(config, results[i]) for i in range(len(results))]
        chosen = select(records)
        best = _keep_checkpoint(chosen)
        records = [best if r is chosen and best is not None else replace(r, checkpoint_path=None) for r in records]
        nodes = tuple(sorted({r.node_id for r in records if r.node_id}))
        return TrialsRun(records=tuple(records), best=best, nodes=nodes)
    finally:
        stop_ray(ray_temp)
        shutil.rmtree(storage, ignore_errors=True)


def _tune_config(plan: SearchPlan, trial_count: int, concurrency: int, rng: np.random.Generator) -> Any:
    config = plan.config
    sampler_seed = int(rng.integers(0, 2**31 - 1))
    if isinstance(config.search, AdaptiveSearch):
        import optuna
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        searcher = OptunaSearch(
            metric=METRIC,
            mode="max",
            sampler=optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=config.search.startup_trials),
        )
        scheduler = None
        if config.search.scheduler == "asha":
            scheduler = ASHAScheduler(
                time_attr="evaluation",
                max_t=config.training.evaluations,
                grace_period=min(config.search.grace_period, config.training.evaluations),
                reduction_factor=config.search.reduction_factor,
            )
        return tune.TuneConfig(
            metric=METRIC,
            mode="max",
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=trial_count,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
        )
    if isinstance(config.search, GridSearch):
        return tune.TuneConfig(num_samples=1, max_concurrent_trials=concurrency, reuse_actors=True)
    if isinstance(config.search, HypoSearch):
        # Tune wraps the searcher in a ConcurrencyLimiter; the searcher itself fixes which
        # earlier trials each point learns from (by position, lagging by the concurrency).
        return tune.TuneConfig(
            metric=METRIC,
            mode="max",
            search_alg=HypoSearcher(
                BoundedProposal.of_config(config, model_key=MODEL_KEY), seed=sampler_seed, lag=concurrency
            ),
            num_samples=trial_count,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
        )
    # Reusing trial actors saves a Python start, a torch import and a data
    # load per trial: most of a short trial's overhead.
    return tune.TuneConfig(
        # Tune ignores max_concurrent_trials for a BasicVariantGenerator; it
        # takes its own limit.
        search_alg=BasicVariantGenerator(random_state=sampler_seed, max_concurrent=concurrency),
        num_samples=trial_count,
        reuse_actors=True,
    )


class HypoSearcher(Searcher):
    """Tune's side of a ``hypo`` search: each point drawn from the bounded proposal of the trials before it.

    What the proposal learns is (point, released score) of earlier trials:
    ``result[METRIC]``, the last score a trial released, noisy and already
    charged. Failed trials teach nothing. Which earlier trials it learns from
    is fixed by position, not by timing: the j-th point (0-based) learns from
    trials 0 … j − ``lag`` exactly, and waits (Tune asks again) until those
    have finished. With ``lag`` the number of trials run at once, trials that
    happen to finish early (their wall time is no release) cannot change what
    a later proposal saw. However the history turns out, the proposal's ratio
    to the prior stays in [c, C] (:mod:`tunedp.modes.hypo_proposal`), which is all
    DP-HyPO's bound asks; a resumed search restarts with no history, which
    stays inside the same bounds. The searcher lives in the driver; Tune's
    copy of its state goes to the search's temporary storage, deleted with it.
    """

    def __init__(self, proposal: BoundedProposal, *, seed: int, lag: int = 1) -> None:
        super().__init__(metric=METRIC, mode="max")
        if lag < 1:
            raise ValueError(f"Expected lag={lag} >= 1")
        self._proposal = proposal
        self._rng = np.random.default_rng(seed)
        self._lag = lag
        self._ids: list[str] = []  # trial ids in the order their points were proposed
        self._points: list[dict[str, Any]] = []
        self._outcomes: dict[int, float | None] = {}  # position → released score (None: failed, no score)

    @property
    def history(self) -> list[tuple[dict[str, Any], float]]:
        """The finished trials with a score, in proposal order."""
        return [(self._points[i], s) for i, s in sorted(self._outcomes.items()) if s is not None]

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        position = len(self._ids)
        known = max(0, position - self._lag + 1)  # trials 0 … known − 1 inform this point
        if any(i not in self._outcomes for i in range(known)):
            return None  # an earlier trial it must learn from is still running: Tune asks again
        history = [(self._points[i], score) for i in range(known) if (score := self._outcomes[i]) is not None]
        point = self._proposal.sample(history, self._rng)
        self._ids.append(trial_id)
        self._points.append(point)
        return dict(point)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self._ids:
            return
        score = float(result[METRIC]) if result and not error and METRIC in result else math.nan
        self._outcomes[self._ids.index(trial_id)] = score if math.isfinite(score) else None

    def save(self, checkpoint_path: str) -> None:
        state = {
            "rng": self._rng.bit_generator.state,
            "lag": self._lag,
            "ids": self._ids,
            "points": self._points,
            "outcomes": [[i, s] for i, s in sorted(self._outcomes.items())],
        }
        Path(checkpoint_path).write_text(json.dumps(state))

    def restore(self, checkpoint_path: str) -> None:
        state = json.loads(Path(checkpoint_path).read_text())
        self._rng.bit_generator.state = state["rng"]
        self._lag, self._ids, self._points = int(state["lag"]), list(state["ids"]), list(state["points"])
        self._outcomes = {int(i): (None if s is None else float(s)) for i, s in state["outcomes"]}


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


def _record_of_result(config: SearchConfig, result: Any) -> TrialRecord:
    return trial_record(
        config,
        result.config,
        result.metrics,
        failed=result.error is not None,
        error=result.error,
        checkpoint_path=result.checkpoint.path if result.checkpoint is not None else None,
    )


def _keep_checkpoint(best: TrialRecord | None) -> TrialRecord | None:
    """Copy the selected trial's checkpoint out of Ray's storage before it is removed."""
    if best is None or best.checkpoint_path is None:
        return best
    keep = private_folder("best-")
    shutil.copytree(best.checkpoint_path, keep, dirs_exist_ok=True)
    return replace(best, checkpoint_path=str(keep))


def _progress_callback(
    config: SearchConfig,
    planned: int,
    on_trial_done: Callable[[TrialRecord, int, int], None] | None,
    on_record: Callable[[TrialRecord], None] | None = None,
) -> Any:
    """A Tune callback counting finished trials and, where every trial is released, reporting each."""

    class ProgressCallback(tune.Callback):
        # Everything it needs comes through __init__: a closure over the
        # observers would be pickled with the class (cloudpickle copies local
        # classes by value) and live consoles cannot be pickled.
        def __init__(
            self,
            config: SearchConfig,
            planned: int,
            on_trial_done: Callable[[TrialRecord, int, int], None] | None,
            on_record: Callable[[TrialRecord], None] | None,
        ) -> None:
            self.finished = 0
            self._config = config
            self._planned = planned
            self._on_trial_done = on_trial_done
            self._on_record = on_record

        def __getstate__(self) -> dict[str, Any]:
            # Ray pickles callbacks into its experiment state; observers (consoles,
            # trackers) are live driver-side objects and stay out of it.
            return {**self.__dict__, "_on_trial_done": None, "_on_record": None}

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._finished(trial, failed=False)

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self._finished(trial, failed=True)

        def _finished(self, trial: Any, *, failed: bool) -> None:
            self.finished += 1
            if self._on_record is None and self._on_trial_done is None:
                return
            checkpoint = getattr(trial, "checkpoint", None)
            record = trial_record(
                self._config,
                trial.config,
                trial.last_result,
                failed=failed,
                error=_trial_error(trial) if failed else None,
                checkpoint_path=checkpoint.path if checkpoint is not None else None,
            )
            if self._on_record is not None:
                self._on_record(record)
            if self._on_trial_done is None:
                return  # nothing about a single trial may leave before selection
            self._on_trial_done(replace(record, checkpoint_path=None), self.finished, self._planned)

    return ProgressCallback(config, planned, on_trial_done, on_record)


def _trial_error(trial: Any) -> BaseException | None:
    """The exception a failed Tune trial raised, if Tune kept it (its error file is text only)."""
    try:
        error = trial.get_error()
    except Exception:  # informational: the record is 'failed' either way
        return None
    return error if isinstance(error, BaseException) else None
