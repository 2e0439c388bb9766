"""What tunedp logs to MLflow, under the disclosure rule: names, tags, params and metrics.

Where things go: one MLflow experiment per protected dataset (``tunedp-<dataset>``,
the ledger's dataset: every search charged to one budget, whatever its
workload or file name), one parent run per search (a resumed search reopens
its run), one nested run per *disclosed* trial.

What the parent run holds: what the search was charged and what it released
(config, σ, planned and charged ε, δ, the ledger before and after, the best
configuration, its released score and test metric, the privacy report). The
run's *name* carries what the runs table should show without configuring
columns: the charged ε, the ledger's total spent, the test metric. Which
trials get a run, and which of their fields, is decided in one place,
:func:`trial_logs`, by the rule of :mod:`tunedp.release.disclosure`: under
``random``/``release: best`` only the best trial gets a run (named ``best``:
not even its index, which would bound the secret number of trials); every
other mode logs every trial's status, released scores and trial ε.

Which plots the parent run gets is chosen here too (:func:`search_figures`:
the scores of every trial only where every trial is released), each drawn by
:mod:`tunedp.observe.plots` from disclosed data and the other searches'
public figures. Every function here only builds values (or reads MLflow back);
:mod:`tunedp.observe.mlflow_tracker` writes them. None may take a raw training
loss or an unreleased score (none reaches tracking: the driver hands observers
disclosed records only). Loads MLflow (its run-status names) and matplotlib.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlflow.entities import RunStatus

from tunedp.errors import one_line
from tunedp.observe.plots import (
    SearchPoint,
    budget_burndown,
    cumulative_spent_epsilon,
    learning_curve,
    privacy_utility,
    scores_by_trial,
)
from tunedp.release.disclosure import disclosure_for
from tunedp.release.records import TrialRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow.tracking import MlflowClient

    from tunedp.ledger.sqlite import Charge, PrivacyLedger
    from tunedp.observe.protocol import SearchOutcome
    from tunedp.planning.single_stage import SearchPlan

__all__ = [
    "ACCOUNTANT",
    "EXPERIMENT_PREFIX",
    "MODEL_NAME",
    "RELEASED_ALIAS",
    "TrialLog",
    "experiment_name",
    "flatten_config",
    "outcome_fields",
    "outcome_run_name",
    "run_name",
    "search_fields",
    "search_figures",
    "search_label",
    "search_tags",
    "searches_on",
    "trial_logs",
    "trial_tags",
    "version_description",
    "version_tags",
]

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
#: Shows the experiment as model training (runs table) rather than GenAI traces in MLflow 3's UI.
EXPERIMENT_KIND = "custom_model_development"


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
    """``test 0.652 · ε 1 charged · 3 of 10 spent · compas · random 1a2b3c4d``: the runs table shows it by default.

    The figures come first: MLflow's runs table shows about twenty
    characters of a name in its default column width (checked in Chromium,
    tests/e2e/observe/test_dashboard.py), and what a user scans the table
    for is the released model's test metric and the charge (the metric is
    known once the search has ended; until then the charge leads); the rest is
    there on hover or a wider column. Every figure is public: the charge and
    the ledger's total are in the ledger's readable history, the released
    model's test metric in the report.
    """
    parts = [] if test_metric is None else [f"test {test_metric:.3f}"]
    parts.extend((f"ε {charged:.3g} charged", f"{spent:.3g} of {cap:g} spent"))
    if seeded:
        parts.append("seeded: not private")
    parts.extend((label, f"{mode} {search_id[:8]}"))
    return " · ".join(parts)


def outcome_run_name(outcome: SearchOutcome) -> str:
    """The parent run's name once the search has ended: :func:`run_name` with the released test metric."""
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


def search_label(tags: Mapping[str, str], run_id: str) -> str:
    """``random/best 1a2b3c``: short enough for a point on a plot, enough to find the run."""
    search_id = tags.get(TAG_SEARCH_ID, run_id)
    return f"{tags.get(TAG_MODE, '?')}/{tags.get(TAG_RELEASE, '?')} {search_id[:6]}"


# ---------------------------------------------------------------------------- the parent run


def search_tags(plan: SearchPlan, charge: Charge, ledger: PrivacyLedger, spent: float) -> dict[str, str]:
    """The parent run's tags, set at the charge: what the search cost and where it was charged."""
    return {
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
    }


def search_fields(
    plan: SearchPlan, charge: Charge, ledger: PrivacyLedger, config: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, float]]:
    """The parent run's params and metrics at the charge (``config``: the plan's config as JSON)."""
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
    return params, metrics


