"""Running a staged search (``two_stage``, ``public_proxy``): charge once → select → transfer → train once → release.

The order is the same privacy contract as :mod:`tunedp.driver`: the ONE
charge (both stages, :attr:`StagedPlan.event`) is written before Ray starts
and before any row is read; it stays whatever happens next.

1. Stage 1 runs the selection search of the plan's ``stage1`` (short private
   trials on the protected data, or trials on the declared public workload)
   with K drawn from the distribution the charge assumed. Its trials, K,
   their scores and their models stay inside this function: they reach no
   observer, no file, no log (Ray's output is silenced as under
   ``release: best``), and the stage-1 models are deleted.
2. The selected point's learning rate is transferred by the plan's factor
   (fixed before any data was read) and ONE final run trains at it on the
   full training data with σ₂. Its event is checked against the charged one.
3. Only that run leaves: its model, its hyperparameters, its test metric on
   the public test split, and a validation score only if the config asked
   for one (``final_score: released``, charged in stage 2).

Imports Ray (through :mod:`tunedp.ray_backend`) only when trials run.
"""

from __future__ import annotations

import secrets
import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tunedp.accounting.ledger import SEEDED_MARK, PrivacyLedger
from tunedp.accounting.search_event import draw_trial_count
from tunedp.accounting.staged_event import transfer_point
from tunedp.disclosure import Disclosure, disclosure_for
from tunedp.observers import SearchObserver, SearchOutcome, notify
from tunedp.records import TrialRecord
from tunedp.staged_plan import StagedPlan

__all__ = ["run_staged_search"]

#: Stage 1 is never disclosed, whatever its own mode would allow.
_STAGE1_DISCLOSURE = Disclosure(releases_all=False)


def _final_run(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The one stage-2 run, if it completed (it has no released score unless configured)."""
    done = [r for r in records if r.status == "completed"]
    return done[0] if done else None


def run_staged_search(
    plan: StagedPlan,
    *,
    ledger: PrivacyLedger,
    ray_address: str | None = None,
    max_concurrent: int | None = None,
    seed: int | None = None,
    output_dir: Path | None = None,
    observers: Sequence[SearchObserver] = (),
) -> SearchOutcome:
    """Charge ``plan`` (both stages, one event) and run it; see the module docstring."""
    from tunedp import driver  # the driver's release/report helpers; imported late (driver imports us lazily)

    config = plan.config
    disclosure = disclosure_for(plan.shape.mode, plan.shape.release)
    search_id = uuid.uuid4().hex
    spent_before = ledger.spent_epsilon()
    charge = ledger.charge(
        plan.event,
        config_hash=config.fingerprint(),
        mode=f"{plan.shape.mode}/{plan.shape.release}" + (SEEDED_MARK if seed is not None else ""),
        label=config.name or config.workload,
        search_id=search_id,
    )
    spent_after = ledger.spent_epsilon()
    notify(observers, "on_charged", plan, charge, ledger)

    output = Path(output_dir) if output_dir is not None else Path("runs") / search_id
    output.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    status = "failed"
    final: TrialRecord | None = None
    try:
        ledger.set_status(search_id, "running", at=driver._public_iso(disclosure, datetime.now(UTC)))
        rng = np.random.default_rng(seed if seed is not None else secrets.randbits(128))
        trial_count = draw_trial_count(plan.selection_shape, rng)
        from tunedp.ray_backend import run_trials  # Ray loads only once trials run

        selection = run_trials(
            plan.stage1,
            trial_count=trial_count,
            rng=rng,
            seed=seed,
            ray_address=ray_address,
            max_concurrent=max_concurrent,
            disclosure=_STAGE1_DISCLOSURE,
            select=driver.select_best,
        )
        chosen = selection.best
        if chosen is not None:
            if chosen.checkpoint_path is not None:  # the stage-1 model is never released
                shutil.rmtree(chosen.checkpoint_path, ignore_errors=True)
            final_plan = plan.final_plan(transfer_point(chosen.point, plan.transfer_factor))
            del selection, chosen  # nothing of stage 1 outlives the selection
            run = run_trials(
                final_plan,
                trial_count=1,
                rng=rng,
                seed=seed,
                ray_address=ray_address,
                max_concurrent=1,
                disclosure=_STAGE1_DISCLOSURE,
                select=_final_run,
            )
            final = run.best
        status = "completed" if final is not None else "failed"
    except KeyboardInterrupt:
        status, final = "interrupted", None
    finally:
        ledger.set_status(search_id, status, at=driver._public_iso(disclosure, datetime.now(UTC)))

    released, model = driver._release_model(config, final, output)
    disclosed = (released,) if released is not None else ()
    report = driver._report(
        plan,
        charge=charge,
        ledger=ledger,
        spent=(spent_before, spent_after),
        best=released,
        best_model=model,
        disclosed=disclosed,
        disclosure=disclosure,
        started=started,
        status=status,
        nodes=(),
    )
    driver.write_report(output, report)
    driver._hide_file_times(disclosure, output)
    outcome = SearchOutcome(
        search_id=search_id,
        plan=plan,
        charge=charge,
        best=released,
        disclosed_trials=disclosed,
        report=report,
        output_dir=output,
    )
    notify(observers, "on_finished", outcome)
    if status == "interrupted":
        raise KeyboardInterrupt
    if released is None:
        raise driver.SearchError(
            f"the selection or the final run failed; the charge of epsilon={charge.epsilon:.4g} stays. "
            f"Report: {output / 'report.json'}"
        )
    return outcome
