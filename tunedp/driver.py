"""The search driver: plan → charge → run → select → report.

The order is the privacy contract: the search is planned (σ calibrated so the
*whole search* fits its budget) and charged to the dataset's ledger before
Ray starts and before any trial reads data. A search the ledger cannot admit
never starts. Once charged, the charge stays — whatever happens to the trials
(failure, Ctrl-C, a killed driver).

Each stage is a module: :mod:`tunedp.plan` (pricing), the ledger
(:mod:`tunedp.accounting.ledger`), :mod:`tunedp.ray_backend` (the trials; the
only Ray importer, loaded here only once trials run), :mod:`tunedp.selection`,
:mod:`tunedp.report`. What leaves is decided by :mod:`tunedp.disclosure`;
who hears about it (console, MLflow) is the caller's choice of observers.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tunedp.accounting.ledger import Charge, PrivacyLedger
from tunedp.accounting.search_event import draw_trial_count
from tunedp.accounting.serialization import event_to_json
from tunedp.config import SearchConfig
from tunedp.disclosure import Disclosure, disclosure_for
from tunedp.errors import one_line
from tunedp.fingerprint import open_search_ledger, verify_search_data
from tunedp.observers import SearchObserver, SearchOutcome, notify
from tunedp.plan import SearchPlan, plan_search
from tunedp.records import TrialRecord
from tunedp.report import BestRelease, LedgerFigures, PrivacyFigures, SearchReport, write_report
from tunedp.selection import select_best

__all__ = ["SearchError", "run_search", "search"]

log = logging.getLogger(__name__)


class SearchError(RuntimeError):
    """The search ran (and was charged) but produced no result: exit code 1."""


def search(
    config: SearchConfig,
    *,
    ledger_path: Path | None = None,
    ray_address: str | None = None,
    max_concurrent: int | None = None,
    seed: int | None = None,
    output_dir: Path | None = None,
    observers: Sequence[SearchObserver] = (),
) -> SearchOutcome:
    """Plan, charge and run a search; the Python API behind ``tunedp search``.

    Raises the user errors of planning and the ledger (nothing charged) before
    anything runs; raises :class:`SearchError` when every trial failed (the
    charge stays). ``observers`` hear about the search within the disclosure
    rule (e.g. ``tunedp.tracking.MlflowTracker``, ``tunedp.progress.ConsoleProgress``).
    """
    plan = plan_search(config)
    # The ledger of the data the workload reads (no aliases); its data is verified in run_search.
    ledger = open_search_ledger(config.workload, config.dataset, ledger_path)
    return run_search(
        plan,
        ledger=ledger,
        ray_address=ray_address,
        max_concurrent=max_concurrent,
        seed=seed,
        output_dir=output_dir,
        observers=observers,
    )


def run_search(
    plan: SearchPlan,
    *,
    ledger: PrivacyLedger,
    ray_address: str | None = None,
    max_concurrent: int | None = None,
    seed: int | None = None,
    output_dir: Path | None = None,
    observers: Sequence[SearchObserver] = (),
) -> SearchOutcome:
    """Charge ``plan`` to ``ledger`` and run it on Ray Tune."""
    config = plan.config
    disclosure = disclosure_for(plan.shape.mode, plan.shape.release)
    search_id = uuid.uuid4().hex
    # The data about to be read must be the data this ledger protects (keyed
    # fingerprint); otherwise refuse here, before anything is charged.
    verify_search_data(ledger, config.workload)
    spent_before = ledger.spent_epsilon()

    # The charge: before Ray starts, before any data is read. Raises (and
    # charges nothing) when the ledger cannot admit the search.
    charge = ledger.charge(
        plan.event,
        config_hash=config.fingerprint(),
        mode=f"{plan.shape.mode}/{plan.shape.release}",
        label=config.name or config.workload,
        search_id=search_id,
    )
    spent_after = ledger.spent_epsilon()
    notify(observers, "on_charged", plan, charge, ledger)

    output = Path(output_dir) if output_dir is not None else Path("runs") / search_id
    output.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    status = "failed"
    records: tuple[TrialRecord, ...] = ()
    best: TrialRecord | None = None
    nodes: tuple[str, ...] = ()
    try:
        ledger.set_status(search_id, "running")
        rng = np.random.default_rng(seed if seed is not None else secrets.randbits(128))
        trial_count = draw_trial_count(plan.shape, rng)
        from tunedp.ray_backend import run_trials  # Ray loads only once trials run

        def trial_done(record: TrialRecord, done: int, planned: int) -> None:
            notify(observers, "on_trial_done", record, done, planned)

        run = run_trials(
            plan,
            trial_count=trial_count,
            rng=rng,
            seed=seed,
            ray_address=ray_address,
            max_concurrent=max_concurrent,
            disclosure=disclosure,
            select=select_best,
            on_trial_done=trial_done,
        )
        records, best, nodes = run.records, run.best, run.nodes
        status = "completed" if any(r.status != "failed" for r in records) else "failed"
    except KeyboardInterrupt:
        status, records, best = "interrupted", (), None
    finally:
        ledger.set_status(search_id, status)

    released, best_model = _release_model(config, best, output)
    records = tuple(released if r is best and released is not None else r for r in records)
    best = released
    disclosed = tuple(disclosure.trials(list(records), best))
    report = _report(
        plan,
        charge=charge,
        ledger=ledger,
        spent=(spent_before, spent_after),
        best=best,
        best_model=best_model,
        disclosed=disclosed,
        disclosure=disclosure,
        started=started,
        status=status,
        nodes=nodes,
    )
    write_report(output, report)
    outcome = SearchOutcome(
        search_id=search_id,
        plan=plan,
        charge=charge,
        best=best,
        disclosed_trials=disclosed,
        report=report,
        output_dir=output,
        ray_nodes=nodes,
    )
    notify(observers, "on_finished", outcome)
    if status == "interrupted":
        raise KeyboardInterrupt
    if best is None:
        raise SearchError(
            f"every trial failed (or none was drawn); the charge of epsilon={charge.epsilon:.4g} stays. "
            f"Report: {output / 'report.json'}"
        )
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
    return replace(best, test_metric=_test_metric(config, model), checkpoint_path=None), model


def _test_metric(config: SearchConfig, model_file: Path) -> float | None:
    """The selected model's exact test accuracy (public test split; never used for selection)."""
    import torch

    from tunedp.trial_runner import test_metric_of

    try:
        state = torch.load(model_file, map_location="cpu", weights_only=True)
        return test_metric_of(config.workload, config.model, state)
    except Exception as error:  # a missing dataset must not lose the search's results
        log.warning("test metric of the best model failed: %s", one_line(error))
        return None


