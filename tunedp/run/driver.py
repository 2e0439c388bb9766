"""The search driver: plan → pre-flight → charge → run → release, one function per step.

The order is the privacy contract: the search is planned (σ calibrated so
the *whole search* fits its budget), checked without reading a row, and
charged to the dataset's ledger before any trial reads data. A search the
ledger cannot admit never starts. Once charged, the charge stays — whatever
happens to the trials (failure, Ctrl-C, a killed driver).

Each step is a function a reader can follow:

1. plan — :func:`tunedp.planning.plan_search` (the search's mode prices it);
2. pre-flight — :func:`preflight_search` (:mod:`tunedp.run.preflight`), then Ray is
   connected (:func:`tunedp.run.ray_backend.cluster.ray_cluster`, the only Ray
   importer with the modes' Tune hooks, loaded only now);
3. charge — :func:`tunedp.run.charge.charge_search`;
4. run — the search mode's trials (:meth:`tunedp.modes.SearchMode.run`), K drawn
   here and kept in the driver and its authenticated resume state;
5. release — :func:`tunedp.run.release_step.release_search`: what the mode's
   disclosure rule lets out (:mod:`tunedp.release.disclosure`).

:func:`charge_and_run` is steps 3–5 (the seam below the pre-flight). Who hears
about the search (console, MLflow) is the caller's choice of observers,
carried with the other options in one :class:`~tunedp.run.options.RunOptions`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from dp_accounting import dp_event

from tunedp.accounting.search_event import draw_trial_count
from tunedp.config import SearchConfig
from tunedp.ledger import LedgerUrl
from tunedp.ledger.binding import open_search_ledger, verify_search_data
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.modes import SearchMode, search_mode
from tunedp.observe.lines import ProgressCallback
from tunedp.observe.protocol import SearchObserver, SearchOutcome, notify
from tunedp.planning import plan_search
from tunedp.planning.single_stage import SearchPlan
from tunedp.release.disclosure import Disclosure
from tunedp.release.records import TrialRecord
from tunedp.release.selection import select_best
from tunedp.run.charge import ChargedSearch, charge_search
from tunedp.run.mode_run import RunContext, TrialsRun
from tunedp.run.options import RunOptions
from tunedp.run.release_step import release_search
from tunedp.run.resume import ResumeState, StateRecorder, charged_search

__all__ = [
    "RunOptions",
    "SearchError",
    "charge_and_run",
    "open_checked_ledger",
    "preflight_search",
    "resume_search",
    "run_search",
    "search",
]


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
    rule (e.g. ``tunedp.observe.MlflowTracker``, ``tunedp.observe.console.ConsoleProgress``).
    ``progress`` receives one plain line per event (charge, trial or heartbeat,
    finish) within the same rule; the lines also go to the ``tunedp.progress``
    logger. ``force`` lets ``output_dir`` be a non-empty folder. ``register``
    registers the released model as a new version of that name in the MLflow
    Model Registry (through the first ``MlflowTracker`` in ``observers``, or
    one on the default store); an unreachable registry is refused before the charge.
    """
    plan = plan_search(config)
    # The ledger of the data the workload reads (no aliases); its data is verified before the charge.
    ledger = open_search_ledger(config.workload, config.dataset, ledger_path)
    if register is not None:
        from tunedp.observe.mlflow_tracker import registering  # MLflow loads only for a search that registers

        observers = registering(observers, register)  # checks the registry: nothing charged yet
    options = RunOptions(
        ray_address=ray_address,
        max_concurrent=max_concurrent,
        seed=seed,
        output_dir=output_dir,
        observers=observers,
        force=force,
        progress=progress,
    )
    return _checked_charged_run(plan, ledger, options)


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
    """Pre-flight, charge ``plan`` to ``ledger`` and run it on Ray Tune (:func:`search` once planned).

    Every check that does not depend on the private data runs before the
    charge (:mod:`tunedp.run.preflight`): a mistake there costs nothing. Ray is
    connected before the charge too, and that connection runs the trials.
    """
    options = RunOptions(
        ray_address=ray_address,
        max_concurrent=max_concurrent,
        seed=seed,
        output_dir=output_dir,
        observers=observers,
        force=force,
        progress=progress,
    )
    return _checked_charged_run(plan, ledger, options)


def _checked_charged_run(plan: SearchPlan, ledger: PrivacyLedger, options: RunOptions) -> SearchOutcome:
    """Steps 2–5: the pre-flight, Ray for the search's lifetime, then the charge, the trials and the release."""
    preflight_search(plan, ledger, options)
    from tunedp.run.ray_backend.cluster import ray_cluster  # Ray loads once the pre-flight passed

    with ray_cluster(options.ray_address, resources=plan.config.resources):
        return charge_and_run(plan, ledger=ledger, options=options)


def preflight_search(plan: SearchPlan, ledger: PrivacyLedger, options: RunOptions) -> None:
    """Every check of a search that reads no private row; each failure is one line and nothing is charged.

    In order: the ledger admits the search (first: a refused budget starts
    neither torch nor Ray), the pre-flight (:func:`~tunedp.run.preflight.run_preflight`:
    output folder, data files, model and optimizer on synthetic data), and
    something answers at ``--ray-address``.
    """
    from tunedp.run.preflight import check_admissible, check_ray_address, run_preflight

    check_admissible(plan, ledger)
    run_preflight(plan, max_concurrent=options.max_concurrent, output=options.output_dir, force=options.force)
    check_ray_address(options.ray_address)


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


