"""The search driver on Ray Tune: plan → charge → trials → selection → outputs.

The order is the privacy contract: the search is planned (σ calibrated so the
*whole search* fits its budget) and charged to the dataset's ledger before
Ray starts and before any trial reads data. A search the ledger cannot admit
never starts. Once charged, the charge stays — whatever happens to the trials
(failure, Ctrl-C, a killed driver).

Modes map to Ray Tune as follows:

- ``random``: K is drawn by the driver (secure seed unless ``seed`` is given)
  from the distribution the ledger was charged for; Tune's own sampler draws
  K points i.i.d. from the prior. With ``release: best`` the driver keeps
  every trial's results to itself and releases only the best one (see
  :mod:`tunedp.disclosure`); Ray's console output, worker logs and result
  files are silenced or kept in a temporary folder that is deleted.
- ``adaptive``: Optuna TPE via ``OptunaSearch`` (``max_concurrent_trials``
  set, as Ray otherwise drops to one trial at a time), optionally ASHA, whose
  rungs read only the noisy released scores.
- ``grid``: every point of the grid once.

Trials are never retried (``max_failures=0``): a retry would touch the data
again, outside what was charged.

Only this module imports Ray.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import types
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tunedp.accounting.ledger import Charge, PrivacyLedger, default_ledger_path
from tunedp.accounting.search_event import draw_trial_count
from tunedp.accounting.serialization import event_to_json
from tunedp.accounting.trial import TrialPlan
from tunedp.config import (
    AdaptiveSearch,
    ChoiceParam,
    FixedParam,
    GridSearch,
    LogUniformParam,
    SearchConfig,
    UniformParam,
)
from tunedp.disclosure import Disclosure, TrialRecord, TrialStatus, disclosure_for
from tunedp.plan import SearchPlan, grid_points, plan_search
from tunedp.space import optimizer_hyperparameters

__all__ = ["SearchError", "SearchObserver", "SearchOutcome", "run_search", "search"]

log = logging.getLogger(__name__)

OBJECT_STORE_BYTES = 256 * 1024 * 1024
METRIC = "score"


class SearchError(RuntimeError):
    """The search ran (and was charged) but produced no result: exit code 1."""


class SearchObserver:
    """Hooks for progress display and tracking; every call already obeys the disclosure rule.

    The driver calls these only with what may leave it, so an observer (the
    console, MLflow) cannot leak by accident.
    """

    def on_charged(self, plan: SearchPlan, charge: Charge, ledger: PrivacyLedger) -> None:
        """The ledger was charged; trials are about to start."""

    def on_trial_done(self, record: TrialRecord, done: int, planned: int) -> None:
        """A trial finished (only called where the mode releases every trial)."""

    def on_finished(self, outcome: SearchOutcome) -> None:
        """The search is over; ``outcome`` holds only disclosable records."""


@dataclass(kw_only=True)
class SearchOutcome:
    """What a finished search releases, plus where it wrote its files."""

    search_id: str
    plan: SearchPlan
    charge: Charge
    best: TrialRecord | None
    disclosed_trials: list[TrialRecord]
    failed_trials_disclosed: int
    report: dict[str, Any]
    output_dir: Path
    ray_nodes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.best is not None


# ---------------------------------------------------------------------------- entry points


def search(
    config: SearchConfig,
    *,
    ledger_path: Path | None = None,
    ray_address: str | None = None,
    max_concurrent: int | None = None,
    seed: int | None = None,
    output_dir: Path | None = None,
    observers: list[SearchObserver] | None = None,
    tracking_uri: str | None = None,
) -> SearchOutcome:
    """Plan, charge and run a search; the Python API behind ``tunedp search``.

    Raises the user errors of planning and the ledger (nothing charged) before
    anything runs; raises :class:`SearchError` when every trial failed (the
    charge stays).
    """
    plan = plan_search(config)
    path = ledger_path or default_ledger_path(config.dataset_name)
    ledger = PrivacyLedger.open(path, dataset=config.dataset_name)
    observers = list(observers or [])
    tracker = make_tracker(tracking_uri)
    if tracker is not None:
        observers.append(tracker)
    return run_search(
        plan,
        ledger=ledger,
        ray_address=ray_address,
        max_concurrent=max_concurrent,
        seed=seed,
        output_dir=output_dir,
        observers=observers,
    )


def make_tracker(tracking_uri: str | None) -> SearchObserver | None:
    """The MLflow observer, unless switched off (``TUNEDP_TRACKING=0`` and no URI given).

    Imported lazily: only :mod:`tunedp.tracking` knows MLflow.
    """
    if tracking_uri is None and os.environ.get("TUNEDP_TRACKING", "1") == "0":
        return None
    try:
        from tunedp.tracking import MlflowTracker
    except ImportError:
        return None
    return MlflowTracker(tracking_uri=tracking_uri)


def run_search(
    plan: SearchPlan,
    *,
    ledger: PrivacyLedger,
    ray_address: str | None = None,
    max_concurrent: int | None = None,
    seed: int | None = None,
    output_dir: Path | None = None,
    observers: list[SearchObserver] | None = None,
) -> SearchOutcome:
    """Charge ``plan`` to ``ledger`` and run it on Ray Tune."""
    config = plan.config
    observers = observers or []
    disclosure = disclosure_for(plan.shape.mode, plan.shape.release)
    config_digest = config.fingerprint()
    search_id = uuid.uuid4().hex
    ledger_spent_before = ledger.spent_epsilon()

    # The charge: before Ray starts, before any data is read. Raises (and
    # charges nothing) when the ledger cannot admit the search.
    charge = ledger.charge(
        plan.event,
        config_hash=config_digest,
        mode=f"{plan.shape.mode}/{plan.shape.release}",
        label=config.name or config.workload,
        search_id=search_id,
    )
    ledger_spent_after = ledger.spent_epsilon()
    for observer in observers:
        _safely(observer.on_charged, plan, charge, ledger)

    output = Path(output_dir) if output_dir is not None else Path("runs") / search_id
    output.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    status = "failed"
    records: list[TrialRecord] = []
    best: TrialRecord | None = None
    nodes: list[str] = []
    try:
        ledger.set_status(search_id, "running")
        rng = np.random.default_rng(seed if seed is not None else secrets.randbits(128))
        trial_count = draw_trial_count(plan.shape, rng)
        records, best, nodes = _run_trials(
            plan,
            trial_count=trial_count,
            rng=rng,
            seed=seed,
            ray_address=ray_address,
            max_concurrent=max_concurrent,
            disclosure=disclosure,
            observers=observers,
        )
        status = "completed" if any(r.status != "failed" for r in records) else "failed"
    except KeyboardInterrupt:
        status = "interrupted"
        records, best = [], None
    finally:
        ledger.set_status(search_id, status)

    disclosed = disclosure.trials(records, best)
    best_model = None
    if best is not None and best.checkpoint_path is not None:
        best_model = output / "best_model.pt"
        shutil.copyfile(Path(best.checkpoint_path) / "model.pt", best_model)
        best.test_metric = _test_metric(plan.config, best_model)
        shutil.rmtree(best.checkpoint_path, ignore_errors=True)
        best.checkpoint_path = None
    report = _privacy_report(
        plan,
        charge=charge,
        ledger=ledger,
        spent_before=ledger_spent_before,
        spent_after=ledger_spent_after,
        best=best,
        disclosed=disclosed,
        disclosure=disclosure,
        started=started,
        status=status,
        best_model=best_model,
        nodes=nodes,
    )
    write_report(output, report)
    outcome = SearchOutcome(
        search_id=search_id,
        plan=plan,
        charge=charge,
        best=best,
        disclosed_trials=disclosed,
        failed_trials_disclosed=sum(1 for r in disclosed if r.status == "failed"),
        report=report,
        output_dir=output,
        ray_nodes=nodes,
    )
    for observer in observers:
        _safely(observer.on_finished, outcome)
    if status == "interrupted":
        raise KeyboardInterrupt
    if best is None:
        raise SearchError(
            f"every trial failed (or none was drawn); the charge of epsilon={charge.epsilon:.4g} stays. "
            f"Report: {output / 'report.json'}"
        )
    return outcome


def _test_metric(config: SearchConfig, model_file: Path) -> float | None:
    """The selected model's exact test accuracy (public test split; never used for selection)."""
    import torch

    from tunedp.trial import test_metric_of

    try:
        state = torch.load(model_file, map_location="cpu", weights_only=True)
        return test_metric_of(config.workload, config.model, state)
    except Exception as error:  # a missing dataset must not lose the search's results
        log.warning("test metric of the best model failed: %s", _one_line(error))
        return None