def _report(
    plan: SearchPlan,
    *,
    charge: Charge,
    ledger: PrivacyLedger,
    spent: tuple[float, float],
    best: TrialRecord | None,
    best_model: Path | None,
    disclosed: tuple[TrialRecord, ...],
    disclosure: Disclosure,
    started: datetime,
    status: str,
    nodes: tuple[str, ...],
) -> SearchReport:
    finished = datetime.now(UTC)
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
        event=event_to_json(plan.event),
        plan=plan.to_json(),
    )
    return SearchReport(
        search_id=charge.search_id,
        name=plan.config.name,
        status=status,
        started_at=started.isoformat(timespec="seconds"),
        finished_at=finished.isoformat(timespec="seconds"),
        duration_s=round((finished - started).total_seconds(), 1),
        privacy=privacy,
        ledger=LedgerFigures(
            path=str(ledger.path),
            dataset=ledger.dataset,
            global_epsilon=ledger.epsilon,
            spent_before=spent[0],
            spent_after=spent[1],
        ),
        best=BestRelease.of(best, best_model) if best is not None else None,
        config=plan.config.model_dump(mode="json"),
        trials=tuple(r.public_view() for r in disclosed) if disclosure.releases_all else None,
        ray_nodes=nodes if disclosure.releases_all else (),
    )
