"""MLflow tracking of searches: what may be logged, and where.

Where: one MLflow experiment per protected dataset (``tunedp-<dataset>``, the
ledger's dataset: every search charged to one budget, whatever its workload
or file name), one parent run per search (a resumed search reopens its run),
one nested run per *disclosed* trial. The default store is
``sqlite:///<repo>/mlflow/mlflow.db`` (``$TUNEDP_MLFLOW_DIR`` moves the
folder; MLflow 3 refuses plain ``file:`` stores) with artifacts under
``mlflow/artifacts``; any tracking URI, e.g. a server started by ``tunedp ui``,
works instead.

What: the parent run holds what the search was charged and what it released
(config, σ, planned and charged ε, δ, the ledger before and after, the best
configuration, its released score and test metric, the privacy report, the
released model and the plots of :mod:`tunedp.observe.plots`). The run's *name*
carries what the runs table should show without configuring columns: the
charged ε, the ledger's total spent, the test metric. The released model is
an MLflow pyfunc at ``runs:/<run id>/model`` that takes raw rows (see
:mod:`tunedp.release.model`); ``register=NAME`` also makes it a version of
NAME in the Model Registry, created at the charge (see :meth:`MlflowTracker._register`). Which trials get a run, and
which of their fields, is decided in one place, :func:`trial_logs`, by the
rule of :mod:`tunedp.release.disclosure`: under ``random``/``release: best`` only the
best trial gets a run (named ``best``: not even its index, which would bound
the secret number of trials); every other mode logs every trial's status,
released scores and trial ε.

This module must never log a raw training loss or an unreleased score (none
reaches it: the driver hands observers disclosed records only), and must
never lose or fail a search: the report is written to the output folder
before tracking runs, and a tracking failure ends as one warning line.

It is the only module that imports MLflow.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import requests
import yaml
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models.signature import _TypeHints
from mlflow.pyfunc.model import PythonModel
from mlflow.tracking import MlflowClient

from tunedp.errors import UserFacingError, one_line
from tunedp.observe import plots
from tunedp.observe.protocol import SearchObserver, SearchOutcome
from tunedp.release.disclosure import Disclosure, disclosure_for
from tunedp.release.records import TrialRecord
from tunedp.release.report import human_summary
from tunedp.run.interrupts import sigterm_as_interrupt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tunedp.ledger.sqlite import Charge, PrivacyLedger
    from tunedp.planning.single_stage import SearchPlan
    from tunedp.release.model import ReleasedModel

__all__ = [
    "MlflowTracker",
    "RegistryUnavailable",
    "ReleasedPyfunc",
    "TrialLog",
    "check_registry",
    "default_artifact_root",
    "default_mlflow_dir",
    "default_tracking_uri",
    "experiment_name",
    "registering",
    "run_name",
    "serve_dashboard",
    "server_command",
    "server_environment",
    "trial_logs",
]

log = logging.getLogger(__name__)

MLFLOW_DIR_ENV = "TUNEDP_MLFLOW_DIR"
EXPERIMENT_PREFIX = "tunedp-"

TAG_DATASET = "tunedp.dataset"
TAG_SEARCH_ID = "tunedp.search_id"
TAG_MODE = "tunedp.mode"
TAG_RELEASE = "tunedp.release"
#: "seeded: not private" on a --seed search (its ε is no guarantee), "private" otherwise.
TAG_PRIVACY = "tunedp.privacy"
TAG_ROLE = "tunedp.role"
TAG_BEST = "tunedp.best"
TAG_STATUS = "tunedp.status"
TAG_ERROR = "tunedp.error"
TAG_PARENT = "mlflow.parentRunId"
TAG_NOTE = "mlflow.note.content"
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
TAG_EPSILON = "tunedp.epsilon"
TAG_DELTA = "tunedp.delta"
TAG_LEDGER = "tunedp.ledger"
TAG_LEDGER_FINGERPRINT = "tunedp.ledger_fingerprint"
TAG_ACCOUNTANT = "tunedp.accountant"
TAG_SPENT = "tunedp.ledger_spent"
#: On a registered model version: pending (charged, running), released, failed or interrupted.
TAG_RELEASE_STATUS = "tunedp.release_status"
#: The registry alias that follows the newest version whose search released a model.
RELEASED_ALIAS = "released"
#: The accountant behind every ε tunedp logs.
ACCOUNTANT = "rdp (dp_accounting)"
#: Artifact path of the released model (an MLflow pyfunc for raw rows) on the parent run.
MODEL_NAME = "model"

#: How long to wait for a tracking server to answer before giving up on it.
PROBE_TIMEOUT_S = 3.0
#: Per-request timeout while the tracker talks to a server (no retries).
REQUEST_TIMEOUT_S = 20
#: Entities per ``log_batch`` call (MLflow accepts at most 100 params and 1000 entities per call).
_BATCH = 100


# ---------------------------------------------------------------------------- where


def default_mlflow_dir() -> Path:
    """``$TUNEDP_MLFLOW_DIR``, else ``mlflow/`` of the source checkout, else ``$TUNEDP_HOME/mlflow`` (absolute).

    The checkout's folder is the one ``make mlflow`` serves, so searches run
    from anywhere inside the repository land in the dashboard. An installed
    wheel keeps one store per user beside the ledgers (``$TUNEDP_HOME``,
    else ``$XDG_DATA_HOME/tunedp``, else ``~/.local/share/tunedp``), not one
    per working folder: searches started from different folders land in one
    dashboard (``tunedp ui``).
    """
    from tunedp.ledger.sqlite import tunedp_home

    configured = os.environ.get(MLFLOW_DIR_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "tunedp").is_dir():
        return checkout / "mlflow"
    return tunedp_home() / "mlflow"


def default_tracking_uri() -> str:
    """The sqlite store in :func:`default_mlflow_dir` (an absolute path: MLflow resolves relative ones per cwd)."""
    return f"sqlite:///{default_mlflow_dir() / 'mlflow.db'}"


def default_artifact_root() -> Path:
    return default_mlflow_dir() / "artifacts"


def _sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else ``None``."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///") :]).expanduser()


# ---------------------------------------------------------------------------- what: trials


@dataclass(frozen=True, kw_only=True)
class TrialLog:
    """Everything one trial's MLflow run will hold; produced only by :func:`trial_logs`."""

    run_name: str
    params: dict[str, str]
    metrics: list[tuple[str, float, int]]  # (key, value, step)
    tags: dict[str, str]
    status: str  # an MLflow RunStatus name

    def metric_keys(self) -> set[str]:
        return {key for key, _, _ in self.metrics}


