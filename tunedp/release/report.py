"""The report of a finished search: one typed, immutable value, written as report.json/report.txt.

Every output channel (the output folder, the console summary, MLflow) reads
this one value, so they cannot disagree. It is built only from what the
disclosure rule lets leave the driver: under ``release: best`` it has no
per-trial list and no trial count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunedp.accounting.remaining import remaining_epsilon
from tunedp.release.records import TrialRecord

__all__ = ["BestRelease", "LedgerFigures", "PrivacyFigures", "SearchReport", "human_summary", "write_report"]

#: Shown next to every ε of a ``--seed`` search.
SEEDED_NOTE = " — seeded: not private (batches, noise and K follow from a known seed)"

BEST_ONLY_NOTE = (
    "release: best — only the best trial is released; the number of trials and every other "
    "trial's results stay inside the driver (the repeat-and-select bound assumes K unseen). "
    "The search's duration correlates with K."
)


@dataclass(frozen=True, kw_only=True)
class PrivacyFigures:
    """What was charged, and the plan's figures a reviewer recomputes it from."""

    mode: str
    release: str
    accountant: str
    charged_epsilon: float
    delta: float
    ledger_delta: float
    noise_multiplier: float
    trial_epsilon: float
    search_epsilon: float
    naive_epsilon: float
    budget_epsilon: float
    #: Ran with ``--seed``: deterministic given a known integer, so the ε is not a guarantee.
    seeded: bool
    event: dict[str, Any]
    plan: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class LedgerFigures:
    """The dataset's ledger before and after this search's charge."""

    path: str
    dataset: str
    global_epsilon: float
    spent_before: float
    spent_after: float

    @property
    def remaining(self) -> float:
        return remaining_epsilon(self.global_epsilon, self.spent_after)

    @property
    def remaining_before(self) -> float:
        return remaining_epsilon(self.global_epsilon, self.spent_before)


@dataclass(frozen=True, kw_only=True)
class BestRelease:
    """The released trial: its hyperparameters, released scores, test metric and model file.

    Field names are :class:`TrialRecord`'s (``final_score`` is the last released score).
    """

    point: dict[str, float]
    hyperparameters: dict[str, float]
    #: ``None`` when the released run released no validation score (a staged search's final run).
    final_score: float | None
    released_scores: tuple[float, ...]
    test_metric: float | None
    model: str | None
    #: What ``test_metric`` is: "public test split", or "exact, outside the ε guarantee"
    #: when the workload carves its test split from the protected data.
    test_label: str = "public test split"
    #: The model variant of the released model (``None``: the workload's default).
    variant: str | None = None

    @classmethod
    def of(cls, best: TrialRecord, model: Path | None, *, test_label: str = "public test split") -> BestRelease:
        return cls(
            point=dict(best.point),
            hyperparameters=dict(best.hyperparameters),
            final_score=best.final_score if best.released_scores else None,
            released_scores=best.released_scores,
            test_metric=best.test_metric,
            model=str(model) if model is not None else None,
            test_label=test_label,
            variant=best.variant,
        )


