"""The MLflow observer: writes each search to MLflow as it is charged, runs and ends; never fails it.

:class:`MlflowTracker` opens the search's parent run as soon as the ledger
is charged (so a running search shows in the dashboard), logs the count of
finished trials where the rule shows it, and at the end the outcome, the
disclosed trials' runs, the report, the released model
(:mod:`tunedp.observe.mlflow_model`) and the plots of :mod:`tunedp.observe.plots`.
*What* each record holds is :mod:`tunedp.observe.mlflow_records` (the
disclosure rule applied to MLflow), *when* it says it was written is
:mod:`tunedp.observe.mlflow_times`, *where* is :mod:`tunedp.observe.mlflow_store`;
this module holds the order of the writes and the guard around them.

It must never lose or fail a search: the report is written to the output
folder before tracking runs, and a tracking failure (no server, a bad URI, a
store error) stops tracking for that search and ends as one warning line.
Loads MLflow; with :mod:`~tunedp.observe.mlflow_records`,
:mod:`~tunedp.observe.mlflow_model` and :mod:`~tunedp.observe.mlflow_registry`
the only modules that do.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tunedp.errors import one_line
from tunedp.observe.mlflow_model import log_released_model
from tunedp.observe.mlflow_records import (
    EXPERIMENT_KIND,
    MODEL_NAME,
    TAG_EXPERIMENT_KIND,
    TAG_NOTE,
    TAG_ROLE,
    TAG_SEARCH_ID,
    TrialLog,
    experiment_name,
    outcome_fields,
    outcome_run_name,
    run_name,
    search_fields,
    search_figures,
    search_tags,
    trial_logs,
    trial_tags,
)
from tunedp.observe.mlflow_registry import check_registry, create_version, settle_version, version_of
from tunedp.observe.mlflow_store import (
    check_reachable,
    default_tracking_uri,
    environment,
    fast_failing_http,
    quiet_mlflow_logs,
    redacted,
    sqlite_path,
)
from tunedp.observe.mlflow_times import public_ms, set_experiment_times, set_registry_times, settle_store
from tunedp.observe.plots import save_figure
from tunedp.observe.protocol import SearchObserver, SearchOutcome
from tunedp.release.disclosure import disclosure_for
from tunedp.release.records import TrialRecord
from tunedp.release.report import human_summary

if TYPE_CHECKING:
    from tunedp.ledger.sqlite import Charge, PrivacyLedger
    from tunedp.planning.single_stage import SearchPlan

__all__ = ["MlflowTracker", "registering"]

log = logging.getLogger(__name__)

#: Entities per ``log_batch`` call (MLflow accepts at most 100 params and 1000 entities per call).
_BATCH = 100


@dataclass
class _SearchState:
    """What the tracker remembers between the hooks of one search."""

    plan: SearchPlan
    charge: Charge
    ledger: PrivacyLedger
    client: MlflowClient | None = None
    experiment_id: str | None = None
    parent_run_id: str | None = None
    #: The registered model (name, version) this search created at its charge (``None``: none).
    registered: tuple[str, str] | None = None
    error: str | None = None
    trial_runs: list[str] = field(default_factory=list)
    model_logged: bool = False


class MlflowTracker(SearchObserver):
    """Logs each search to MLflow within the disclosure rule; never fails the search.

    The parent run is created as soon as the ledger is charged, so a running
    search shows in the dashboard; trial runs, plots and the report follow when
    it finishes. A failure (no server, bad URI, a store error) stops tracking
    for that search and ends as *one* warning line naming the output folder,
    where the driver has already written the report and the best model.
    """

    def __init__(
        self, tracking_uri: str | None = None, *, artifact_root: Path | None = None, register: str | None = None
    ) -> None:
        self.tracking_uri = tracking_uri or default_tracking_uri()
        sqlite = sqlite_path(self.tracking_uri)
        if artifact_root is None and sqlite is not None:
            artifact_root = (sqlite.parent / "artifacts").resolve()
        self.artifact_root = artifact_root
        #: Register the released model as a new version of this Model Registry name (see :func:`registering`).
        self.register = register
        self._state: _SearchState | None = None

    @property
    def run_id(self) -> str | None:
        """The search's parent run, once created (``None`` before the charge or when tracking failed)."""
        return self._state.parent_run_id if self._state is not None else None

    @property
    def model_uri(self) -> str | None:
        """``runs:/<run id>/model``: where the released model was logged (``None``: it was not)."""
        state = self._state
        if state is None or state.error is not None or state.parent_run_id is None or not state.model_logged:
            return None
        return f"runs:/{state.parent_run_id}/{MODEL_NAME}"

    @property
    def registered(self) -> tuple[str, str] | None:
        """The registered model's (name, version) this search created (``None``: none, or tracking failed)."""
        state = self._state
        return state.registered if state is not None and state.error is None else None

    @property
    def error(self) -> str | None:
        """Why tracking stopped for this search (one line), or ``None``."""
        return self._state.error if self._state is not None else None

    # ------------------------------------------------------------------ hooks

    def on_charged(self, plan: SearchPlan, charge: Charge, ledger: PrivacyLedger) -> None:
        self._state = _SearchState(plan=plan, charge=charge, ledger=ledger)
        self._guarded(self._open_search)

    def on_trial_done(self, record: TrialRecord, done: int, planned: int) -> None:
        state = self._state
        if state is None or state.parent_run_id is None or state.error is not None:
            return
        if not disclosure_for(state.plan.shape.mode, state.plan.shape.release).shows_trial_count:
            return  # release: best — not even the count of finished trials leaves
        self._guarded(self._log_progress, done)

    def on_finished(self, outcome: SearchOutcome) -> None:
        state = self._state
        if state is None:  # never charged through this tracker: nothing of this search was opened here
            return
        self._guarded(self._close_search, outcome)
        atexit.unregister(self._abandon)
        if state.error is not None:
            log.warning(
                "MLflow tracking to %s failed (%s); the search was not affected and its results are in %s",
                one_line(redacted(self.tracking_uri), 200),
                state.error,
                outcome.output_dir.resolve(),
            )

    # ------------------------------------------------------------------ steps

    def _clock_ms(self) -> int:
        """Now, in ms, as this search may record it (the UTC day only under ``release: best``; see mlflow_times)."""
        state = self._state
        if state is None:
            return public_ms(None)
        return public_ms(disclosure_for(state.plan.shape.mode, state.plan.shape.release))

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        """Run one tracking step; the first failure is remembered and every later step skipped."""
        state = self._state
        if state is None or state.error is not None:
            return
        try:
            with fast_failing_http(), quiet_mlflow_logs():
                step(*args)
        except Exception as error:  # any store/HTTP/plot error: tracking stops, the search goes on
            state.error = one_line(error)

    def _open_search(self) -> None:
        state = self._state
        assert state is not None
        plan, charge, ledger = state.plan, state.charge, state.ledger
        check_reachable(self.tracking_uri)
        sqlite = sqlite_path(self.tracking_uri)
        if sqlite is not None:
            sqlite.parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=self.tracking_uri)
        # Named by the ledger's dataset: every search charged to one budget lands in one experiment.
        experiment_id, created = _experiment(client, experiment_name(ledger.dataset), self.artifact_root)
        if created and sqlite is not None:
            set_experiment_times(sqlite, experiment_id, self._clock_ms())
        spent = ledger.spent_epsilon()
        name = run_name(
            label=plan.config.name or plan.config.workload_label,
            mode=plan.shape.mode,
            search_id=charge.search_id,
            charged=charge.epsilon,
            spent=spent,
            cap=ledger.epsilon,
            seeded=charge.seeded,
        )
        resumed = _search_run(client, experiment_id, charge.search_id)
        if resumed is not None:
            # A resumed search (same search id, no new charge) goes on in the run its first start
            # opened, which an interruption left KILLED: one search, one run.
            state.client, state.experiment_id, state.parent_run_id = client, experiment_id, resumed
            client.update_run(resumed, status=RunStatus.to_string(RunStatus.RUNNING))
            state.registered = version_of(client, resumed)
            atexit.register(self._abandon)
            return
        run = client.create_run(
            experiment_id, run_name=name, start_time=self._clock_ms(), tags=search_tags(plan, charge, ledger, spent)
        )
        state.client, state.experiment_id, state.parent_run_id = client, experiment_id, run.info.run_id
        atexit.register(self._abandon)
        config = plan.config.model_dump(mode="json")
        params, metrics = search_fields(plan, charge, ledger, config)
        _log_batch(client, run.info.run_id, params=params, metrics=_at_step(metrics), timestamp=self._clock_ms())
        client.log_text(run.info.run_id, yaml.safe_dump(config, sort_keys=False), "config.yaml")
        client.log_text(run.info.run_id, json.dumps(config, indent=2) + "\n", "config.json")
        if self.register is not None:
            self._register(client, run.info.run_id, spent)

    def _register(self, client: MlflowClient, run_id: str, spent: float) -> None:
        """A new version of :attr:`register`, created at the charge (see :func:`.mlflow_registry.create_version`)."""
        state = self._state
        assert state is not None and self.register is not None
        name = self.register
        version, created = create_version(
            client, name, run_id, plan=state.plan, charge=state.charge, ledger=state.ledger, spent=spent
        )
        state.registered = (name, version)
        sqlite = sqlite_path(self.tracking_uri)
        if sqlite is not None:
            set_registry_times(sqlite, name, version, self._clock_ms(), registered_model=created)

    def _log_progress(self, done: int) -> None:
        state = self._state
        assert state is not None and state.client is not None and state.parent_run_id is not None
        _log_batch(state.client, state.parent_run_id, metrics=[("trials_done", float(done), done)])

    def _close_search(self, outcome: SearchOutcome) -> None:
        state = self._state
        assert state is not None and state.client is not None and state.parent_run_id is not None
        client, run_id = state.client, state.parent_run_id
        if outcome.report.status == "interrupted":  # a later --resume reopens this run and finishes it
            status = RunStatus.to_string(RunStatus.KILLED)
        else:
            status = RunStatus.to_string(RunStatus.FINISHED if outcome.ok else RunStatus.FAILED)
        try:
            self._log_outcome(state, outcome)
            if state.registered is not None:
                interrupted = outcome.report.status == "interrupted"
                settle_version(client, state.registered, released=state.model_logged, interrupted=interrupted)
        finally:
            try:
                client.set_terminated(run_id, status, end_time=self._clock_ms())
                rule = disclosure_for(state.plan.shape.mode, state.plan.shape.release)
                artifact_uri = client.get_run(run_id).info.artifact_uri
                settle_store(
                    rule, artifact_uri=artifact_uri, artifact_root=self.artifact_root, tracking_uri=self.tracking_uri
                )
            except Exception:  # the first error is the one worth reporting
                log.debug("could not terminate MLflow run %s", run_id, exc_info=True)

    def _log_outcome(self, state: _SearchState, outcome: SearchOutcome) -> None:
        assert state.client is not None and state.parent_run_id is not None and state.experiment_id is not None
        client, run_id = state.client, state.parent_run_id
        plan = outcome.plan
        best = outcome.best
        params, metrics = outcome_fields(outcome)
        _log_batch(client, run_id, params=params, metrics=_at_step(metrics), timestamp=self._clock_ms())
        client.set_tag(run_id, TAG_NOTE, f"```\n{human_summary(outcome.report)}\n```")
        # The runs table shows a run's name without any column set up: what was charged and what came out.
        client.update_run(run_id, name=outcome_run_name(outcome))

        for trial in trial_logs(
            outcome.disclosed_trials,
            best,
            mode=plan.shape.mode,
            release=plan.shape.release,
            trial_epsilon=plan.trial_epsilon,
        ):
            self._log_trial(state, outcome, trial)

        for name in ("report.json", "report.txt", "best_model.pt"):
            path = outcome.output_dir / name
            if path.is_file():
                client.log_artifact(run_id, str(path))
        if best is not None and (outcome.output_dir / "best_model.pt").is_file():
            log_released_model(client, run_id, outcome)
            state.model_logged = True
        with tempfile.TemporaryDirectory(prefix="tunedp-plots-") as folder:
            for name, figure in search_figures(client, state.ledger, outcome, parent_run_id=run_id):
                save_figure(figure, Path(folder) / f"{name}.png")
            client.log_artifacts(run_id, folder, artifact_path="plots")

    def _log_trial(self, state: _SearchState, outcome: SearchOutcome, trial: TrialLog) -> None:
        assert state.client is not None and state.experiment_id is not None and state.parent_run_id is not None
        run = state.client.create_run(
            state.experiment_id,
            run_name=trial.run_name,
            start_time=self._clock_ms(),
            tags=trial_tags(trial, outcome, parent_run_id=state.parent_run_id, dataset=state.ledger.dataset),
        )
        _log_batch(
            state.client, run.info.run_id, params=trial.params, metrics=trial.metrics, timestamp=self._clock_ms()
        )
        with environment(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true"):  # one link per search is enough
            state.client.set_terminated(run.info.run_id, trial.status, end_time=self._clock_ms())
        state.trial_runs.append(run.info.run_id)

    def _abandon(self) -> None:
        """At interpreter exit, a search that never finished (Ctrl-C, a crash) is marked KILLED, not RUNNING."""
        state = self._state
        if state is None or state.client is None or state.parent_run_id is None:
            return
        # Best effort at interpreter exit: a server that is gone must not turn
        # the exit of an interrupted search into a traceback.
        with contextlib.suppress(Exception), fast_failing_http(), quiet_mlflow_logs():
            state.client.set_terminated(
                state.parent_run_id, RunStatus.to_string(RunStatus.KILLED), end_time=self._clock_ms()
            )


def registering(observers: Sequence[SearchObserver], name: str) -> list[SearchObserver]:
    """``observers`` with an :class:`MlflowTracker` that registers the released model as a version of ``name``.

    The first tracker among ``observers`` registers (one on the default store
    is added when there is none); the registry is checked here, before anything is charged.
    """
    found = [o for o in observers if isinstance(o, MlflowTracker)]
    tracker = found[0] if found else MlflowTracker()
    tracker.register = name
    check_registry(tracker.tracking_uri, name)
    return list(observers) if found else [*observers, tracker]


# ---------------------------------------------------------------------------- MLflow client steps


def _search_run(client: MlflowClient, experiment_id: str, search_id: str) -> str | None:
    """The parent run of ``search_id`` in the experiment, if one exists (a resumed search's first start)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_SEARCH_ID}` = '{search_id}' AND tags.`{TAG_ROLE}` = 'search'",
        max_results=1,
    )
    return str(runs[0].info.run_id) if runs else None


def _experiment(client: MlflowClient, name: str, artifact_root: Path | None) -> tuple[str, bool]:
    """The experiment's id, and whether this call created it (or restored it); safe against a concurrent creator."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = (artifact_root / name).as_uri() if artifact_root is not None else None
        try:
            created = client.create_experiment(
                name, artifact_location=location, tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND}
            )
            return created, True
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # another search created it meanwhile
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id), True
    return str(experiment.experiment_id), False


def _log_batch(
    client: MlflowClient,
    run_id: str,
    *,
    params: Mapping[str, str] | None = None,
    metrics: Sequence[tuple[str, float, int]] = (),
    timestamp: int | None = None,
) -> None:
    """Params and finite metrics ``(key, value, step)`` in batches of a size MLflow accepts."""
    timestamp = int(time.time() * 1000) if timestamp is None else timestamp
    metric_list = [Metric(k, float(v), timestamp, step) for k, v, step in metrics if math.isfinite(v)]
    param_list = [Param(k, v) for k, v in (params or {}).items()]
    for start in range(0, max(len(param_list), len(metric_list), 1), _BATCH):
        client.log_batch(run_id, params=param_list[start : start + _BATCH], metrics=metric_list[start : start + _BATCH])


def _at_step(metrics: Mapping[str, float], step: int = 0) -> list[tuple[str, float, int]]:
    return [(key, float(value), step) for key, value in metrics.items()]
