"""End-to-end searches that several tests assert on, each run once per xdist worker.

Every run here is a real search (digits, real Ray, real sqlite ledger). Where
two tests set up the same search and assert different things, they read one
run instead of paying for two (a search costs 10–30 s on two busy cores).
Runs are cached per process by what defines them (the config, or the command
line), so two tests share a run only when they ask for the same one; tests
that share must carry the same :func:`shared_run` mark, which puts them on one
xdist worker under ``--dist loadgroup`` (elsewhere they would each run it).
A run that raises is not cached: every test that needs it fails on its own.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pytest
import yaml
from rich.console import Console

import tunedp
import tunedp.run.driver as driver_module
from tunedp.accounting.search_event import SearchShape, draw_trial_count
from tunedp.config import SearchConfig
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import Charge, PrivacyLedger
from tunedp.observe.console import ConsoleProgress
from tunedp.observe.protocol import SearchObserver, SearchOutcome
from tunedp.planning import plan_search
from tunedp.planning.single_stage import SearchPlan
from tunedp.planning.staged import StagedPlan
from tunedp.release.records import TrialRecord
from tunedp.run.options import RunOptions

T = TypeVar("T")
_RUNS: dict[str, Any] = {}
TUNEDP = str(Path(sys.executable).with_name("tunedp"))


def shared_run(name: str) -> pytest.MarkDecorator:
    """The mark of every test that reads the shared run ``name``: one xdist worker runs them all."""
    return pytest.mark.xdist_group(f"run-{name}")


def once(key: str, run: Callable[[], T]) -> T:
    """``run()`` the first time ``key`` is asked for in this process; its result every time."""
    if key not in _RUNS:
        _RUNS[key] = run()
    return cast(T, _RUNS[key])


# ---------------------------------------------------------------------------- the search-mode contract's runs


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


def selection_shape(plan: SearchPlan) -> SearchShape:
    """The shape K is drawn from: the search's own, or a staged search's stage-1 search."""
    return plan.selection_shape if isinstance(plan, StagedPlan) else plan.shape


def seed_with_at_least(config: SearchConfig, low: int) -> int:
    """The first seed whose secret draw of K (the driver draws it first from the seed) is at least ``low``."""
    shape = selection_shape(plan_search(config))
    return next(s for s in range(1000) if draw_trial_count(shape, np.random.default_rng(s)) >= low)


def contract_run(config: SearchConfig, tmp_path_factory: pytest.TempPathFactory) -> ContractRun:
    """``config`` searched once per process with a seed that draws K ≥ 2, on a fresh ε = 100 ledger.

    The search goes through ``tunedp.search``, the package's entry point (the driver's function).
    """

    def run() -> ContractRun:
        folder = tmp_path_factory.mktemp("contract")
        seed = seed_with_at_least(config, 2)
        ledger_path = folder / "digits.sqlite"
        create_ledger(ledger_path, dataset="digits", epsilon=100.0, delta=1e-5)
        selected: list[list[TrialRecord]] = []
        original = driver_module.select_best
        recorder, text, printed, progress, logged = Recorder(), io.StringIO(), io.StringIO(), [], _Lines()
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
                patch.setattr(
                    driver_module, "select_best", lambda records: selected.append(list(records)) or original(records)
                )
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

    return once(f"contract:{config.model_dump_json()}", run)


# ---------------------------------------------------------------------------- other shared runs


@dataclass(frozen=True)
class ChargedRun:
    """A search charged and run past the pre-flight (which would refuse its config)."""

    outcome: Any
    ledger_path: Path
    output: Path


def charged_without_preflight(config: SearchConfig, tmp_path_factory: pytest.TempPathFactory) -> ChargedRun:
    """``config`` charged and run once per process with seed 1, skipping the pre-flight: a failure only a trial sees."""

    def run() -> ChargedRun:
        folder = tmp_path_factory.mktemp("charged")
        ledger_path = folder / "digits.sqlite"
        create_ledger(ledger_path, dataset="digits", epsilon=100.0, delta=1e-5)
        output = folder / "out"
        outcome = driver_module.charge_and_run(
            plan_search(config), ledger=PrivacyLedger.open(ledger_path), options=RunOptions(seed=1, output_dir=output)
        )
        return ChargedRun(outcome=outcome, ledger_path=ledger_path, output=output)

    return once(f"charged:{config.model_dump_json()}", run)


@dataclass(frozen=True)
class CliRun:
    """``tunedp search`` run to its end with its output piped (no terminal)."""

    done: subprocess.CompletedProcess[str]
    ledger_path: Path
    output: Path
    env: dict[str, str]


#: The command-line options of the ``release: best`` CLI search test_search and test_search_lifecycle share.
CLI_BEST_OPTIONS = ("--budget", "6", "--seed", "5")


def cli_search(
    config: SearchConfig, ray_address: str, tmp_path_factory: pytest.TempPathFactory, *options: str
) -> CliRun:
    """``tunedp search`` of ``config`` with ``options`` on a fresh ε = 100 ledger, once per process.

    Its environment turns MLflow off and sets a 0.5 s heartbeat, so a search
    that stays silent does so although a heartbeat line was due.
    """

    def run() -> CliRun:
        folder = tmp_path_factory.mktemp("cli")
        config_path = folder / "search.yaml"
        config_path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
        ledger_path = folder / "digits.sqlite"
        create_ledger(ledger_path, dataset="digits", epsilon=100.0, delta=1e-5)
        output = folder / "out"
        env = {**os.environ, "TUNEDP_TRACKING": "0", "TUNEDP_HEARTBEAT_S": "0.5"}
        done = subprocess.run(
            [TUNEDP, "search", "--config", str(config_path), "--ledger", str(ledger_path),
             "--ray-address", ray_address, *options, "--output", str(output)],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
        return CliRun(done=done, ledger_path=ledger_path, output=output, env=env)

    return once(f"cli:{config.model_dump_json()}:{options}", run)
