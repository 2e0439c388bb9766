"""The search-mode contract: subclass :class:`SearchModeContract` for every mode; each must pass all of it.

A mode (:class:`tunedp.modes.SearchMode`) decides what a search is charged and
what it releases, so the contract checks both against each other and
against a real search::

    # tests/e2e/test_search_modes.py
    from tunedp.testing import SearchModeContract

    class TestMyMode(SearchModeContract):
        config = my_small_digits_search()   # a SearchConfig of that mode

It checks that the mode is registered under its ``search.mode`` literal;
that planning reads no data and is deterministic; that the plan fits its
budget and its ε is dp_accounting's RDP ε of the plan's event, recomputed
from the event as the ledger stores it; that the mode's Tune configuration
runs exactly the trials the charge assumed; that its disclosure rule hides
K and every other trial wherever the charge assumed K unseen (``release:
best``, ``hypo``, the staged modes); and, on a tiny real search (the
config's workload, a real Ray, a real sqlite ledger), that the ledger is
charged exactly the plan's event, K trials run, and every observer hears
only what the rule allows. The real search runs once per class
(:meth:`SearchModeContract.run_search`; override it to share the run with
other tests). It uses the ``ray_session`` fixture where the suite has one;
otherwise the search starts (and stops) a local Ray itself.

Imports pytest; neither Ray nor torch until a test runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from tunedp.accounting.epsilon import RDP_ORDERS
from tunedp.accounting.search_event import draw_trial_count
from tunedp.accounting.serialization import event_from_json, event_to_json
from tunedp.config import SearchConfig
from tunedp.ledger.sqlite import Charge, PrivacyLedger
from tunedp.observe.protocol import SearchObserver, SearchOutcome
from tunedp.planning.single_stage import SearchPlan
from tunedp.release.records import TrialRecord

__all__ = ["ContractRun", "Recorder", "SearchModeContract", "contract_search", "seed_with_at_least"]


@dataclass
class Recorder(SearchObserver):
    """Keeps every call it receives, in order."""

    calls: list[tuple[str, Any]] = field(default_factory=list)

    def on_charged(self, plan: SearchPlan, charge: Charge, ledger: PrivacyLedger) -> None:
        self.calls.append(("charged", charge))

    def on_trial_done(self, record: TrialRecord, done: int, planned: int) -> None:
        self.calls.append(("trial", (record, done, planned)))

    def on_finished(self, outcome: SearchOutcome) -> None:
        self.calls.append(("finished", outcome))


class _Lines(logging.Handler):
    """The messages logged to exactly the ``tunedp.progress`` logger (not its children)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "tunedp.progress":
            self.messages.append(record.getMessage())


@dataclass(frozen=True)
class ContractRun:
    """One search through the Python API with every channel out of it recorded."""

    config: SearchConfig
    plan: SearchPlan
    seed: int
    ledger_path: Path
    outcome: SearchOutcome
    #: Every list of trial records the driver selected from (a spy on ``select_best``).
    selected: list[list[TrialRecord]]
    recorder: Recorder
    #: What a ConsoleProgress observer printed.
    console: str
    #: Everything else written to sys.stdout and sys.stderr during the search (by Ray, Tune, a logger).
    printed: str
    #: The lines given to ``progress=``, and what the ``tunedp.progress`` logger logged meanwhile.
    progress: list[str]
    logged: list[str]


def seed_with_at_least(config: SearchConfig, low: int) -> int:
    """The first seed whose secret draw of K (the driver draws it first from the seed) is at least ``low``."""
    from tunedp.planning import plan_search

    shape = plan_search(config).selection_shape
    return next(s for s in range(1000) if draw_trial_count(shape, np.random.default_rng(s)) >= low)