def _safely(hook: Callable[..., None], *args: Any) -> None:
    """Observers (display, tracking) must never lose a search's results."""
    try:
        hook(*args)
    except Exception as error:
        log.warning("%s failed: %s", getattr(hook, "__qualname__", hook), error)


def _select_best(records: list[TrialRecord]) -> TrialRecord | None:
    """The best trial by its final *released* score (never by anything unreleased).

    Trials that ran to completion come first: an early-stopped trial's last
    score is from a shorter run and it has no final model to release.
    """
    for status in ("completed", "stopped"):
        candidates = [r for r in records if r.status == status and r.released_scores]
        if candidates:
            return max(candidates, key=lambda r: r.final_score)
    return None


# ---------------------------------------------------------------------------- Ray


@dataclass(frozen=True, kw_only=True)
class _TrialStatic:
    """What every trial of a search shares; passed to Ray via ``tune.with_parameters``."""

    config_json: str
    plan: TrialPlan
    base_seed: int
    secure_noise: bool
    threads: int


def _trial_seed(base_seed: int, point: Mapping[str, Any]) -> int:
    text = json.dumps({k: point[k] for k in sorted(point)}, sort_keys=True)
    digest = hashlib.sha256(f"{base_seed}|{text}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def _trainable(point: dict[str, Any], static: _TrialStatic) -> None:
    """One Ray Tune trial: run the trial and report each *released* score."""
    import torch
    from ray import tune

    from tunedp.optim import keep_freed_memory
    from tunedp.trial import EvaluationReport, TrialSettings, run_trial

    torch.set_num_threads(static.threads)
    # The trial's worker process exists to train: keeping freed heap memory
    # mapped removes ~15 ms of page faults per private step (benchmarks/optim).
    keep_freed_memory()
    config = SearchConfig.model_validate_json(static.config_json)
    hyper = optimizer_hyperparameters(point, config)
    settings = TrialSettings(
        workload=config.workload,
        model=config.model,
        optimizer=config.optimizer,
        hyperparameters=hyper,
        plan=static.plan,
        seed=_trial_seed(static.base_seed, point),
        secure_noise=static.secure_noise,
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
                "finished": True,
            },
            checkpoint=tune.Checkpoint.from_directory(folder),
        )