def charge_and_run(
    plan: SearchPlan,
    *,
    ledger: PrivacyLedger,
    options: RunOptions = RunOptions(),  # noqa: B008  (frozen: one shared default is safe)
    resume: ResumeState | None = None,
) -> SearchOutcome:
    """Steps 3–5 — charge ``plan`` to ``ledger``, run its trials, release — with no pre-flight.

    :func:`run_search` and :func:`resume_search` call it once the pre-flight
    passed (``resume``: continue a charged search, never charged again);
    tests call it to reach failures only a trial can show, which the
    pre-flight would refuse. Ray is the caller's (connected by them, or
    started for the trials and stopped after). Raises ``KeyboardInterrupt``
    for an interrupted search and :class:`SearchError` when no trial could
    be released; the charge stays either way.
    """
    mode = search_mode(plan.config)
    disclosure = mode.disclosure(plan)
    observers = options.listeners()
    search_id = uuid.uuid4().hex if resume is None else resume.search_id
    charged = charge_search(plan, ledger, search_id=search_id, options=options, disclosure=disclosure, resume=resume)
    notify(observers, "on_charged", plan, charged.charge, ledger)

    output = options.output_dir if options.output_dir is not None else Path("runs") / search_id
    output.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    run, status = _run_trials(
        mode, plan, charged=charged, ledger=ledger, output=output, options=options, disclosure=disclosure,
        observers=observers, resume=resume,
    )  # fmt: skip
    outcome = release_search(
        plan,
        charged=charged,
        ledger=ledger,
        run=run,
        status=status,
        output=output,
        disclosure=disclosure,
        started=started,
        observers=observers,
    )
    if status == "interrupted":
        raise KeyboardInterrupt
    if outcome.best is None:
        reasons = "".join(f"; at least one trial failed: {reason}" for reason in outcome.report.failure_reasons)
        raise SearchError(
            f"every trial failed (or none was drawn); the charge of epsilon={charged.charge.epsilon:.4g} stays"
            f"{reasons}. Report: {output / 'report.json'}"
        )
    return outcome


def _run_trials(
    mode: SearchMode[Any],
    plan: SearchPlan,
    *,
    charged: ChargedSearch,
    ledger: PrivacyLedger,
    output: Path,
    options: RunOptions,
    disclosure: Disclosure,
    observers: Sequence[SearchObserver],
    resume: ResumeState | None,
) -> tuple[TrialsRun, str]:
    """Step 4: draw the secret K (once: a resume keeps it), run the mode's trials, record the search's status."""
    rng = np.random.default_rng(options.seed if options.seed is not None else secrets.randbits(128))
    state = resume
    if state is None:
        # K stays inside the driver: in memory, and in the mode-0600 resume state.
        state = ResumeState(
            search_id=charged.search_id,
            config=plan.config.model_dump(mode="json"),
            ledger_path=str(ledger.path),
            # A staged search's secret K is its stage 1's, drawn here once: a resume never draws it again.
            trial_count=draw_trial_count(plan.selection_shape, rng),
            seed=options.seed,
            spent_before=charged.spent_before,
        )
    # Takes the search's lock first: a second driver on the same search is refused
    # here, before it could touch the ledger's status or run a trial.
    recorder = StateRecorder(output, state, ledger)  # authenticated under the ledger's key

    def trial_done(record: TrialRecord, done: int, planned: int) -> None:
        notify(observers, "on_trial_done", record, done, planned)

    context = RunContext(
        rng=rng,
        seed=options.seed,
        ray_address=options.ray_address,
        max_concurrent=options.max_concurrent,
        disclosure=disclosure,
        select=select_best,
        recorder=recorder,
        on_trial_done=trial_done,
    )
    run = TrialsRun(records=(), best=None, nodes=())
    status = "failed"
    try:
        ledger.set_status(charged.search_id, "running", at=_public_iso(disclosure, datetime.now(UTC)))
        run = mode.run(plan, context)
        status = "completed" if any(r.status != "failed" for r in run.records) else "failed"
    except KeyboardInterrupt:
        status, run = "interrupted", TrialsRun(records=(), best=None, nodes=())
    finally:
        ledger.set_status(charged.search_id, status, at=_public_iso(disclosure, datetime.now(UTC)))
        # The ledger file (and its folder: sqlite's journal comes and goes) was just written.
        if isinstance(ledger.path, Path):  # a PostgreSQL ledger records the server's UTC day itself
            disclosure.settle(ledger.path, ledger.path.parent, tree=False)
        recorder.close()
    return run, status


def _public_iso(disclosure: Disclosure, moment: datetime) -> str:
    return disclosure.public_time(moment).isoformat(timespec="seconds")


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
    from tunedp.run.preflight import check_ray_address, run_preflight
    from tunedp.run.resume import check_unlocked, read_state, verified_state

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
    search_mode(config).check_resumable(state, output)
    options = RunOptions(
        ray_address=ray_address,
        max_concurrent=max_concurrent,
        seed=state.seed,
        output_dir=output,
        observers=observers,
        progress=progress,
    )
    run_preflight(plan, max_concurrent=max_concurrent)  # the output folder is the search's own: not checked
    check_ray_address(ray_address)
    from tunedp.run.ray_backend.cluster import ray_cluster  # Ray loads once the pre-flight passed

    with ray_cluster(ray_address, resources=plan.config.resources):
        return charge_and_run(plan, ledger=ledger, options=options, resume=state)
