"""What a search mode's run is given (:class:`RunContext`) and what it returns (:class:`TrialsRun`).

The driver charges the search, then hands its mode a :class:`RunContext`
(:meth:`tunedp.modes.SearchMode.run`); the mode runs its trials on Ray Tune
(single-stage modes) or its stages (:mod:`tunedp.run.staged`) and returns a
:class:`TrialsRun`. Both stay inside the driver: the secret K is
``recorder.state.trial_count`` and every record may be secret; what leaves
is decided afterwards by the disclosure rule (:mod:`tunedp.release.disclosure`).

Imports neither Ray nor torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tunedp.release.disclosure import Disclosure
from tunedp.release.records import TrialRecord

if TYPE_CHECKING:
    from tunedp.run.resume import StateRecorder

__all__ = ["RunContext", "Selector", "TrialsRun"]

#: Picks the released trial among finished ones (``None``: none can be released).
Selector = Callable[[Sequence[TrialRecord]], TrialRecord | None]


@dataclass(frozen=True, kw_only=True)
class TrialsRun:
    """What the trials produced, inside the driver: every record, the selected one with its model."""

    records: tuple[TrialRecord, ...]
    best: TrialRecord | None
    nodes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """Everything a charged search's mode needs to run its trials (all of it stays in the driver)."""

    #: Draws the Tune samplers' seeds (K was drawn from it first, by the driver).
    rng: np.random.Generator
    #: A ``--seed`` run (not private), or ``None``: every trial seeds itself from OS entropy.
    seed: int | None
    ray_address: str | None
    max_concurrent: int | None
    disclosure: Disclosure
    select: Selector
    #: The authenticated resume state: the secret K, the finished trials; each new trial is added to it.
    recorder: StateRecorder
    #: Told of each finished trial where the disclosure rule releases every trial (observers).
    on_trial_done: Callable[[TrialRecord, int, int], None]
