"""The release: what a charged search lets out, after its trials — the model, the report, the observers' last word.

:func:`release_search` is the driver's last step. The selected trial's model
moves to the output folder and gets its exact test metric (the only model
measured); the secret resume state goes (unless the search was interrupted);
the report holds what the search's disclosure rule allows
(:mod:`tunedp.release.disclosure`): under ``release: best``, ``hypo`` and the
staged modes one trial, no K, and day-granular times.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from tunedp.accounting.serialization import event_to_json
from tunedp.config import SearchConfig
from tunedp.errors import one_line
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.observe.protocol import SearchObserver, SearchOutcome, notify
from tunedp.planning.single_stage import SearchPlan
from tunedp.release.disclosure import Disclosure
from tunedp.release.records import TrialRecord
from tunedp.release.report import BestRelease, LedgerFigures, PrivacyFigures, SearchReport, write_report
from tunedp.run.charge import ChargedSearch
from tunedp.run.failures import failure_reasons
from tunedp.run.mode_run import TrialsRun
from tunedp.run.resume import finish as finish_state

__all__ = ["release_search"]

log = logging.getLogger(__name__)


def release_search(
    plan: SearchPlan,
    *,
    charged: ChargedSearch,
    ledger: PrivacyLedger,
    run: TrialsRun,
    status: str,
    output: Path,
    disclosure: Disclosure,
    started: datetime,
    observers: Sequence[SearchObserver],
) -> SearchOutcome:
    """Release the selected model, write the report, tell the observers; what ``tunedp.search`` returns."""
    released, best_model = _release_model(plan.config, run.best, output)
    if status != "interrupted":
        finish_state(output)  # K and every trial's model go; only an interrupted search keeps them
    records = tuple(released if r is run.best and released is not None else r for r in run.records)
    best = released
    disclosed = tuple(disclosure.trials(list(records), best))
    report = _report(
        plan,
        charged=charged,
        ledger=ledger,
        best=best,
        best_model=best_model,
        disclosed=disclosed,
        disclosure=disclosure,
        started=started,
        status=status,
        nodes=run.nodes,
    )
    report = replace(report, failure_reasons=failure_reasons(records, disclosure))
    write_report(output, report)
    disclosure.settle(output)
    outcome = SearchOutcome(
        search_id=charged.search_id,
        plan=plan,
        charge=charged.charge,
        best=best,
        disclosed_trials=disclosed,
        report=report,
        output_dir=output,
        ray_nodes=run.nodes,
    )
    notify(observers, "on_finished", outcome)
    return outcome


def _release_model(
    config: SearchConfig, best: TrialRecord | None, output: Path
) -> tuple[TrialRecord | None, Path | None]:
    """Move the selected model into ``output`` and measure its test metric (the only model measured)."""
    if best is None or best.checkpoint_path is None:
        return best, None
    model = output / "best_model.pt"
    shutil.copyfile(Path(best.checkpoint_path) / "model.pt", model)
    shutil.rmtree(best.checkpoint_path, ignore_errors=True)
    return replace(best, test_metric=_test_metric(config, model, best.variant), checkpoint_path=None), model


def _test_metric(config: SearchConfig, model_file: Path, variant: str | None) -> float | None:
    """The selected model's exact test accuracy (never used for selection; labelled by the workload's test source)."""
    import torch

    from tunedp.run.trial import test_metric_of

    try:
        state = torch.load(model_file, map_location="cpu", weights_only=True)
        return test_metric_of(config.workload, variant, state)
    except Exception as error:  # a missing dataset must not lose the search's results
        log.warning("test metric of the best model failed: %s", one_line(error))
        return None


def _test_label(config: SearchConfig) -> str:
    from tunedp.workloads.registry import resolve_workload  # resolved (and cached) at planning

    return resolve_workload(config.workload).test_label


def _report(
    plan: SearchPlan,
    *,
    charged: ChargedSearch,
    ledger: PrivacyLedger,
    best: TrialRecord | None,
    best_model: Path | None,
    disclosed: tuple[TrialRecord, ...],
    disclosure: Disclosure,
    started: datetime,
    status: str,
    nodes: tuple[str, ...],
) -> SearchReport:
    finished = datetime.now(UTC)
    exact = disclosure.shows_duration
    charge = charged.charge
    privacy = PrivacyFigures(
        mode=plan.shape.mode,
        release=plan.shape.release,
        accountant="rdp (dp_accounting)",
        charged_epsilon=charge.epsilon,
        delta=plan.delta,
        ledger_delta=ledger.delta,
        noise_multiplier=plan.noise_multiplier,
        trial_epsilon=plan.trial_epsilon,
        search_epsilon=plan.search_epsilon,
        naive_epsilon=plan.naive_epsilon,
        budget_epsilon=plan.config.budget.epsilon,
        seeded=charge.seeded,
        event=event_to_json(plan.event),
        plan=plan.to_json(),
    )
    return SearchReport(
        search_id=charge.search_id,
        name=plan.config.name,
        status=status,
        started_at=started.isoformat(timespec="seconds") if exact else started.date().isoformat(),
        finished_at=finished.isoformat(timespec="seconds") if exact else None,
        duration_s=round((finished - started).total_seconds(), 1) if exact else None,
        privacy=privacy,
        ledger=LedgerFigures(
            path=str(ledger.path),
            dataset=ledger.dataset,
            global_epsilon=ledger.epsilon,
            spent_before=charged.spent_before,
            spent_after=charged.spent_after,
        ),
        best=BestRelease.of(best, best_model, test_label=_test_label(plan.config)) if best is not None else None,
        config=plan.config.model_dump(mode="json"),
        trials=tuple(r.public_view() for r in disclosed) if disclosure.releases_all else None,
        ray_nodes=nodes if disclosure.releases_all else (),
    )