def contract_search(config: SearchConfig, folder: Path, *, min_trials: int = 2) -> ContractRun:
    """``config`` searched through ``tunedp.search`` with a seed that draws K ≥ ``min_trials``, on a fresh ledger.

    The ledger (ε = 100, δ = 1e-5) and the output live in ``folder``; a
    ConsoleProgress, a :class:`Recorder`, the ``progress`` callback, the
    ``tunedp.progress`` logger, stdout and stderr are all recorded, and the
    driver's selection is spied on (inside the driver: K and every trial).
    """
    from rich.console import Console

    import tunedp
    import tunedp.run.driver as driver_module
    from tunedp.ledger.binding import create_ledger
    from tunedp.observe.console import ConsoleProgress
    from tunedp.planning import plan_search

    seed = seed_with_at_least(config, min_trials)
    ledger_path = folder / f"{config.dataset_name}.sqlite"
    create_ledger(ledger_path, dataset=config.dataset_name, epsilon=100.0, delta=1e-5)
    from tunedp.release.selection import select_best

    selected: list[list[TrialRecord]] = []
    progress: list[str] = []
    recorder, text, printed, logged = Recorder(), io.StringIO(), io.StringIO(), _Lines()
    console = ConsoleProgress(Console(file=text, width=200, force_terminal=False))
    logger = logging.getLogger("tunedp.progress")
    level = logger.level
    logger.addHandler(logged)
    logger.setLevel(logging.INFO)
    try:
        with (
            pytest.MonkeyPatch.context() as patch,
            contextlib.redirect_stdout(printed),
            contextlib.redirect_stderr(printed),
        ):

            def spy(records: Sequence[TrialRecord]) -> TrialRecord | None:
                selected.append(list(records))  # inside the driver: every trial of the search
                return select_best(records)

            patch.setattr(driver_module, "select_best", spy)
            outcome = tunedp.search(
                config,
                ledger_path=ledger_path,
                seed=seed,
                output_dir=folder / "out",
                observers=[recorder, console],
                progress=progress.append,
            )
    finally:
        logger.removeHandler(logged)
        logger.setLevel(level)
    return ContractRun(
        config=config,
        plan=plan_search(config),
        seed=seed,
        ledger_path=ledger_path,
        outcome=outcome,
        selected=selected,
        recorder=recorder,
        console=text.getvalue(),
        printed=printed.getvalue(),
        progress=progress,
        logged=logged.messages,
    )