def outcome_fields(outcome: SearchOutcome) -> tuple[dict[str, str], dict[str, float]]:
    """The parent run's params and metrics at the end: the ledger after, the released best, the disclosed counts."""
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
        params.update({f"best.{k}": param_value(v) for k, v in {**best.hyperparameters, **best.point}.items()})
    if rule.shows_trial_count:
        metrics["trials_disclosed"] = float(len(outcome.disclosed_trials))
        metrics["trials_failed"] = float(outcome.failed_trials_disclosed)
    if outcome.report.status == "interrupted":
        params = {}  # MLflow params are write-once: the resumed search, in this run, logs its final status
    return params, metrics


def param_value(value: Any) -> str:
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
            flat[name] = param_value(value)
    return flat


# ---------------------------------------------------------------------------- the plots


def search_figures(
    client: MlflowClient, ledger: PrivacyLedger, outcome: SearchOutcome, *, parent_run_id: str
) -> Iterator[tuple[str, Figure]]:
    """The plots of :mod:`tunedp.observe.plots` a search logs, each fed only disclosed data."""
    plan = outcome.plan
    rule = disclosure_for(plan.shape.mode, plan.shape.release)
    charges = ledger.charges()
    spent = cumulative_spent_epsilon([c.event for c in charges], ledger.delta)
    ours = next((i for i, c in enumerate(charges) if c.search_id == outcome.search_id), None)
    yield (
        "budget_burndown",
        budget_burndown(
            spent,
            global_epsilon=ledger.epsilon,
            dataset=ledger.dataset,
            labels=[f"{c.label} {c.search_id[:6]}".strip() for c in charges],
            highlight=ours,
        ),
    )
    if rule.releases_all:
        yield "scores_by_trial", scores_by_trial(outcome.disclosed_trials, best=outcome.best)
    if outcome.best is not None and outcome.best.released_scores:
        yield "learning_curve_best", learning_curve(outcome.best.released_scores)
    points = searches_on(client, ledger.dataset, parent_run_id=parent_run_id)
    yield "privacy_utility", privacy_utility(points, dataset=ledger.dataset)


def searches_on(client: MlflowClient, dataset: str, *, parent_run_id: str) -> list[SearchPoint]:
    """Every search logged on this ledger (tag ``tunedp.dataset``), from MLflow itself: its public figures only."""
    experiments = client.search_experiments(filter_string=f"name LIKE '{EXPERIMENT_PREFIX}%'")
    ids = [e.experiment_id for e in experiments]
    if not ids:
        return []
    runs = client.search_runs(
        ids,
        filter_string=f"tags.`{TAG_DATASET}` = '{dataset}' AND tags.`{TAG_ROLE}` = 'search'",
        max_results=1000,
    )
    points = []
    for run in runs:
        metrics = run.data.metrics
        if "charged_epsilon" in metrics and "best_released_score" in metrics:
            points.append(
                SearchPoint(
                    charged_epsilon=metrics["charged_epsilon"],
                    best_score=metrics["best_released_score"],
                    label=search_label(run.data.tags, run.info.run_id),
                    current=run.info.run_id == parent_run_id,
                )
            )
    return points


# ---------------------------------------------------------------------------- the trials


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
        params = {name: param_value(value) for name, value in {**record.hyperparameters, **record.point}.items()}
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


def trial_tags(trial: TrialLog, outcome: SearchOutcome, *, parent_run_id: str, dataset: str) -> dict[str, str]:
    """A trial run's tags: the rule's (:func:`trial_logs`), its parent, and the search it belongs to."""
    return {
        **trial.tags,
        TAG_PARENT: parent_run_id,
        TAG_DATASET: dataset,
        TAG_SEARCH_ID: outcome.search_id,
        TAG_MODE: outcome.plan.shape.mode,
        TAG_RELEASE: outcome.plan.shape.release,
    }


# ---------------------------------------------------------------------------- the registered version


def version_tags(plan: SearchPlan, charge: Charge, ledger: PrivacyLedger, spent: float) -> dict[str, str]:
    """A registered version's tags, all known at the charge (its release status starts ``pending``)."""
    return {
        TAG_DATASET: ledger.dataset,
        TAG_SEARCH_ID: charge.search_id,
        TAG_EPSILON: repr(float(charge.epsilon)),
        TAG_DELTA: repr(float(plan.delta)),
        TAG_SPENT: repr(float(spent)),
        TAG_PRIVACY: "seeded: not private" if charge.seeded else "private",
        TAG_ACCOUNTANT: ACCOUNTANT,
        TAG_RELEASE_STATUS: "pending",
    }


def version_description(plan: SearchPlan, charge: Charge, ledger: PrivacyLedger, spent: float, run_id: str) -> str:
    """A registered version's description: the charge, the ledger's total, where its model will be."""
    return (
        f"tunedp search {charge.search_id[:12]} on {ledger.dataset!r}: charged ε = {charge.epsilon:.4g} "
        f"at δ = {plan.delta:g}; the ledger's total spent ε = {spent:.4g} of {ledger.epsilon:g}. "
        f"Its model is at runs:/{run_id}/{MODEL_NAME} once the search releases it "
        f"(tag {TAG_RELEASE_STATUS})."
    )
