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

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
import yaml

import tunedp.run.driver as driver_module
from tunedp.config import SearchConfig
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.observe.protocol import SearchOutcome
from tunedp.planning import plan_search
from tunedp.run.options import RunOptions
from tunedp.testing.modes import ContractRun, Recorder, contract_search

__all__ = [
    "CLI_BEST_OPTIONS",
    "ContractRun",
    "Recorder",
    "charge_past_preflight",
    "charged_without_preflight",
    "cli_search",
    "contract_run",
    "once",
    "shared_run",
]

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


def contract_run(config: SearchConfig, tmp_path_factory: pytest.TempPathFactory) -> ContractRun:
    """``config`` searched once per process as the search-mode contract searches it (:func:`contract_search`).

    A seed that draws K ≥ 2, a fresh ε = 100 ledger, through ``tunedp.search``
    (the package's entry point), every channel out of it recorded.
    """
    return once(
        f"contract:{config.model_dump_json()}", lambda: contract_search(config, tmp_path_factory.mktemp("contract"))
    )


# ---------------------------------------------------------------------------- other shared runs


@dataclass(frozen=True)
class ChargedRun:
    """A search charged and run past the pre-flight (which would refuse its config)."""

    outcome: Any
    ledger_path: Path
    output: Path


def charge_past_preflight(config: SearchConfig, ledger_path: Path, output: Path) -> SearchOutcome:
    """Charge ``config`` to the ledger at ``ledger_path`` and run it with seed 1, skipping the pre-flight.

    For configs the pre-flight would refuse (momentum 1.5): a failure only a trial sees.
    """
    return driver_module.charge_and_run(
        plan_search(config), ledger=PrivacyLedger.open(ledger_path), options=RunOptions(seed=1, output_dir=output)
    )


def charged_without_preflight(config: SearchConfig, tmp_path_factory: pytest.TempPathFactory) -> ChargedRun:
    """``config`` charged and run once per process with seed 1, skipping the pre-flight: a failure only a trial sees."""

    def run() -> ChargedRun:
        folder = tmp_path_factory.mktemp("charged")
        ledger_path = folder / "digits.sqlite"
        create_ledger(ledger_path, dataset="digits", epsilon=100.0, delta=1e-5)
        output = folder / "out"
        outcome = charge_past_preflight(config, ledger_path, output)
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
