"""Every shipped config plans exactly as recorded (``scripts/record_plan_golden.py``): byte for byte.

A guard for changes that must not change what is charged (the stage
redesign moves every module the plan goes through): the whole ``plan
--json`` document — σ, every ε, the schedule, K's distribution, the RDP
orders — of each config in ``search_spaces/`` is compared with the file
recorded before the change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "plan"
#: A fixed, absent home: the document names the ledger path it would charge.
HOME = "/nonexistent/tunedp-golden-home"


def shipped_configs() -> list[Path]:
    return sorted((REPO / "search_spaces").glob("*.yaml"))


def _demo_table() -> None:
    """``adult_csv.yaml`` reads ``data/adult.csv``, which ``scripts/adult_csv.py`` writes (as its README says)."""
    import importlib.util

    target = REPO / "data" / "adult.csv"
    if target.is_file():
        return
    spec = importlib.util.spec_from_file_location("adult_csv", REPO / "scripts" / "adult_csv.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_adult_csv(target)


def plan_json(config: Path) -> str:
    """``tunedp plan --config CONFIG --json --no-preflight`` (no ledger exists: nothing machine-specific)."""
    from tunedp.cli import app

    _demo_table()
    done = CliRunner().invoke(
        app, ["plan", "--config", str(config), "--json", "--no-preflight"], env={"TUNEDP_HOME": HOME}
    )
    assert done.exit_code == 0, done.output
    return done.stdout


@pytest.mark.parametrize("config", shipped_configs(), ids=lambda path: path.stem)
def test_the_plan_of_a_shipped_config_is_the_recorded_one(config: Path) -> None:
    recorded = GOLDEN / f"{config.stem}.json"
    assert recorded.is_file(), f"no recorded plan for {config.name}: run scripts/record_plan_golden.py"
    assert plan_json(config) == recorded.read_text(encoding="utf-8")


def test_every_recorded_plan_has_its_config() -> None:
    assert {path.stem for path in GOLDEN.glob("*.json")} == {path.stem for path in shipped_configs()}