def trial_logs(
    records: Sequence[TrialRecord],
    best: TrialRecord | None,
    *,
    mode: str,
    release: str,
    trial_epsilon: float,
) -> list[TrialLog]:
    """The runs (and their fields) the disclosure rule allows for a search's trials.

    The single place where tracking applies :mod:`tunedp.release.disclosure`: the rule
    picks the trials (``Disclosure.trials``) and whether per-trial status,
    scores and ε may be shown (``releases_all``). Records the driver already
    filtered pass through unchanged; unfiltered ones are filtered here again,
    so a caller's mistake cannot leak a non-best trial under ``release: best``.
    """
    rule = disclosure_for(mode, release)
    logs: list[TrialLog] = []
    for index, record in enumerate(rule.trials(list(records), best)):
        is_best = record is best
        params = {name: _param_value(value) for name, value in {**record.hyperparameters, **record.point}.items()}
        tags = {TAG_ROLE: "trial", TAG_BEST: "true" if is_best else "false"}
        metrics: list[tuple[str, float, int]] = []
        if rule.releases_all:
            run_name = f"trial-{index + 1:03d}"
            tags[TAG_STATUS] = record.status
            if record.error:
                tags[TAG_ERROR] = one_line(record.error)
            metrics += [("released_score", float(s), step) for step, s in enumerate(record.released_scores)]
            metrics.append(("trial_epsilon", float(trial_epsilon), 0))
            status = RunStatus.to_string(RunStatus.FAILED if record.status == "failed" else RunStatus.FINISHED)
        else:
            # Only the best leaves; its position among the K trials would bound K, so no index.
            run_name = "best"
            metrics += [("released_score", float(s), step) for step, s in enumerate(record.released_scores)]
            status = RunStatus.to_string(RunStatus.FINISHED)
        if is_best and record.test_metric is not None:
            metrics.append(("test_metric", float(record.test_metric), 0))
        logs.append(TrialLog(run_name=run_name, params=params, metrics=metrics, tags=tags, status=status))
    return logs