def _node_id() -> str:
    """The Ray node this trial runs on (nodes of one machine share an IP, not an id)."""
    import ray

    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # informational only
        return "unknown"


def _tune_domain(param: Any) -> Any:
    from ray import tune

    if isinstance(param, LogUniformParam):
        return tune.loguniform(param.low, param.high)
    if isinstance(param, UniformParam):
        return tune.uniform(param.low, param.high)
    if isinstance(param, ChoiceParam):
        return tune.choice(list(param.values))
    assert isinstance(param, FixedParam)
    return param.value


def _param_space(config: SearchConfig) -> dict[str, Any]:
    return {name: _tune_domain(p) for name, p in config.space.params.items()}


def _ensure_ray(ray_address: str | None) -> bool:
    """Connect to ``ray_address`` or start a local Ray; True when we started it (and must stop it)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if ray.is_initialized():
        return False
    # Worker output (a trial's prints, Tune's checkpoint chatter, tracebacks)
    # is data-dependent and not a release: it is never forwarded to this
    # console. A failed trial reaches the report through its record instead.
    if ray_address is not None:
        ray.init(address=ray_address, log_to_driver=False, logging_level=logging.WARNING)
        return False
    # address="local": start our own instance even if `ray start` left a
    # cluster file behind on this machine (ray.init would try to join it).
    ray.init(
        address="local",
        num_cpus=os.cpu_count() or 1,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=False,
        logging_level=logging.WARNING,
        _node_ip_address="127.0.0.1",
    )
    return True


def _run_trials(
    plan: SearchPlan,
    *,
    trial_count: int,
    rng: np.random.Generator,
    seed: int | None,
    ray_address: str | None,
    max_concurrent: int | None,
    disclosure: Disclosure,
    observers: list[SearchObserver],
) -> tuple[list[TrialRecord], TrialRecord | None, list[str]]:
    if trial_count == 0:
        return [], None, []
    import ray
    from ray import tune

    config = plan.config
    quiet = not disclosure.releases_all
    started_ray = _ensure_ray(ray_address)
    if quiet:
        # Tune logs failed trials' tracebacks and per-trial status: keep them in.
        for name in ("ray.tune", "ray.train", "ray.air", "ray"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    # Per-trial result files are not needed (the driver reads results in
    # memory) and would only be more data-dependent files on disk.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    # Ray's newer console output prints the number of trials and a results
    # path even at verbose=0; the legacy reporter honours verbose=0 fully.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
    concurrency = max(1, min(max_concurrent or cpus, trial_count))
    threads = 1 if concurrency > 1 else max(1, min(2, cpus))
    static = _TrialStatic(
        config_json=config.model_dump_json(),
        plan=plan.trial,
        base_seed=seed if seed is not None else secrets.randbits(48),
        secure_noise=seed is None,
        threads=threads,
    )
    storage = Path(tempfile.mkdtemp(prefix="tunedp-ray-"))
    progress = _ProgressCallback(disclosure, observers, trial_count, config)
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trainable, static=static), {"cpu": 1}),
            param_space=_param_space_for(plan, trial_count),
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
        records = _records_from_results(results, config)
        best = _select_best(records)
        _keep_best_checkpoint(records, best)
        nodes = sorted({r.node_id for r in records if r.node_id})
        return records, best, nodes
    finally:
        if started_ray:
            ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)


def _param_space_for(plan: SearchPlan, trial_count: int) -> dict[str, Any]:
    from ray import tune

    config = plan.config
    if isinstance(config.search, GridSearch):
        return {name: tune.grid_search(values) for name, values in _grid_axes(config).items()}
    return _param_space(config)


def _grid_axes(config: SearchConfig) -> dict[str, list[float]]:
    axes: dict[str, list[float]] = {}
    for point in grid_points(config):
        for name, value in point.items():
            if value not in axes.setdefault(name, []):
                axes[name].append(value)
    return axes


def _tune_config(plan: SearchPlan, trial_count: int, concurrency: int, rng: np.random.Generator) -> Any:
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

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
    # Reusing trial actors saves a Python start, a torch import and a data
    # load per trial: most of a short trial's overhead.
    return tune.TuneConfig(
        # Tune ignores max_concurrent_trials for a BasicVariantGenerator; it
        # takes its own limit.
        search_alg=BasicVariantGenerator(random_state=sampler_seed, max_concurrent=concurrency),
        num_samples=trial_count,
        reuse_actors=True,
    )


def _trial_record(
    config: SearchConfig, trial_config: Mapping[str, Any] | None, metrics: Mapping[str, Any] | None, *, failed: bool
) -> TrialRecord:
    """What the driver knows about one trial, from its Tune config and its last reported metrics."""
    searched = set(config.space.params)
    point = {k: float(v) for k, v in (trial_config or {}).items() if k in searched}
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
    return TrialRecord(
        point=point,
        hyperparameters=hyper,
        status=status,
        released_scores=[] if failed else scores,
        node_id=metrics.get("node_id"),
        train_seconds=float(metrics.get("train_seconds", 0.0) or 0.0),
        wall_time_s=float(metrics.get("trial_wall_s", 0.0) or 0.0),
    )


def _records_from_results(results: Any, config: SearchConfig) -> list[TrialRecord]:
    records = []
    for result in results:
        record = _trial_record(config, result.config, result.metrics, failed=result.error is not None)
        if result.error is not None:
            record.error = _one_line(result.error)
        if result.checkpoint is not None:
            record.checkpoint_path = result.checkpoint.path
        records.append(record)
    return records


def _one_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def _keep_best_checkpoint(records: list[TrialRecord], best: TrialRecord | None) -> None:
    """Copy the best trial's checkpoint out of Ray's storage before it is removed."""
    for record in records:
        if record is not best:
            record.checkpoint_path = None
    if best is not None and best.checkpoint_path is not None:
        keep = Path(tempfile.mkdtemp(prefix="tunedp-best-"))
        shutil.copytree(best.checkpoint_path, keep, dirs_exist_ok=True)
        best.checkpoint_path = str(keep)


def _make_progress_base() -> type:
    from ray.tune import Callback

    return Callback


class _ProgressCallback(_make_progress_base()):  # type: ignore[misc]
    """Feeds observers as trials finish, within the disclosure rule."""

    def __init__(
        self, disclosure: Disclosure, observers: list[SearchObserver], planned: int, config: SearchConfig
    ) -> None:
        self._disclosure = disclosure
        self._observers = observers
        self._planned = planned
        self._config = config
        self._done = 0

    @property
    def finished(self) -> int:
        """Trials that completed or failed (an interrupted search has fewer than planned)."""
        return self._done

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles callbacks into its experiment state; observers (consoles,
        # trackers) are live driver-side objects and stay out of it.
        state = dict(self.__dict__)
        state["_observers"] = []
        return state

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finished(trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._finished(trial, failed=True)

    def _finished(self, trial: Any, *, failed: bool) -> None:
        self._done += 1
        if not self._disclosure.releases_all:
            return  # nothing about a single trial may leave before selection
        record = _trial_record(self._config, trial.config, trial.last_result, failed=failed)
        for observer in self._observers:
            _safely(observer.on_trial_done, record, self._done, self._planned)


# ---------------------------------------------------------------------------- report


def _privacy_report(
    plan: SearchPlan,
    *,
    charge: Charge,
    ledger: PrivacyLedger,
    spent_before: float,
    spent_after: float,
    best: TrialRecord | None,
    disclosed: list[TrialRecord],
    disclosure: Disclosure,
    started: datetime,
    status: str,
    best_model: Path | None,
    nodes: list[str],
) -> dict[str, Any]:
    figures = plan.to_json()
    finished = datetime.now(UTC)
    report: dict[str, Any] = {
        "search_id": charge.search_id,
        "name": plan.config.name,
        "status": status,
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 1),
        "privacy": {
            "mode": plan.shape.mode,
            "release": plan.shape.release,
            "accountant": "rdp (dp_accounting)",
            "charged_epsilon": charge.epsilon,
            "delta": plan.delta,
            "ledger_delta": ledger.delta,
            "noise_multiplier": plan.noise_multiplier,
            "trial_epsilon": plan.trial_epsilon,
            "search_epsilon": plan.search_epsilon,
            "naive_epsilon": plan.naive_epsilon,
            "budget_epsilon": plan.config.budget.epsilon,
            "event": event_to_json(plan.event),
            "plan": figures,
        },
        "ledger": {
            "path": str(ledger.path),
            "dataset": ledger.dataset,
            "global_epsilon": ledger.epsilon,
            "spent_before": spent_before,
            "spent_after": spent_after,
            "remaining": max(0.0, ledger.epsilon - spent_after),
        },
        "best": None,
        "trials": None,
        "config": plan.config.model_dump(mode="json"),
    }
    if best is not None:
        report["best"] = {
            "point": best.point,
            "hyperparameters": best.hyperparameters,
            "released_score": best.final_score,
            "released_scores": best.released_scores,
            "test_metric": best.test_metric,
            "model": str(best_model) if best_model is not None else None,
        }
    if disclosure.releases_all:
        report["trials"] = [record.public_view() for record in disclosed]
        report["trial_count"] = len(disclosed)
        report["ray_nodes"] = nodes
    else:
        report["trials_note"] = (
            "release: best — only the best trial is released; the number of trials and every other "
            "trial's results stay inside the driver (the repeat-and-select bound assumes K unseen). "
            "The search's duration correlates with K."
        )
    return report


def write_report(output: Path, report: dict[str, Any]) -> None:
    (output / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (output / "report.txt").write_text(human_summary(report) + "\n", encoding="utf-8")


def human_summary(report: dict[str, Any]) -> str:
    """A few lines a person reads: what was charged, for what, and what came out."""
    privacy, ledger, best = report["privacy"], report["ledger"], report["best"]
    lines = [
        f"search {report['search_id'][:12]} ({report.get('name') or ''}): {report['status']}",
        f"mode: {privacy['mode']} (release: {privacy['release']}), noise multiplier σ = "
        f"{privacy['noise_multiplier']:.4f}",
        f"charged ε = {privacy['charged_epsilon']:.4f} at δ = {privacy['ledger_delta']:g} "
        f"(trial ε = {privacy['trial_epsilon']:.4f}; naive composition would be ε = {privacy['naive_epsilon']:.4f})",
        f"ledger {ledger['dataset']!r}: spent {ledger['spent_before']:.4f} → {ledger['spent_after']:.4f} of "
        f"{ledger['global_epsilon']:g}; remaining ≈ {ledger['remaining']:.4f}",
    ]
    if best is not None:
        hyper = ", ".join(f"{k}={v:.4g}" for k, v in sorted(best["hyperparameters"].items()))
        lines.append(f"best: released score {best['released_score']:.4f}; {hyper}")
        if best.get("test_metric") is not None:
            lines.append(f"best model test metric (public test split): {best['test_metric']:.4f}")
    else:
        lines.append("no trial succeeded")
    return "\n".join(lines)


class _CallableModule(types.ModuleType):
    """Lets ``tunedp.search(config, ...)`` call :func:`search` (see ``tunedp/__init__.py``)."""

    def __call__(self, config: SearchConfig, **options: Any) -> SearchOutcome:
        return search(config, **options)


sys.modules[__name__].__class__ = _CallableModule
