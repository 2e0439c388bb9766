"""`tunedp init --workload W` writes a starter config that parses and prices (every shipped starter)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunedp.cli import app
from tunedp.cli.starters import STARTERS
from tunedp.config import load_config
from tunedp.planning import plan_search


@pytest.mark.parametrize("workload", [name for name in STARTERS if name != "csv"])  # csv needs the user's table
def test_each_starter_is_written_and_plans_within_its_budget(
    workload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(app, ["init", "--workload", workload])
    assert done.exit_code == 0, done.output
    config = load_config(tmp_path / f"{workload}.yaml")
    plan = plan_search(config)
    assert 0 < plan.search_epsilon <= config.budget.epsilon
    again = CliRunner().invoke(app, ["init", "--workload", workload])
    assert again.exit_code != 0 and "already exists" in str(again.exception)  # and nothing overwritten