class SearchModeContract:
    """What every search mode must do. Set ``config``: a small search of the mode (see the module docstring)."""

    config: ClassVar[SearchConfig]

    @classmethod
    def run_search(cls, tmp_path_factory: pytest.TempPathFactory) -> ContractRun:
        """The tiny real search the contract reads; override to share one run with other tests."""
        return contract_search(cls.config, tmp_path_factory.mktemp("contract"))

    @pytest.fixture(scope="class")
    @classmethod
    def plan(cls) -> SearchPlan:
        from tunedp.planning import plan_search

        return plan_search(cls.config)

    @pytest.fixture(scope="class")
    @classmethod
    def search_run(cls, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ContractRun:
        with contextlib.suppress(pytest.FixtureLookupError):
            request.getfixturevalue("ray_session")  # the suite's Ray, where it has one
        return cls.run_search(tmp_path_factory)

    # ------------------------------------------------------------------ the mode, its plan

    def test_the_mode_is_registered_under_its_literal(self, plan: SearchPlan) -> None:
        from tunedp.modes import registered_modes, search_mode

        literal = self.config.search.mode
        mode = search_mode(self.config)
        assert mode.name == literal and registered_modes()[literal] is mode
        assert isinstance(self.config.search, mode.settings_type)
        assert plan.shape.mode == literal
        assert mode.staged == bool(plan.earlier_stages)

    def test_planning_reads_no_data_and_is_deterministic(self, plan: SearchPlan) -> None:
        """Every workload the plan names has its loader replaced by one that fails; planning twice agrees."""
        from tunedp.modes import search_mode

        with _loaders_refused([plan.config.workload, *(stage.config.workload for stage in plan.earlier_stages)]):
            first, second = search_mode(self.config).plan(self.config), search_mode(self.config).plan(self.config)
        assert first.to_json() == second.to_json() == plan.to_json()
        assert event_to_json(first.event) == event_to_json(second.event) == event_to_json(plan.event)

    def test_the_plan_fits_its_budget_and_its_epsilon_is_the_events(self, plan: SearchPlan) -> None:
        """The ε the plan shows is dp_accounting's RDP ε of the event the ledger stores, within the budget."""
        from dp_accounting.rdp import rdp_privacy_accountant

        from tunedp.accounting.hypo import HypoRdpAccountant

        stored = event_from_json(json.loads(json.dumps(event_to_json(plan.event))))  # as the ledger keeps it
        accountant = rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
        if not accountant.supports(stored):  # a DP-HyPO search (alone or as a stage 1): Theorem 1 on top of it
            accountant = HypoRdpAccountant(list(RDP_ORDERS))
        epsilon = float(accountant.compose(stored).get_epsilon(plan.delta))
        assert epsilon == pytest.approx(plan.search_epsilon, rel=1e-9)
        assert plan.search_epsilon <= self.config.budget.epsilon * (1 + 1e-9)
        assert plan.to_json()["search_epsilon"] == plan.search_epsilon

    def test_the_tune_configuration_runs_the_trials_the_charge_assumed(self, plan: SearchPlan) -> None:
        """num_samples × the grid's size is the K the driver draws (or the grid's size, or one final run)."""
        from tunedp.modes import SingleStageMode, search_mode

        trial_count = draw_trial_count(plan.selection_shape, np.random.default_rng(0))
        if search_mode(self.config).staged:
            stage1 = plan.earlier_stages[0]
            runs = [(stage1, trial_count), (_a_final_plan(plan, stage1.config), 1)]
        else:
            runs = [(plan, trial_count)]
        for single, count in runs:
            mode = search_mode(single.config)
            assert isinstance(mode, SingleStageMode)
            space = mode.param_space(single.config)
            tune_config = mode.tune_config(single, count, 1, 0)
            grid = math.prod(
                len(v["grid_search"]) for v in space.values() if isinstance(v, dict) and "grid_search" in v
            )
            assert tune_config.num_samples * grid == count, single.shape
            if single.shape.max_trials is not None:
                assert count <= single.shape.max_trials

    def test_the_disclosure_rule_hides_k_wherever_the_charge_assumed_it_unseen(self, plan: SearchPlan) -> None:
        from tunedp.modes import search_mode
        from tunedp.release.disclosure import disclosure_for

        rule = search_mode(self.config).disclosure(plan)
        assert rule == disclosure_for(plan.shape.mode, plan.shape.release)  # what every observer asks
        records = [
            TrialRecord(point={"lr": float(i)}, hyperparameters={}, status="completed", released_scores=(0.1 * i,))
            for i in range(3)
        ]
        hidden = plan.shape.release == "best"  # random/best, hypo, two_stage, public_proxy
        assert rule.releases_all is not hidden
        if hidden:
            assert not rule.shows_trial_count and not rule.shows_duration
            assert rule.trials(records, records[1]) == [records[1]]
            assert rule.public_time().time().isoformat() == "00:00:00"
        else:
            assert rule.trials(records, records[1]) == records

    # ------------------------------------------------------------------ a tiny real search

    def test_a_real_search_is_charged_exactly_the_plans_event(self, search_run: ContractRun) -> None:
        (charge,) = PrivacyLedger.open(search_run.ledger_path).charges()
        assert event_to_json(charge.event) == event_to_json(search_run.plan.event)
        assert charge.epsilon == pytest.approx(search_run.plan.search_epsilon, rel=1e-12)

    def test_a_real_search_runs_the_k_its_charge_assumed(self, search_run: ContractRun) -> None:
        records = search_run.selected[-1]  # every trial of the search (a staged search: of stage 1)
        shape = search_run.plan.selection_shape
        assert len(records) == draw_trial_count(shape, np.random.default_rng(search_run.seed))
        if shape.max_trials is not None:
            assert len(records) <= shape.max_trials

    def test_observers_hear_only_what_the_disclosure_rule_allows(self, search_run: ContractRun) -> None:
        from tunedp.modes import search_mode

        outcome, records = search_run.outcome, search_run.selected[-1]
        rule = search_mode(self.config).disclosure(search_run.plan)
        kinds = [kind for kind, _ in search_run.recorder.calls]
        assert kinds[0] == "charged" and kinds[-1] == "finished"
        trial_calls = [payload for kind, payload in search_run.recorder.calls if kind == "trial"]
        assert outcome.best is not None
        if rule.releases_all:
            assert [done for _, done, _ in trial_calls] == list(range(1, len(records) + 1))
            assert {planned for _, _, planned in trial_calls} == {len(records)}
            assert len(outcome.disclosed_trials) == len(records)
            assert outcome.report.trials is not None and len(outcome.report.trials) == len(records)
            return
        assert trial_calls == []
        assert outcome.disclosed_trials == (outcome.best,)
        assert outcome.report.trials is None and "trial_count" not in outcome.report.to_json()
        for record in records:
            if record.point != outcome.best.point:
                shown = f"{record.final_score:.4f}"
                assert shown not in search_run.console or record.final_score == outcome.best.final_score

    def test_a_staged_search_releases_its_final_run_only(self, search_run: ContractRun) -> None:
        """Nothing of stage 1 leaves; the final run trained at the selected point, transferred by the plan's factor."""
        from tunedp.accounting.staged_event import transfer_point
        from tunedp.modes import search_mode
        from tunedp.release.selection import select_best

        plan = search_run.plan
        if not search_mode(self.config).staged:
            pytest.skip("a single-stage mode")
        outcome, stage1 = search_run.outcome, search_run.selected[-1]
        assert outcome.best is not None
        if plan.to_json()["stage2"]["score_releases"] == 0:  # final_score: none
            assert outcome.best.released_scores == ()
            assert outcome.report.to_json()["best"]["final_score"] is None
        written = "\n".join(p.read_text(errors="replace") for p in outcome.output_dir.rglob("*") if p.suffix != ".pt")
        assert "trial_count" not in outcome.report.to_json()
        assert sorted(p.name for p in outcome.output_dir.iterdir()) == ["best_model.pt", "report.json", "report.txt"]
        for record in stage1:
            for value in [*record.point.values(), *record.released_scores]:
                if value in outcome.best.point.values():  # a fixed coordinate (momentum) the final run shares
                    continue
                # Full precision in the files (4-digit forms could occur inside other figures by chance).
                assert repr(value) not in written and json.dumps(value) not in written, record
                assert f"{value:.4f}" not in search_run.console, record
        chosen = select_best(stage1)
        factor = plan.to_json()["transfer"]["factor"]
        assert chosen is not None and factor != 1.0
        assert outcome.best.point == pytest.approx(transfer_point(chosen.point, factor), rel=1e-12)
        # The charged run sampled from the rows it trained on (and stage 1 never from validation).
        on_validation = plan.config.training.train_on_validation
        assert plan.trial.dataset_size == plan.sizes.train + (plan.sizes.validation if on_validation else 0)
        assert not plan.earlier_stages[0].config.training.train_on_validation


@contextlib.contextmanager
def _loaders_refused(references: list[Any]) -> Iterator[None]:
    """Every named workload's loader raises while inside: planning must never need it."""
    from tunedp.workloads.registry import resolve_workload

    def refuse() -> Any:
        raise AssertionError("planning read the data (called a workload's loader)")

    workloads = {id(w): w for w in (resolve_workload(reference) for reference in references)}
    saved = {key: workload.loader for key, workload in workloads.items()}
    try:
        for workload in workloads.values():
            object.__setattr__(workload, "loader", refuse)
        yield
    finally:
        for key, workload in workloads.items():
            object.__setattr__(workload, "loader", saved[key])


def _a_final_plan(plan: SearchPlan, stage1: SearchConfig) -> SearchPlan:
    """A staged plan's final run at a point of stage 1's space (the first corner, the first variant)."""
    from tunedp.run.preflight import hyperparameter_corners

    point = hyperparameter_corners(stage1)[0]
    variant = stage1.space.model.values[0] if stage1.space.model is not None else None
    return plan.final_plan(point, variant)  # type: ignore[attr-defined, no-any-return]  # a staged plan
