"""Tune searchers of tunedp's own: classes that must subclass Ray's ``Searcher`` live here, not in the modes.

:class:`HypoSearcher` is the ``hypo`` mode's (:mod:`tunedp.modes.hypo`): it
proposes each point from :mod:`tunedp.modes.hypo_proposal`'s bounded density
given the finished trials' released scores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from tunedp.modes.hypo_proposal import BoundedProposal
from tunedp.run.ray_backend.records import METRIC

__all__ = ["HypoSearcher"]


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