def _param_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def flatten_config(data: Mapping[str, Any], prefix: str = "config") -> dict[str, str]:
    """``{"budget": {"epsilon": 2}}`` → ``{"config.budget.epsilon": "2"}``; unset (``None``) fields are left out."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, name))
        elif value is not None:
            flat[name] = _param_value(value)
    return flat


# ---------------------------------------------------------------------------- the observer


class TrackingUnavailable(RuntimeError):
    """The tracking store cannot be reached; the search goes on without it."""


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
        sqlite = _sqlite_path(self.tracking_uri)
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
                one_line(_redacted(self.tracking_uri), 200),
                state.error,
                outcome.output_dir.resolve(),
            )

    # ------------------------------------------------------------------ steps

    def _clock_ms(self) -> int:
        """Now, in ms, as this search may record it (the UTC day only under ``release: best``).

        MLflow stores a run's start and end time and every metric's
        timestamp; under ``release: best`` those would record the search's
        duration, which grows with the secret number of trials.
        """
        state = self._state
        if state is None:
            return int(time.time() * 1000)
        rule = disclosure_for(state.plan.shape.mode, state.plan.shape.release)
        return int(rule.public_time().timestamp() * 1000)

    def _guarded(self, step: Callable[..., None], *args: Any) -> None:
        """Run one tracking step; the first failure is remembered and every later step skipped."""
        state = self._state
        if state is None or state.error is not None:
            return
        try:
            with _fast_failing_http(), _quiet_mlflow_logs():
                step(*args)
        except Exception as error:  # any store/HTTP/plot error: tracking stops, the search goes on
            state.error = one_line(error)

    def _open_search(self) -> None:
        state = self._state
        assert state is not None
        plan, charge, ledger = state.plan, state.charge, state.ledger
        _check_reachable(self.tracking_uri)
        sqlite = _sqlite_path(self.tracking_uri)
        if sqlite is not None:
            sqlite.parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=self.tracking_uri)
        # Named by the ledger's dataset: every search charged to one budget lands in one experiment.
        experiment_id, created = _experiment(client, experiment_name(ledger.dataset), self.artifact_root)
        if created and sqlite is not None:
            _set_experiment_times(sqlite, experiment_id, self._clock_ms())
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
            state.registered = _version_of(client, resumed)
            atexit.register(self._abandon)
            return
        run = client.create_run(
            experiment_id,
            run_name=name,
            start_time=self._clock_ms(),
            tags={
                TAG_ROLE: "search",
                TAG_DATASET: ledger.dataset,
                TAG_SEARCH_ID: charge.search_id,
                TAG_MODE: plan.shape.mode,
                TAG_RELEASE: plan.shape.release,
                TAG_PRIVACY: "seeded: not private" if charge.seeded else "private",
                # What the search cost and where it was charged, searchable in the run list.
                TAG_EPSILON: repr(float(charge.epsilon)),
                TAG_DELTA: repr(float(plan.delta)),
                TAG_SPENT: repr(float(spent)),
                TAG_LEDGER: str(ledger.path),
                TAG_LEDGER_FINGERPRINT: ledger.fingerprint,  # keyed: reveals nothing about the rows
                TAG_ACCOUNTANT: ACCOUNTANT,
            },
        )
        state.client, state.experiment_id, state.parent_run_id = client, experiment_id, run.info.run_id
        atexit.register(self._abandon)
        config = plan.config.model_dump(mode="json")
        params = {
            "mode": plan.shape.mode,
            "release": plan.shape.release,
            "workload": plan.config.workload_label,
            "dataset": ledger.dataset,
            "optimizer": plan.config.optimizer,
            "search_id": charge.search_id,
            "accountant": "rdp",
            **flatten_config(config),
        }
        metrics = {
            "noise_multiplier": plan.noise_multiplier,
            "planned_epsilon": plan.search_epsilon,
            "charged_epsilon": charge.epsilon,
            "budget_epsilon": plan.config.budget.epsilon,
            "naive_epsilon": plan.naive_epsilon,
            "delta": plan.delta,
            "ledger_global_epsilon": ledger.epsilon,
            "ledger_delta": ledger.delta,
        }
        _log_batch(client, run.info.run_id, params=params, metrics=_at_step(metrics), timestamp=self._clock_ms())
        client.log_text(run.info.run_id, yaml.safe_dump(config, sort_keys=False), "config.yaml")
        client.log_text(run.info.run_id, json.dumps(config, indent=2) + "\n", "config.json")
        if self.register is not None:
            self._register(client, run.info.run_id, spent)

    def _register(self, client: MlflowClient, run_id: str, spent: float) -> None:
        """A new version of :attr:`register`, created now — at the charge, before any trial runs.

        The registry stamps a version's creation and update times with the
        server's clock, and no client can set them. Created at the search's
        end they would publish the end time, so (under ``release: best`` and
        the staged modes) the duration and with it the secret K. Created at
        the charge they carry a moment that does not depend on K, and every
        tag is known then: dataset, charged ε, δ, the ledger's total spent.
        The version's source is ``runs:/<run id>/model``, where the model is
        logged when the search releases it; until then (and for a search that
        releases nothing) the version is tagged ``tunedp.release_status``
        ``pending`` (``failed``, ``interrupted``), and the alias ``released``
        moves to it only once its model is there. Tags and aliases carry no
        time in MLflow's registry; a local sqlite store's times are set to
        the search's public time here, like a new experiment's.
        """
        state = self._state
        assert state is not None and self.register is not None
        plan, charge, ledger = state.plan, state.charge, state.ledger
        name = self.register
        created = False
        try:
            client.create_registered_model(
                name, tags={TAG_DATASET: ledger.dataset}, description="Released by tunedp searches."
            )
            created = True
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            name,
            source=f"runs:/{run_id}/{MODEL_NAME}",
            run_id=run_id,
            tags={
                TAG_DATASET: ledger.dataset,
                TAG_SEARCH_ID: charge.search_id,
                TAG_EPSILON: repr(float(charge.epsilon)),
                TAG_DELTA: repr(float(plan.delta)),
                TAG_SPENT: repr(float(spent)),
                TAG_PRIVACY: "seeded: not private" if charge.seeded else "private",
                TAG_ACCOUNTANT: ACCOUNTANT,
                TAG_RELEASE_STATUS: "pending",
            },
            description=(
                f"tunedp search {charge.search_id[:12]} on {ledger.dataset!r}: charged ε = {charge.epsilon:.4g} "
                f"at δ = {plan.delta:g}; the ledger's total spent ε = {spent:.4g} of {ledger.epsilon:g}. "
                f"Its model is at runs:/{run_id}/{MODEL_NAME} once the search releases it "
                f"(tag {TAG_RELEASE_STATUS})."
            ),
            await_creation_for=0,
        )
        state.registered = (name, str(version.version))
        sqlite = _sqlite_path(self.tracking_uri)
        if sqlite is not None:
            _set_registry_times(sqlite, name, str(version.version), self._clock_ms(), registered_model=created)

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
            self._settle_version(client, outcome)
        finally:
            try:
                client.set_terminated(run_id, status, end_time=self._clock_ms())
                self._settle_store(client, run_id)
            except Exception:  # the first error is the one worth reporting
                log.debug("could not terminate MLflow run %s", run_id, exc_info=True)

    def _settle_version(self, client: MlflowClient, outcome: SearchOutcome) -> None:
        """The registered version's release status (a tag), and the ``released`` alias once its model is there.

        Neither a tag nor an alias carries a time in MLflow's registry, so
        nothing here publishes when the search ended.
        """
        state = self._state
        assert state is not None
        if state.registered is None:
            return
        name, version = state.registered
        released = state.model_logged
        status = "released" if released else ("interrupted" if outcome.report.status == "interrupted" else "failed")
        client.set_model_version_tag(name, version, TAG_RELEASE_STATUS, status)
        if released:
            client.set_registered_model_alias(name, RELEASED_ALIAS, version)

    def _settle_store(self, client: MlflowClient, run_id: str) -> None:
        """After the search's last MLflow write, the local store's files carry the public time.

        The sqlite file and a local artifact folder are written as the search
        ends; their modification times would record when (see
        :meth:`Disclosure.settle`). A remote server's files are its own.
        """
        state = self._state
        assert state is not None
        rule = disclosure_for(state.plan.shape.mode, state.plan.shape.release)
        artifacts = urlsplit(client.get_run(run_id).info.artifact_uri)
        if artifacts.scheme in ("", "file"):
            run_folder = Path(artifacts.path).parent  # <experiment folder>/<run id>/artifacts
            rule.settle(run_folder)
            if self.artifact_root is not None and run_folder.parent.parent == self.artifact_root:
                rule.settle(run_folder.parent, self.artifact_root, tree=False)
        sqlite = _sqlite_path(self.tracking_uri)
        if sqlite is not None:
            rule.settle(sqlite, sqlite.parent, tree=False)

    def _log_outcome(self, state: _SearchState, outcome: SearchOutcome) -> None:
        assert state.client is not None and state.parent_run_id is not None and state.experiment_id is not None
        client, run_id = state.client, state.parent_run_id
        plan = outcome.plan
        rule = disclosure_for(plan.shape.mode, plan.shape.release)
        figures = outcome.report.ledger
        metrics: dict[str, float] = {
            "ledger_spent_before": figures.spent_before,
            "ledger_spent_after": figures.spent_after,
            "ledger_remaining_before": figures.remaining_before,
            "ledger_remaining_after": figures.remaining,
        }
        params: dict[str, str] = {"status": outcome.report.status}
        best = outcome.best
        if best is not None:
            if best.released_scores:  # a staged search's final run may release none
                metrics["best_released_score"] = best.final_score
            if best.test_metric is not None:
                metrics["best_test_metric"] = float(best.test_metric)
                if outcome.report.best is not None:
                    params["best_test_metric_label"] = outcome.report.best.test_label
            params.update({f"best.{k}": _param_value(v) for k, v in {**best.hyperparameters, **best.point}.items()})
        if rule.shows_trial_count:
            metrics["trials_disclosed"] = float(len(outcome.disclosed_trials))
            metrics["trials_failed"] = float(outcome.failed_trials_disclosed)
        if outcome.report.status == "interrupted":
            params = {}  # MLflow params are write-once: the resumed search, in this run, logs its final status
        _log_batch(client, run_id, params=params, metrics=_at_step(metrics), timestamp=self._clock_ms())
        client.set_tag(run_id, TAG_NOTE, f"```\n{human_summary(outcome.report)}\n```")
        # The runs table shows a run's name without any column set up: what was charged and what came out.
        client.update_run(run_id, name=_outcome_run_name(outcome))

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
            self._log_released_model(client, run_id, outcome)
            state.model_logged = True
        with tempfile.TemporaryDirectory(prefix="tunedp-plots-") as folder:
            for name, figure in self._figures(state, outcome):
                plots.save_figure(figure, Path(folder) / f"{name}.png")
            client.log_artifacts(run_id, folder, artifact_path="plots")

    def _log_released_model(self, client: MlflowClient, run_id: str, outcome: SearchOutcome) -> None:
        """The released model as an MLflow pyfunc for raw rows (:class:`ReleasedPyfunc`) on the parent run.

        Only the selected model is logged — under ``release: best`` it is the
        one thing released, and nothing about the other trials goes with it.
        Its input schema is the raw columns (or the image array), its output
        a label and each class's probability; the workload's declared
        encoding travels in ``recipe.json``, the weights as the state dict.
        Saved as "models from code" (a three-line script importing tunedp,
        which ships in the model's ``code/``): nothing is pickled, so loading
        it executes no stored object and MLflow has no pickle warning to give.
        Requirements are pinned here rather than inferred (inference loads the
        model in a subprocess: slow, and nothing it could add).
        """
        import mlflow.pyfunc
        import torch
        from mlflow.models import Model

        import tunedp
        from tunedp.release.model import ReleasedModel

        config = outcome.plan.config
        best = outcome.report.best
        variant = best.variant if best is not None and best.variant is not None else config.model
        released = ReleasedModel.load(config.workload, variant, outcome.output_dir / "best_model.pt")
        rule = disclosure_for(outcome.plan.shape.mode, outcome.plan.shape.release)
        # Saved here and logged as the run's artifacts, not as an MLflow LoggedModel: a
        # LoggedModel's creation and update times are stamped by the tracking server's clock
        # as the search ends, which no client can set, and under ``release: best`` an end time
        # records the duration (so K). MLmodel's own time is the public one.
        described = Model(run_id=run_id, artifact_path=MODEL_NAME, utc_time_created=self._clock_text(rule))
        with (
            tempfile.TemporaryDirectory(prefix="tunedp-model-") as folder,
            _quiet_mlflow_logs(logging.ERROR),
            _environment(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"),  # a bar per file copied into the model
        ):
            scratch = Path(folder)
            (scratch / "recipe.json").write_text(json.dumps(released.recipe(), indent=2) + "\n", encoding="utf-8")
            (scratch / PYFUNC_SCRIPT).write_text(_PYFUNC_CODE, encoding="utf-8")
            mlflow.pyfunc.save_model(
                scratch / MODEL_NAME,
                python_model=str(scratch / PYFUNC_SCRIPT),
                artifacts={
                    "recipe": str(scratch / "recipe.json"),
                    "weights": str(outcome.output_dir / "best_model.pt"),
                },
                mlflow_model=described,
                signature=pyfunc_signature(released),
                input_example=released.input_example(),
                # The model's code is tunedp's: ship the package so serving needs no install.
                code_paths=[str(Path(tunedp.__file__).parent)],
                pip_requirements=[
                    f"torch=={torch.__version__.split('+')[0]}",
                    f"numpy=={np.__version__}",
                    f"mlflow=={mlflow.__version__}",
                ],
            )
            rule.settle(scratch / MODEL_NAME)  # a local artifact store copies the files' times with them
            client.log_artifacts(run_id, str(scratch / MODEL_NAME), artifact_path=MODEL_NAME)

    def _clock_text(self, rule: Disclosure) -> str:
        """The public time in MLmodel's ``utc_time_created`` format (naive UTC)."""
        return str(rule.public_time().astimezone(UTC).replace(tzinfo=None))

    def _log_trial(self, state: _SearchState, outcome: SearchOutcome, trial: TrialLog) -> None:
        assert state.client is not None and state.experiment_id is not None and state.parent_run_id is not None
        run = state.client.create_run(
            state.experiment_id,
            run_name=trial.run_name,
            start_time=self._clock_ms(),
            tags={
                **trial.tags,
                TAG_PARENT: state.parent_run_id,
                TAG_DATASET: state.ledger.dataset,
                TAG_SEARCH_ID: outcome.search_id,
                TAG_MODE: outcome.plan.shape.mode,
                TAG_RELEASE: outcome.plan.shape.release,
            },
        )
        _log_batch(
            state.client, run.info.run_id, params=trial.params, metrics=trial.metrics, timestamp=self._clock_ms()
        )
        with _environment(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT="true"):  # one link per search is enough
            state.client.set_terminated(run.info.run_id, trial.status, end_time=self._clock_ms())
        state.trial_runs.append(run.info.run_id)

    def _figures(self, state: _SearchState, outcome: SearchOutcome) -> Iterator[tuple[str, Figure]]:
        """The plots of :mod:`tunedp.observe.plots`, each fed only disclosed data."""
        plan = outcome.plan
        rule = disclosure_for(plan.shape.mode, plan.shape.release)
        ledger = state.ledger
        charges = ledger.charges()
        spent = plots.cumulative_spent_epsilon([c.event for c in charges], ledger.delta)
        ours = next((i for i, c in enumerate(charges) if c.search_id == outcome.search_id), None)
        yield (
            "budget_burndown",
            plots.budget_burndown(
                spent,
                global_epsilon=ledger.epsilon,
                dataset=ledger.dataset,
                labels=[f"{c.label} {c.search_id[:6]}".strip() for c in charges],
                highlight=ours,
            ),
        )
        if rule.releases_all:
            yield "scores_by_trial", plots.scores_by_trial(outcome.disclosed_trials, best=outcome.best)
        if outcome.best is not None and outcome.best.released_scores:
            yield "learning_curve_best", plots.learning_curve(outcome.best.released_scores)
        yield "privacy_utility", plots.privacy_utility(self._searches_on(state), dataset=ledger.dataset)

    def _searches_on(self, state: _SearchState) -> list[plots.SearchPoint]:
        """Every search logged on this ledger (tag ``tunedp.dataset``), from MLflow itself."""
        assert state.client is not None
        experiments = state.client.search_experiments(filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'")
        ids = [e.experiment_id for e in experiments]
        if not ids:
            return []
        runs = state.client.search_runs(
            ids,
            filter_string=f"tags.`{TAG_DATASET}` = '{state.ledger.dataset}' AND tags.`{TAG_ROLE}` = 'search'",
            max_results=1000,
        )
        points = []
        for run in runs:
            metrics = run.data.metrics
            if "charged_epsilon" in metrics and "best_released_score" in metrics:
                points.append(
                    plots.SearchPoint(
                        charged_epsilon=metrics["charged_epsilon"],
                        best_score=metrics["best_released_score"],
                        label=_search_label(run.data.tags, run.info.run_id),
                        current=run.info.run_id == state.parent_run_id,
                    )
                )
        return points

    def _abandon(self) -> None:
        """At interpreter exit, a search that never finished (Ctrl-C, a crash) is marked KILLED, not RUNNING."""
        state = self._state
        if state is None or state.client is None or state.parent_run_id is None:
            return
        # Best effort at interpreter exit: a server that is gone must not turn
        # the exit of an interrupted search into a traceback.
        with contextlib.suppress(Exception), _fast_failing_http(), _quiet_mlflow_logs():
            state.client.set_terminated(
                state.parent_run_id, RunStatus.to_string(RunStatus.KILLED), end_time=self._clock_ms()
            )


# ---------------------------------------------------------------------------- names a user sees


def experiment_name(dataset: str) -> str:
    """``tunedp-<dataset>``: one experiment per ledger's dataset (not per workload or file name)."""
    return f"{EXPERIMENT_PREFIX}{dataset}"


def run_name(
    *,
    label: str,
    mode: str,
    search_id: str,
    charged: float,
    spent: float,
    cap: float,
    seeded: bool = False,
    test_metric: float | None = None,
) -> str:
    """``compas · ε 1 charged · 3 of 10 spent · test 0.652 · random 1a2b3c4d``: the runs table shows it by default.

    Every figure is public: the charge and the ledger's total are in the
    ledger's readable history, the released model's test metric in the report.
    """
    parts = [label, f"ε {charged:.3g} charged", f"{spent:.3g} of {cap:g} spent"]
    if test_metric is not None:
        parts.append(f"test {test_metric:.3f}")
    if seeded:
        parts.append("seeded: not private")
    parts.append(f"{mode} {search_id[:8]}")
    return " · ".join(parts)


def _outcome_run_name(outcome: SearchOutcome) -> str:
    report = outcome.report
    best = report.best
    return run_name(
        label=outcome.plan.config.name or outcome.plan.config.workload_label,
        mode=outcome.plan.shape.mode,
        search_id=outcome.search_id,
        charged=report.privacy.charged_epsilon,
        spent=report.ledger.spent_after,
        cap=report.ledger.global_epsilon,
        seeded=report.privacy.seeded,
        test_metric=best.test_metric if best is not None else None,
    )


# ---------------------------------------------------------------------------- the released model as a pyfunc


class ReleasedPyfunc(PythonModel):
    """The released model for MLflow: raw rows in (the input schema), ``label`` and ``probability_<class>`` out.

    A thin adapter: everything that matters is :class:`tunedp.release.model.ReleasedModel`,
    rebuilt from the model's ``recipe.json`` and state dict (no pickle).
    """

    def load_context(self, context: Any) -> None:
        from tunedp.release.model import ReleasedModel

        self._model = ReleasedModel.from_recipe(Path(context.artifacts["recipe"]), Path(context.artifacts["weights"]))

    #: MLflow reads ``predict``'s type hints as an input schema and warns about ``Any`` (at every
    #: import, and again at every save, through a filter of its own that no caller can override);
    #: the model's signature is the one :func:`pyfunc_signature` gives, so MLflow is told of no hints.
    _skip_type_hint_validation = True
    _predict_type_hints = _TypeHints()  # type: ignore[no-untyped-call]

    def predict(self, context: Any, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        import pandas as pd

        from tunedp.release.model import TableInput

        model = self._model
        if isinstance(model.raw_input, TableInput):
            frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
            rows: Any = {name: frame[name].tolist() for name in model.raw_input.names if name in frame.columns}
        else:
            rows = np.asarray(model_input, dtype=np.float32)
        return pd.DataFrame(model.predict(rows).columns())


#: The "models from code" script MLflow runs to build the pyfunc (saved as the model's code).
PYFUNC_SCRIPT = "tunedp_model.py"
_PYFUNC_CODE = """\
# The released tunedp model: raw rows in, label and class probabilities out (tunedp ships in code/).
import mlflow.models

from tunedp.observe.tracking import ReleasedPyfunc

mlflow.models.set_model(ReleasedPyfunc())
"""


def pyfunc_signature(released: ReleasedModel) -> Any:
    """The raw columns by name (or the image tensor) in; ``label`` and ``probability_<class>`` out.

    The columns are typed ``Any``: MLflow refuses to convert a 64-bit integer
    column to ``double`` (``pandas.read_csv`` reads ``age`` as int64) and any
    number to ``string`` (a category coded ``1``), while the encoding reads
    each cell as the training did, as text, and refuses a bad value itself.
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema, TensorSpec
    from mlflow.types.schema import AnyType

    from tunedp.release.model import LABEL_COLUMN, TableInput, probability_column

    raw = released.raw_input
    inputs: Schema
    if isinstance(raw, TableInput):
        inputs = Schema([ColSpec(AnyType(), c.name) for c in raw.columns])  # type: ignore[no-untyped-call]
    else:
        inputs = Schema([TensorSpec(np.dtype(np.float32), (-1, *raw.shape))])
    outputs = Schema(
        [
            ColSpec(DataType.string, LABEL_COLUMN),
            *(ColSpec(DataType.double, probability_column(name)) for name in released.classes),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


# ---------------------------------------------------------------------------- the Model Registry


class RegistryUnavailable(UserFacingError):
    """``register``: the Model Registry cannot take the version (refused before the charge)."""


def check_registry(tracking_uri: str, name: str) -> None:
    """Before the charge: ``name`` is a valid registered-model name and the registry answers.

    A search that registers is refused here, in one line, rather than found
    unable to register after it spent the budget.
    """
    from mlflow.utils.validation import _validate_model_name

    try:
        _validate_model_name(name)
    except MlflowException as error:
        raise RegistryUnavailable(f"register: {one_line(error.message)}") from None
    shown = one_line(_redacted(tracking_uri), 200)
    try:
        _check_reachable(tracking_uri)
        sqlite = _sqlite_path(tracking_uri)
        if sqlite is not None:
            sqlite.parent.mkdir(parents=True, exist_ok=True)
        with _fast_failing_http(), _quiet_mlflow_logs():
            MlflowClient(tracking_uri=tracking_uri).search_registered_models(max_results=1)
    except Exception as error:
        raise RegistryUnavailable(
            f"register: the MLflow Model Registry at {shown} is unreachable ({one_line(error, 160)}); "
            "start the server (tunedp ui) or give another --tracking-uri; nothing was charged"
        ) from None


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


def _version_of(client: MlflowClient, run_id: str) -> tuple[str, str] | None:
    """The registered model version whose source is ``run_id``'s model (a resumed search's), if any."""
    for version in client.search_model_versions(f"run_id = '{run_id}'"):
        if version.source == f"runs:/{run_id}/{MODEL_NAME}":
            return str(version.name), str(version.version)
    return None


def _set_registry_times(sqlite: Path, name: str, version: str, moment_ms: int, *, registered_model: bool) -> None:
    """A version (and the registered model it updated or created) stamped with the search's public time.

    Local sqlite store only, like :func:`_set_experiment_times`: the moment is
    the charge, which does not depend on K, but a K-hiding search publishes
    the UTC day only. A remote registry keeps its own clock (at the charge).
    """
    with contextlib.closing(sqlite3.connect(sqlite, timeout=30)) as connection, connection:
        connection.execute(
            "UPDATE model_versions SET creation_time = ?, last_updated_time = ? WHERE name = ? AND version = ?",
            (moment_ms, moment_ms, name, int(version)),
        )
        connection.execute("UPDATE registered_models SET last_updated_time = ? WHERE name = ?", (moment_ms, name))
        if registered_model:
            connection.execute("UPDATE registered_models SET creation_time = ? WHERE name = ?", (moment_ms, name))


# ---------------------------------------------------------------------------- MLflow helpers


def _search_run(client: MlflowClient, experiment_id: str, search_id: str) -> str | None:
    """The parent run of ``search_id`` in the experiment, if one exists (a resumed search's first start)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_SEARCH_ID}` = '{search_id}' AND tags.`{TAG_ROLE}` = 'search'",
        max_results=1,
    )
    return str(runs[0].info.run_id) if runs else None


def _search_label(tags: Mapping[str, str], run_id: str) -> str:
    """``random/best 1a2b3c``: short enough for a point on a plot, enough to find the run."""
    search_id = tags.get(TAG_SEARCH_ID, run_id)
    return f"{tags.get(TAG_MODE, '?')}/{tags.get(TAG_RELEASE, '?')} {search_id[:6]}"


def _experiment(client: MlflowClient, name: str, artifact_root: Path | None) -> tuple[str, bool]:
    """The experiment's id, and whether this call created it (or restored it); safe against a concurrent creator."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = (artifact_root / name).as_uri() if artifact_root is not None else None
        try:
            created = client.create_experiment(name, artifact_location=location, tags={TAG_EXPERIMENT_KIND: _KIND})
            return created, True
        except MlflowException:
            experiment = client.get_experiment_by_name(name)  # another search created it meanwhile
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id), True
    return str(experiment.experiment_id), False


def _set_experiment_times(sqlite: Path, experiment_id: str, moment_ms: int) -> None:
    """An experiment this search created, stamped with the search's public time (local sqlite store only).

    MLflow stamps a new experiment with its own clock and offers no way to
    set it. The moment is the search's charge, which does not depend on K,
    but under ``release: best`` everything a search publishes carries the
    day only (docs/architecture.md), so the local store is corrected here;
    a remote server keeps its own clock (the README says so).
    """
    with contextlib.closing(sqlite3.connect(sqlite, timeout=30)) as connection, connection:
        connection.execute(
            "UPDATE experiments SET creation_time = ?, last_update_time = ? WHERE experiment_id = ?",
            (moment_ms, moment_ms, int(experiment_id)),
        )


#: Shows the experiment as model training (runs table) rather than GenAI traces in MLflow 3's UI.
_KIND = "custom_model_development"


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


def _check_reachable(tracking_uri: str) -> None:
    """Fail in seconds, not minutes, when an HTTP tracking server does not answer.

    Anything that answers (even with an error status) counts as reachable;
    MLflow's own requests then report what is wrong.
    """
    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https"):
        return
    try:
        requests.get(tracking_uri.rstrip("/") + "/health", timeout=PROBE_TIMEOUT_S)
    except requests.RequestException as error:
        reason = type(error).__name__
        raise TrackingUnavailable(f"no MLflow server answers at {parts.scheme}://{parts.netloc} ({reason})") from None


def _redacted(uri: str) -> str:
    """The URI without a password, for a log line."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


@contextmanager
def _fast_failing_http() -> Iterator[None]:
    """No retries and a short timeout while the tracker talks to a server (unless the user set them).

    MLflow's defaults retry with backoff for minutes; a search whose server is
    down should say so at once and carry on.
    """
    with _environment(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT=str(REQUEST_TIMEOUT_S)):
        yield


@contextmanager
def _environment(**settings: str) -> Iterator[None]:
    """Set environment variables the user has not set, for the duration of the block."""
    added = [key for key in settings if key not in os.environ]
    for key in added:
        os.environ[key] = settings[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


@contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's model logging reads the global tracking URI: point it at ours for the block, then restore it.

    ``mlflow.set_tracking_uri`` also writes (or, given ``None``, removes)
    ``MLFLOW_TRACKING_URI``, so the variable is restored by hand as well.
    """
    from mlflow.tracking._tracking_service import utils

    import mlflow

    previous, variable = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]
        if variable is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = variable


@contextmanager
def _quiet_mlflow_logs(level: int = logging.WARNING) -> Iterator[None]:
    """MLflow and alembic announce store creation at INFO; a search's console keeps to its own lines."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), level))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# ---------------------------------------------------------------------------- the dashboard server


def server_command(*, directory: Path, host: str, port: int) -> list[str]:
    """``mlflow server`` on the sqlite store and artifact folder in ``directory`` (absolute paths)."""
    directory = directory.resolve()
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{directory / 'mlflow.db'}",
        "--default-artifact-root",
        str(directory / "artifacts"),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def server_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: MLflow 3's job runner (for GenAI features) stays off."""
    environment = dict(os.environ if base is None else base)
    environment["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return environment


def serve_dashboard(
    *, host: str = "127.0.0.1", port: int = 5000, directory: Path | None = None, announce: Callable[[str], None] = print
) -> int:
    """Run the MLflow dashboard in the foreground until it exits or Ctrl-C stops it; returns the exit code.

    The server runs in its own process group (``mlflow server`` starts uvicorn
    as a child), so stopping it stops every process it started.
    """
    directory = (directory or default_mlflow_dir()).resolve()
    (directory / "artifacts").mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        server_command(directory=directory, host=host, port=port),
        env=server_environment(),
        start_new_session=True,
    )
    shown = f"[{host}]" if ":" in host else host
    announce(f"MLflow dashboard: http://{shown}:{port}  (store {directory / 'mlflow.db'}; Ctrl-C stops it)")
    # SIGTERM (a service manager, `kill`) stops the server as Ctrl-C does,
    # instead of leaving its process group running without us.
    with sigterm_as_interrupt():
        try:
            return process.wait()
        except KeyboardInterrupt:
            stop_server(process)
            announce("MLflow dashboard stopped")
            return 0


def stop_server(process: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """SIGTERM to the server's process group, SIGKILL if it has not exited after ``timeout_s``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue
