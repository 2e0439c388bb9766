"""Running the trials of a staged search (``two_stage``, ``public_proxy``): select, transfer, train once.

The driver charges a staged plan's ONE event (both stages) before calling
:func:`run_stages`, exactly as for any search, and releases and reports what
it returns; this module replaces only the "run the trials" step:

1. Stage 1 runs the selection search of ``plan.stage1`` (short private trials
   on the protected data, or trials on the declared public workload) with K
   drawn by the driver from the distribution the charge assumed. Its trials,
   K, their scores and their models stay inside the driver: they reach no
   observer, no file, no log (Ray's output is silenced as under
   ``release: best``) — only the secret resume state (:mod:`tunedp.run.resume`),
   which keeps K, each finished stage-1 trial (without its model) and the
   selection, so an interrupted search resumes stage 1 where it stopped and
   never draws K again. The stage-1 model is deleted.
2. The selected point's learning rate is transferred by the plan's factor
   (fixed before any data was read) and ONE final run trains at it on the
   full training data with σ₂; its event is checked against the charged one
   before it starts.
3. Only that run is returned: the driver releases its model, its
   hyperparameters, its test metric on the public test split, and a
   validation score only if the config asked for one (``final_score: released``).

A resumed search runs only what is missing: the stage-1 trials that had
not finished (then selects among all K), or — when stage 1 had ended — the
final run alone.

Each stage's trials run with their own search's Tune configuration (its
mode's, from ``tune_hooks_of``: stage 1's mode, and ``grid`` for the final
run). Imports Ray (through :mod:`tunedp.run.ray_backend`) only when called.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from tunedp.accounting.staged_event import transfer_point
from tunedp.config import SearchConfig
from tunedp.planning.staged import StagedPlan
from tunedp.release.disclosure import Disclosure
from tunedp.release.records import TrialRecord
from tunedp.run.mode_run import TrialsRun

if TYPE_CHECKING:  # Ray must not load at import
    from tunedp.run.ray_backend import TuneHooks
    from tunedp.run.resume import StateRecorder

__all__ = ["run_stages"]

#: Neither stage is disclosed trial by trial: stage 1 never, stage 2 as the released model only.
_HIDDEN = Disclosure(releases_all=False)


def _final_run(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The one stage-2 run, if it completed (it has no released score unless configured)."""
    done = [r for r in records if r.status == "completed"]
    return done[0] if done else None


def run_stages(
    plan: StagedPlan,
    *,
    tune_hooks_of: Callable[[SearchConfig], TuneHooks],
    rng: np.random.Generator,
    seed: int | None,
    ray_address: str | None,
    max_concurrent: int | None,
    select: Callable[[Sequence[TrialRecord]], TrialRecord | None],
    recorder: StateRecorder,
) -> TrialsRun:
    """Stage 1 (selection by ``select``), then the final run; returns the final run only.

    Stage 1's K is ``recorder.state.trial_count`` (drawn once, by the driver,
    from ``plan.selection_shape``); its finished trials and its selection are
    added to the recorder's state as they happen.
    """
    from tunedp.run.ray_backend import run_trials  # Ray loads only once trials run

    if not recorder.state.stage1_done:
        recorder.select_stage1(
            _stage_one(
                plan, tune_hooks_of=tune_hooks_of, rng=rng, seed=seed, ray_address=ray_address,
                max_concurrent=max_concurrent, select=select, recorder=recorder,
            )
        )  # fmt: skip
    chosen = recorder.state.stage1_selected
    if chosen is None:
        return TrialsRun(records=(), best=None, nodes=())
    final_plan = plan.final_plan(transfer_point(chosen.point, plan.transfer_factor), chosen.variant)
    run = run_trials(
        final_plan,
        tune_hooks=tune_hooks_of(final_plan.config),
        trial_count=1,
        rng=rng,
        # A --seed run (not private) must not replay stage-1 trial 0's batches and noise.
        seed=None if seed is None else seed + 1,
        ray_address=ray_address,
        max_concurrent=1,
        disclosure=_HIDDEN,
        select=_final_run,
    )
    final = run.best
    return TrialsRun(records=(final,) if final is not None else (), best=final, nodes=())


def _stage_one(
    plan: StagedPlan,
    *,
    tune_hooks_of: Callable[[SearchConfig], TuneHooks],
    rng: np.random.Generator,
    seed: int | None,
    ray_address: str | None,
    max_concurrent: int | None,
    select: Callable[[Sequence[TrialRecord]], TrialRecord | None],
    recorder: StateRecorder,
) -> TrialRecord | None:
    """The trial stage 1 selects among all its K trials, those an earlier run finished included."""
    from tunedp.run.ray_backend import run_trials

    previous = recorder.state.completed  # finished before an interruption: never rerun
    remaining = recorder.state.trial_count - len(previous)

    def select_all(new: Sequence[TrialRecord]) -> TrialRecord | None:
        return select([*previous, *new])

    if remaining <= 0:
        return select_all([])
    selection = run_trials(
        plan.stage1,
        tune_hooks=tune_hooks_of(plan.stage1.config),
        trial_count=remaining,
        rng=rng,
        seed=seed,
        ray_address=ray_address,
        max_concurrent=max_concurrent,
        disclosure=_HIDDEN,
        select=select_all,
        on_record=lambda record: recorder.record(record, keep_model=False),
    )
    chosen = selection.best
    del selection  # nothing of stage 1 outlives the selection but the chosen point
    if chosen is not None and chosen.checkpoint_path is not None:  # the stage-1 model is never released
        shutil.rmtree(chosen.checkpoint_path, ignore_errors=True)
        chosen = replace(chosen, checkpoint_path=None)
    return chosen
