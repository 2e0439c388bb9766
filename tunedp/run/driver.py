"""The search driver: plan → charge → run → select → report.

The order is the privacy contract: the search is planned (σ calibrated so the
*whole search* fits its budget) and charged to the dataset's ledger before
Ray starts and before any trial reads data. A search the ledger cannot admit
never starts. Once charged, the charge stays — whatever happens to the trials
(failure, Ctrl-C, a killed driver).

Each stage is a module: :mod:`tunedp.planning.single_stage` (pricing), the ledger
(:mod:`tunedp.ledger.sqlite`), :mod:`tunedp.run.ray_backend` (the trials; the
only Ray importer, loaded here only once trials run), :mod:`tunedp.release.selection`,
:mod:`tunedp.release.report`. What leaves is decided by :mod:`tunedp.release.disclosure`;
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
from dp_accounting import dp_event

from tunedp.accounting.search_event import draw_trial_count
from tunedp.accounting.serialization import event_to_json
from tunedp.config import SearchConfig
from tunedp.errors import one_line
from tunedp.ledger import LedgerUrl
from tunedp.ledger.binding import open_search_ledger, verify_cluster_copies, verify_search_data
from tunedp.ledger.sqlite import SEEDED_MARK, Charge, PrivacyLedger
from tunedp.observe.lines import LineProgress, ProgressCallback
from tunedp.observe.protocol import SearchObserver, SearchOutcome, notify
from tunedp.planning import plan_search
from tunedp.planning.single_stage import SearchPlan
from tunedp.planning.staged import StagedPlan
from tunedp.release.disclosure import Disclosure, disclosure_for
from tunedp.release.records import TrialRecord
from tunedp.release.report import BestRelease, LedgerFigures, PrivacyFigures, SearchReport, write_report
from tunedp.release.selection import select_best
from tunedp.run.failures import failure_reasons
from tunedp.run.resume import ResumeState, StateRecorder, charged_search
from tunedp.run.resume import finish as finish_state

__all__ = ["SearchError", "open_checked_ledger", "resume_search", "run_search", "search"]

log = logging.getLogger(__name__)


class SearchError(RuntimeError):
    """The search ran (and was charged) but produced no result: exit code 1."""


def search(
    config: SearchConfig,
    *,
    ledger_path: Path | str | LedgerUrl | None = None,
    ray_address: str | None = None,
    max_concurrent: int | None = None,
    seed: int | None = None,
    output_dir: Path | None = None,
    observers: Sequence[SearchObserver] = (),
    force: bool = False,
    progress: ProgressCallback | None = None,
    register: str | None = None,
) -> SearchOutcome:
    """Plan, charge and run a search; the Python API behind ``tunedp search``.

    Raises the user errors of planning and the ledger (nothing charged) before
    anything runs; raises :class:`SearchError` when every trial failed (the
    charge stays). ``observers`` hear about the search within the disclosure
    rule (e.g. ``tunedp.observe.tracking.MlflowTracker``, ``tunedp.observe.console.ConsoleProgress``).
    ``progress`` receives one plain line per event (charge, trial or heartbeat,
    finish) within the same rule; the lines also go to the ``tunedp.progress``
    logger. ``force`` lets ``output_dir`` be a non-empty folder. ``register``
    registers the released model as a new version of that name in the MLflow
    Model Registry (through the first ``MlflowTracker`` in ``observers``, or
    one on the default store); an unreachable registry is refused before the charge.
    """
    plan = plan_search(config)
    # The ledger of the data the workload reads (no aliases); its data is verified in run_search.
    ledger = open_search_ledger(config.workload, config.dataset, ledger_path)
    if register is not None:
        from tunedp.observe.tracking import registering  # MLflow loads only for a search that registers

        observers = registering(observers, register)  # checks the registry: nothing charged yet
    return run_search(
        plan,
        ledger=ledger,
        ray_address=ray_address,
        max_concurrent=max_concurrent,
        seed=seed,
        output_dir=output_dir,
        observers=observers,
        force=force,
        progress=progress,
    )


def open_checked_ledger(
    plan: SearchPlan, ledger_path: Path | str | LedgerUrl | None = None, *, event: dp_event.DpEvent | None = None
) -> PrivacyLedger:
    """The ledger a charge of ``plan``'s data goes to, after the checks a search makes before its charge.

    For callers that charge the protected data but run no Ray trials
    (``tunedp audit``, charged ``event``: one trial): the ledger :func:`search`
    opens (the workload's dataset, no aliases), then, in the search's order,
    :func:`~tunedp.run.preflight.check_admissible`, the pre-flight
    (:func:`~tunedp.run.preflight.run_preflight`, as :func:`run_search` runs it)
    and the keyed data fingerprint (:func:`verify_search_data`, as the charge
    step runs it). Each failure is one line and nothing is charged.
    """
    from tunedp.run.preflight import check_admissible, run_preflight

    config = plan.config
    ledger = open_search_ledger(config.workload, config.dataset, ledger_path)
    check_admissible(plan, ledger, event=event)
    run_preflight(plan)
    verify_search_data(ledger, config.workload)
    return ledger


def run_search(
    plan: SearchPlan,
    *,
    ledger: PrivacyLedger,
    ray_address: str | None = None,
    max_concurrent: int | None = None,
    seed: int | None = None,
    output_dir: Path | None = None,
    observers: Sequence[SearchObserver] = (),
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> SearchOutcome:
    """Pre-flight, charge ``plan`` to ``ledger`` and run it on Ray Tune.

    Every check that does not depend on the private data runs before the
    charge (:mod:`tunedp.run.preflight`): a mistake there costs nothing. Ray is
    connected before the charge too, and that connection runs the trials.
    """
    from tunedp.run.preflight import check_admissible, prepared_cluster

    check_admissible(plan, ledger)  # first: a refused budget starts neither torch nor Ray
    with prepared_cluster(plan, ray_address, max_concurrent=max_concurrent, output=output_dir, force=force):
        return _charge_and_run(
            plan,
            ledger=ledger,
            ray_address=ray_address,
            max_concurrent=max_concurrent,
            seed=seed,
            output_dir=output_dir,
            observers=[*observers, LineProgress(progress)],
        )


def _charge_and_run(
    plan: SearchPlan,
    *,
    ledger: PrivacyLedger,
    ray_address: str | None = None,
    max_concurrent: int | None = None,
    seed: int | None = None,
    output_dir: Path | None = None,
    observers: Sequence[SearchObserver] = (),
    resume: ResumeState | None = None,
) -> SearchOutcome:
    """Charge ``plan`` to ``ledger`` and run it on Ray Tune (``resume``: continue a charged search)."""
    config = plan.config
    disclosure = disclosure_for(plan.shape.mode, plan.shape.release)
    search_id = uuid.uuid4().hex if resume is None else resume.search_id
    # The data about to be read must be the data this ledger protects (keyed
    # fingerprint); otherwise refuse here, before anything is charged.
    verify_search_data(ledger, config.workload)
    if ray_address is not None:  # an external cluster: every node reads its own copy; check each one
        from tunedp.run.ray_backend import node_fingerprints

        verify_cluster_copies(config.workload, lambda nonce: node_fingerprints(config.workload, nonce))
    spent_before = ledger.spent_epsilon()
    if ray_address is not None and not disclosure.shows_trial_count:
        log.warning(
            "release: best on an external Ray cluster (--ray-address): its own logs (worker logs, "
            "Tune's trial lines) are outside tunedp's control and record how many trials ran and their "
            "hyperparameters; protect or delete them, or the charge's repeat-and-select bound does not hold"
        )

    # The charge: before Ray starts, before any data is read. Raises (and
    # charges nothing) when the ledger cannot admit the search. A resumed
    # search was charged by its first run: it is never charged again.
    if resume is None:
        charge = ledger.charge(
            plan.event,
            config_hash=config.fingerprint(),
            # A seeded search is deterministic given a known integer: it spends
            # the budget (it read the data) but its ε is no guarantee; say so
            # wherever the charge appears.
            mode=f"{plan.shape.mode}/{plan.shape.release}" + (SEEDED_MARK if seed is not None else ""),
            label=config.name or config.workload_label,
            search_id=search_id,
        )
    else:
        charge = charged_search(ledger, plan, search_id)
    spent_after = ledger.spent_epsilon()
    notify(observers, "on_charged", plan, charge, ledger)

    output = Path(output_dir) if output_dir is not None else Path("runs") / search_id
    output.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    status = "failed"
    records: tuple[TrialRecord, ...] = ()
    best: TrialRecord | None = None
    nodes: tuple[str, ...] = ()
    rng = np.random.default_rng(seed if seed is not None else secrets.randbits(128))
    if resume is None:
        # K stays inside the driver: in memory, and in the mode-0600 resume state.
        state = ResumeState(
            search_id=search_id,
            config=config.model_dump(mode="json"),
            ledger_path=str(ledger.path),
            # A staged search's secret K is its stage 1's, drawn here once: a resume never draws it again.
            trial_count=draw_trial_count(plan.selection_shape if isinstance(plan, StagedPlan) else plan.shape, rng),
            seed=seed,
            spent_before=spent_before,
        )
    else:
        state = resume
        spent_before = resume.spent_before if resume.spent_before is not None else spent_before
    # Takes the search's lock first: a second driver on the same search is refused
    # here, before it could touch the ledger's status or run a trial.
    recorder = StateRecorder(output, state, ledger)  # authenticated under the ledger's key
    try:
        ledger.set_status(search_id, "running", at=_public_iso(disclosure, datetime.now(UTC)))
        if isinstance(plan, StagedPlan):  # two_stage / public_proxy: select, then one final run
            from tunedp.run.staged import run_stages  # Ray loads only once trials run

            run = run_stages(
                plan,
                rng=rng,
                seed=seed,
                ray_address=ray_address,
                max_concurrent=max_concurrent,
                select=select_best,
                recorder=recorder,
            )
            records, best, nodes = run.records, run.best, run.nodes
        else:
            previous = state.completed  # a resumed search's finished trials: never rerun
            remaining = state.trial_count - len(previous)
            from tunedp.run.ray_backend import run_trials  # Ray loads only once trials run

            def trial_done(record: TrialRecord, done: int, planned: int) -> None:
                notify(observers, "on_trial_done", record, done, planned)

            chosen: list[TrialRecord | None] = [None]

            def select(new: Sequence[TrialRecord]) -> TrialRecord | None:
                chosen[0] = select_best([*previous, *new])  # the best of all K, whichever run finished it
                return chosen[0]

            new_records: tuple[TrialRecord, ...] = ()
            if remaining > 0:
                run = run_trials(
                    plan,
                    trial_count=remaining,
                    rng=rng,
                    seed=seed,
                    ray_address=ray_address,
                    max_concurrent=max_concurrent,
                    disclosure=disclosure,
                    select=select,
                    on_trial_done=trial_done,
                    on_record=recorder.record,
                )
                best, nodes, new_records = run.best, run.nodes, run.records
            else:
                best = select([])
            kept = [best if best is not None and r is chosen[0] else replace(r, checkpoint_path=None) for r in previous]
            records = (*kept, *new_records)
        status = "completed" if any(r.status != "failed" for r in records) else "failed"
    except KeyboardInterrupt:
        status, records, best = "interrupted", (), None
    finally:
        ledger.set_status(search_id, status, at=_public_iso(disclosure, datetime.now(UTC)))
        # The ledger file (and its folder: sqlite's journal comes and goes) was just written.
        if isinstance(ledger.path, Path):  # a PostgreSQL ledger records the server's UTC day itself
            disclosure.settle(ledger.path, ledger.path.parent, tree=False)
        recorder.close()

    released, best_model = _release_model(config, best, output)
    if status != "interrupted":
        finish_state(output)  # K and every trial's model go; only an interrupted search keeps them
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
    report = replace(report, failure_reasons=failure_reasons(records, disclosure))
    write_report(output, report)
    disclosure.settle(output)
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
        reasons = "".join(f"; at least one trial failed: {reason}" for reason in report.failure_reasons)
        raise SearchError(
            f"every trial failed (or none was drawn); the charge of epsilon={charge.epsilon:.4g} stays{reasons}. "
            f"Report: {output / 'report.json'}"
        )
    return outcome


def _public_iso(disclosure: Disclosure, moment: datetime) -> str:
    return disclosure.public_time(moment).isoformat(timespec="seconds")


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
    exact = disclosure.shows_duration
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
            spent_before=spent[0],
            spent_after=spent[1],
        ),
        best=BestRelease.of(best, best_model, test_label=_test_label(plan.config)) if best is not None else None,
        config=plan.config.model_dump(mode="json"),
        trials=tuple(r.public_view() for r in disclosed) if disclosure.releases_all else None,
        ray_nodes=nodes if disclosure.releases_all else (),
    )


def _reopen_ledger(where: str, dataset: str) -> PrivacyLedger:
    """The ledger a search was charged to, from what its state recorded: a file, or a URL without its password.

    A PostgreSQL URL takes its password from ``$TUNEDP_LEDGER_URL`` when that
    names the same server, database and role, else from libpq
    (``PGPASSWORD``, ``~/.pgpass``).
    """
    import os

    from tunedp.ledger import LEDGER_URL_ENV, LedgerUrl, looks_like_url, open_ledger

    if not looks_like_url(where):
        return PrivacyLedger.open(Path(where), dataset=dataset)
    location = LedgerUrl.parse(where)
    from_env = os.environ.get(LEDGER_URL_ENV)
    if from_env and looks_like_url(from_env) and LedgerUrl.parse(from_env).shown == location.shown:
        location = LedgerUrl.parse(from_env)
    return open_ledger(location, dataset=dataset)  # type: ignore[return-value]  # the interface both backends share


def resume_search(
    output_dir: Path,
    *,
    ray_address: str | None = None,
    max_concurrent: int | None = None,
    observers: Sequence[SearchObserver] = (),
    progress: ProgressCallback | None = None,
) -> SearchOutcome:
    """Continue the interrupted search in ``output_dir``: same plan, same charge, same secret K.

    Completed (and failed) trials are kept; trials the interruption cut short
    are rerun from scratch. Nothing is charged (see :mod:`tunedp.run.resume` for
    why this keeps the guarantee).
    """
    from tunedp.config import GridSearch
    from tunedp.run.preflight import prepared_cluster
    from tunedp.run.resume import ResumeError, check_unlocked, read_state, verified_state

    output = Path(output_dir)
    unverified = read_state(output)  # names the ledger whose key authenticates it
    check_unlocked(output)
    # (A shared PostgreSQL ledger is opened for the state's dataset; its key then authenticates the state.)
    ledger = _reopen_ledger(
        unverified.ledger_path, SearchConfig.model_validate(unverified.config, strict=False).dataset_name
    )
    state = verified_state(output, ledger)  # refuses an edited state: nothing runs, nothing is charged
    config = SearchConfig.model_validate(state.config, strict=False)
    plan = plan_search(config)
    ledger = _reopen_ledger(state.ledger_path, config.dataset_name)
    charged_search(ledger, plan, state.search_id)  # refuses a plan that differs from what was charged
    if isinstance(config.search, GridSearch) and state.completed:
        # Tune's grid runs every point again: more trials than were charged. Refused, not approximated.
        raise ResumeError(
            f"--resume: grid searches cannot be resumed yet; abandon it with `tunedp search --abandon {output}`"
        )
    with prepared_cluster(plan, ray_address, max_concurrent=max_concurrent):
        return _charge_and_run(
            plan,
            ledger=ledger,
            ray_address=ray_address,
            max_concurrent=max_concurrent,
            seed=state.seed,
            output_dir=output,
            observers=[*observers, LineProgress(progress)],
            resume=state,
        )