@dataclass(frozen=True, kw_only=True)
class SearchReport:
    """A finished (or interrupted, or failed) search, as it may be published."""

    search_id: str
    name: str | None
    status: str
    #: ISO time the search started, or only its UTC date where the duration must stay unrecorded.
    started_at: str
    #: ``None`` where the duration must stay unrecorded (``release: best``: it grows with K).
    finished_at: str | None
    duration_s: float | None
    privacy: PrivacyFigures
    ledger: LedgerFigures
    best: BestRelease | None
    config: dict[str, Any]
    #: Every trial's public view; ``None`` under ``release: best``.
    trials: tuple[dict[str, Any], ...] | None = None
    ray_nodes: tuple[str, ...] = field(default_factory=tuple)
    #: Why trials failed, where that may be shown (:mod:`tunedp.run.failures`); never which trial or how many.
    failure_reasons: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The report.json document (field names stable: tests and users read them)."""
        privacy = dict(vars(self.privacy))
        ledger = dict(vars(self.ledger))
        ledger["remaining"] = self.ledger.remaining
        document: dict[str, Any] = {
            "search_id": self.search_id,
            "name": self.name,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "privacy": privacy,
            "ledger": ledger,
            "best": None,
            "trials": None,
            "failure_reasons": list(self.failure_reasons),
            "config": self.config,
        }
        if self.best is not None:
            best = dict(vars(self.best))
            best["released_scores"] = list(self.best.released_scores)
            document["best"] = best
        if self.trials is not None:
            document["trials"] = list(self.trials)
            document["trial_count"] = len(self.trials)
            document["ray_nodes"] = list(self.ray_nodes)
        else:
            document["trials_note"] = BEST_ONLY_NOTE
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> SearchReport:
        """Read a report.json back (``tunedp report``)."""
        ledger = dict(document["ledger"])
        ledger.pop("remaining", None)
        best = document.get("best")
        trials = document.get("trials")
        return cls(
            search_id=document["search_id"],
            name=document.get("name"),
            status=document["status"],
            started_at=document.get("started_at", ""),
            finished_at=document.get("finished_at"),
            duration_s=document.get("duration_s"),
            privacy=PrivacyFigures(**{"seeded": False, **document["privacy"]}),
            ledger=LedgerFigures(**ledger),
            best=None if best is None else _best_of(best),
            config=document.get("config", {}),
            trials=None if trials is None else tuple(trials),
            ray_nodes=tuple(document.get("ray_nodes", ())),
            failure_reasons=tuple(document.get("failure_reasons", ())),
        )


def _best_of(document: dict[str, Any]) -> BestRelease:
    best = dict(document)
    if "released_score" in best:  # reports written before the field took TrialRecord's name
        best["final_score"] = best.pop("released_score")
    return BestRelease(**{**best, "released_scores": tuple(best["released_scores"])})


def write_report(output: Path, report: SearchReport) -> None:
    """report.json (every figure) and report.txt (the human summary) in ``output``."""
    (output / "report.json").write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
    (output / "report.txt").write_text(human_summary(report) + "\n", encoding="utf-8")


def human_summary(report: SearchReport) -> str:
    """A few lines a person reads: what was charged, for what, and what came out."""
    privacy, ledger, best = report.privacy, report.ledger, report.best
    seeded = SEEDED_NOTE if privacy.seeded else ""
    lines = [
        f"search {report.search_id[:12]} ({report.name or ''}): {report.status}",
        f"mode: {privacy.mode} (release: {privacy.release}), noise multiplier σ = {privacy.noise_multiplier:.4f}",
        f"charged ε = {privacy.charged_epsilon:.4f} at δ = {privacy.ledger_delta:g}{seeded} "
        f"(trial ε = {privacy.trial_epsilon:.4f}; naive composition would be ε = {privacy.naive_epsilon:.4f})",
        f"ledger {ledger.dataset!r}: spent {ledger.spent_before:.4f} → {ledger.spent_after:.4f} of "
        f"{ledger.global_epsilon:g}; remaining ≈ {ledger.remaining:.4f}",
    ]
    if best is not None:
        hyper = ", ".join(f"{k}={v:.4g}" for k, v in sorted(best.hyperparameters.items()))
        score = "no validation score released" if best.final_score is None else f"released score {best.final_score:.4f}"
        variant = f"model variant {best.variant}; " if best.variant is not None else ""
        lines.append(f"best: {score}; {variant}{hyper}")
        if best.test_metric is not None:
            lines.append(f"best model test metric ({best.test_label}): {best.test_metric:.4f}")
        if best.model is not None:
            lines.append(f"model: {best.model} ({_load_hint(report, best.model)})")
    else:
        lines.append("interrupted: nothing released" if report.status == "interrupted" else "no trial succeeded")
    lines.extend(f"at least one trial failed: {reason}" for reason in report.failure_reasons)
    return "\n".join(lines)


def _load_hint(report: SearchReport, model: str) -> str:
    """One line: how to score raw rows with the released model (a table's own columns, else arrays)."""
    workload = report.config.get("workload", "WORKLOAD")
    folder = Path(model).parent
    if isinstance(workload, dict) or workload == "adult":  # a table: its own columns, by name
        return (
            f"predict on raw rows: tunedp predict --report {folder} rows.csv; "
            "in MLflow: mlflow.pyfunc.load_model('runs:/<run id>/model')"
        )
    raw_shape = _raw_image_shape(workload)
    if raw_shape is not None:  # a workload that declares the raw images a user holds, and their preprocessing
        return (
            f"predict on raw {'×'.join(map(str, raw_shape))} images: tunedp predict --report {folder} images.npy "
            "(or an IDX file such as t10k-images-idx3-ubyte.gz); "
            "in MLflow: mlflow.pyfunc.load_model('runs:/<run id>/model')"
        )
    variant = report.best.variant if report.best is not None and report.best.variant else report.config.get("model")
    return (
        f"a state dict; predict: tunedp predict --report {folder} inputs.npy, or load it with "
        f"model = tunedp.workloads.resolve_workload({workload!r}).build_model({variant!r}); "
        "model.load_state_dict(torch.load(path, weights_only=True))"
    )


def _raw_image_shape(workload: Any) -> tuple[int, ...] | None:
    """The raw input a workload declares (``raw_input_shape``), or ``None`` (undeclared, or not resolvable here)."""
    from tunedp.workloads import resolve_workload

    try:
        return resolve_workload(workload).raw_input_shape
    except (ValueError, TypeError, ImportError):  # a hint only: a workload that cannot load here gets the generic one
        return None
