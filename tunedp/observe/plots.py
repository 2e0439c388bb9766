"""Figures of a search for the dashboard: budget burn-down, scores, learning curve, privacy–utility.

Every function draws only what it is given; choosing *what may be drawn*
(which trials, which scores) is the caller's job and follows
:mod:`tunedp.release.disclosure` — :mod:`tunedp.observe.mlflow_records` passes disclosed records
only. This module must never draw a raw training loss or an unreleased score,
and must never open a window: matplotlib runs on the headless Agg backend,
selected per figure (``Figure`` + ``FigureCanvasAgg``) so that importing this
module does not change the backend of a user's own pyplot session.

It imports neither torch, Ray nor MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dp_accounting import dp_event
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tunedp.accounting.epsilon import UnsupportedEventError, rdp_accountant
from tunedp.release.records import TrialRecord

__all__ = [
    "SearchPoint",
    "budget_burndown",
    "cumulative_spent_epsilon",
    "learning_curve",
    "privacy_utility",
    "save_figure",
    "scores_by_trial",
]

_SIZE = (6.4, 4.0)
_DPI = 110


@dataclass(frozen=True, kw_only=True)
class SearchPoint:
    """One search on the privacy–utility picture: what it was charged and what it released."""

    charged_epsilon: float
    best_score: float
    label: str
    current: bool = False


def _figure() -> Figure:
    figure = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches the headless canvas; no pyplot, no GUI
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as PNG (the format the MLflow artifact viewer shows inline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


# ---------------------------------------------------------------------------- budget


def cumulative_spent_epsilon(events: Sequence[dp_event.DpEvent], delta: float) -> list[float]:
    """Spent ε after each charge: the RDP ε at ``delta`` of the composition of events 1..i.

    Recomputed from the stored events, never from stored ε numbers, with the
    accountant and Rényi orders the ledger uses (:func:`rdp_accountant`). RDP
    composes by adding each order's divergence, so feeding the events to one
    accountant in order and reading ε after each gives exactly
    ``rdp_epsilon(ComposedDpEvent(events[:i]), delta)`` — in linear instead of
    quadratic time. An event the accountant cannot analyse raises (fail closed).
    """
    accountant = rdp_accountant()
    spent: list[float] = []
    for event in events:
        if not accountant.supports(event):
            raise UnsupportedEventError(f"RDP accountant does not support event {type(event).__name__}")
        accountant.compose(event)
        spent.append(float(accountant.get_epsilon(delta)))
    return spent


def budget_burndown(
    spent: Sequence[float],
    *,
    global_epsilon: float,
    dataset: str,
    labels: Sequence[str] | None = None,
    highlight: int | None = None,
) -> Figure:
    """Cumulative spent ε after each charge against the dataset's global ε.

    ``spent`` comes from :func:`cumulative_spent_epsilon`; ``highlight`` is the
    index of the charge of the search being logged.
    """
    figure = _figure()
    axes = figure.add_subplot()
    charges = list(range(1, len(spent) + 1))
    axes.step([0, *charges], [0.0, *spent], where="post", color="tab:blue", label="spent ε (RDP composition)")
    axes.plot(charges, spent, "o", color="tab:blue", markersize=4)
    if highlight is not None and 0 <= highlight < len(spent):
        axes.plot([highlight + 1], [spent[highlight]], "o", color="tab:red", markersize=8, label="this search's charge")
    axes.axhline(global_epsilon, color="black", linestyle="--", label=f"global ε = {global_epsilon:g}")
    axes.fill_between(
        [0, max(1, len(spent))], global_epsilon, max(global_epsilon, *spent, 0.0) * 1.05, color="0.9", zorder=0
    )
    if labels is not None and len(labels) == len(spent) and len(spent) <= 12:
        axes.set_xticks(charges, [str(label)[:24] for label in labels], rotation=30, ha="right", fontsize=7)
    axes.set_xlim(0, max(1, len(spent)) + 0.5)
    axes.set_ylim(0, max(global_epsilon, *spent, 0.0) * 1.05)
    axes.set_xlabel("charge (in ledger order)")
    axes.set_ylabel("ε")
    axes.set_title(f"Privacy budget of {dataset!r}: spent after each charge")
    if spent:
        axes.annotate(
            f"{spent[-1]:.3g}", (len(spent), spent[-1]), textcoords="offset points", xytext=(4, 6), fontsize=8
        )
    axes.legend(loc="center left", fontsize=8)
    return figure


# ---------------------------------------------------------------------------- scores


_STATUS_COLOURS = {"completed": "tab:blue", "stopped": "tab:orange", "failed": "tab:red"}


def scores_by_trial(records: Sequence[TrialRecord], *, best: TrialRecord | None, metric: str = "score") -> Figure:
    """Final released score of each trial in order (only for modes that release every trial).

    Failed trials have no score and are marked on the axis; early-stopped
    trials show their last released score.
    """
    figure = _figure()
    axes = figure.add_subplot()
    scored = [(i + 1, r) for i, r in enumerate(records) if r.released_scores]
    for status, colour in _STATUS_COLOURS.items():
        points = [(i, r.final_score) for i, r in scored if r.status == status]
        if points:
            axes.plot(*zip(*points, strict=True), "o", color=colour, label=status)
    failed = [i + 1 for i, r in enumerate(records) if r.status == "failed"]
    if failed:
        low = min((r.final_score for _, r in scored), default=0.0)
        axes.plot(failed, [low] * len(failed), "x", color=_STATUS_COLOURS["failed"], label="failed (no score)")
    for i, record in scored:
        if record is best:
            axes.plot([i], [record.final_score], "*", color="gold", markersize=16, markeredgecolor="black")
            axes.annotate("best", (i, record.final_score), textcoords="offset points", xytext=(6, 6))
    axes.set_xlabel("trial")
    axes.set_ylabel(f"released {metric} (final)")
    axes.set_title("Released score of every trial")
    if records:
        axes.set_xticks(range(1, len(records) + 1) if len(records) <= 20 else axes.get_xticks())
    axes.legend(fontsize=8)
    return figure


def learning_curve(released_scores: Sequence[float], *, metric: str = "score") -> Figure:
    """The best trial's released scores against evaluation — its only private-safe learning curve.

    Raw training losses are never privatised, so they never appear here.
    """
    figure = _figure()
    axes = figure.add_subplot()
    evaluations = list(range(1, len(released_scores) + 1))
    axes.plot(evaluations, list(released_scores), "o-", color="tab:green")
    axes.set_xticks(evaluations if len(evaluations) <= 20 else axes.get_xticks())
    axes.set_xlabel("evaluation")
    axes.set_ylabel(f"released {metric}")
    axes.set_title("Learning curve of the best trial (released scores)")
    return figure


def privacy_utility(points: Sequence[SearchPoint], *, dataset: str, metric: str = "score") -> Figure:
    """Best released score against charged ε for every search on one ledger."""
    figure = _figure()
    axes = figure.add_subplot()
    finite = [p for p in points if math.isfinite(p.charged_epsilon) and math.isfinite(p.best_score)]
    others = [p for p in finite if not p.current]
    if others:
        axes.scatter(
            [p.charged_epsilon for p in others], [p.best_score for p in others], color="tab:blue", label="searches"
        )
    for point in finite:
        if point.current:
            axes.scatter([point.charged_epsilon], [point.best_score], color="tab:red", s=80, label="this search")
        axes.annotate(
            point.label[:24],
            (point.charged_epsilon, point.best_score),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    top = max((p.charged_epsilon for p in finite), default=1.0)
    axes.set_xlim(0, top * 1.15)  # from ε = 0, so searches of almost equal cost do not look far apart
    axes.ticklabel_format(axis="both", useOffset=False)
    axes.set_xlabel("charged ε of the search")
    axes.set_ylabel(f"best released {metric}")
    axes.set_title(f"Privacy–utility on {dataset!r}")
    if finite:
        axes.legend(fontsize=8)
    return figure
