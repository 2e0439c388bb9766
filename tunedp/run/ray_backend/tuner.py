"""Running a charged plan's trials on Ray Tune: :func:`run_trials`, given the search mode's Tune configuration.

The mode says how trials are drawn (:class:`TuneHooks`: its ``param_space``
and ``tune_config``, from :mod:`tunedp.modes`); this module runs them the same
way for every mode. Trials are never retried (``max_failures=0``): a retry
would touch the data again, outside what was charged. Where the disclosure
rule hides the trials (``release: best``, ``hypo``, the staged modes), Ray's
console output, worker logs and result files are silenced or kept in the
driver's private scratch folder, deleted after.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from ray import tune

from tunedp.config import SearchConfig
from tunedp.release.disclosure import Disclosure
from tunedp.release.records import TrialRecord
from tunedp.run.mode_run import TrialsRun
from tunedp.run.ray_backend.cluster import (
    check_resources,
    ensure_ray,
    node_resources,
    reuse_actors,
    stop_ray,
    trial_cpus,
)
from tunedp.run.ray_backend.records import record_of_result, trial_record
from tunedp.run.ray_backend.trainable import TrialStatic, trainable
from tunedp.run.scoped import environment, logger_levels
from tunedp.run.scratch import private_folder

if TYPE_CHECKING:
    from tunedp.planning.single_stage import SearchPlan

__all__ = ["TuneHooks", "run_trials"]

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
#: Tune logs failed trials' tracebacks and per-trial status; under release: best keep them in.
_QUIET_LOGGERS = {name: logging.CRITICAL for name in ("ray.tune", "ray.train", "ray.air", "ray")}


class TuneHooks(Protocol):
    """A single-stage search mode's Tune configuration (:class:`tunedp.modes.SingleStageMode`)."""

    def param_space(self, config: SearchConfig) -> dict[str, Any]:
        """The Tune ``param_space`` its trials' points are drawn from."""
        ...

    def tune_config(self, plan: SearchPlan, trial_count: int, concurrency: int, sampler_seed: int) -> Any:
        """The ``tune.TuneConfig`` that runs exactly the ``trial_count`` trials the charge assumed."""
        ...


def run_trials(
    plan: SearchPlan,
    *,
    tune_hooks: TuneHooks,
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
    """Run ``trial_count`` trials of ``plan`` on Ray Tune, as its mode's ``tune_hooks`` say; keep the selected model.

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
            # Fewer trials at once than the cluster has room for (a final run, --max-concurrent 1):
            # each takes its share of the idle cores, reserved from Ray and used as torch threads.
            cluster = node_resources()
            share = trial_cpus(cluster, config.resources, concurrency)
            resources = config.resources
            if share > resources.cpus:
                resources = resources.model_copy(update={"cpus": float(share)})
            static = TrialStatic(
                config_json=config.model_dump_json(),
                plan=plan.trial,
                base_seed=seed,
                threads=share,
            )
            progress = _progress_callback(
                config, trial_count, on_trial_done if disclosure.releases_all else None, on_record
            )
            sampler_seed = int(rng.integers(0, 2**31 - 1))  # Tune's sampler: a fresh seed from the search's rng
            tuner = tune.Tuner(
                trainable(static, resources),
                param_space=tune_hooks.param_space(config),
                tune_config=replace(
                    tune_hooks.tune_config(plan, trial_count, concurrency, sampler_seed),
                    reuse_actors=reuse_actors(cluster),
                ),
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
        records = [record_of_result(config, results[i]) for i in range(len(results))]
        chosen = select(records)
        best = _keep_checkpoint(chosen)
        records = [best if r is chosen and best is not None else replace(r, checkpoint_path=None) for r in records]
        nodes = tuple(sorted({r.node_id for r in records if r.node_id}))
        return TrialsRun(records=tuple(records), best=best, nodes=nodes)
    finally:
        stop_ray(ray_temp)
        shutil.rmtree(storage, ignore_errors=True)


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
