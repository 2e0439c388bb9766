"""A plan is priced at the δ its ledger accounts at, or refused before anything is charged.

σ is calibrated for the config's δ; the ledger records each charge at its own
δ. Before this check, ``plan --delta 5e-4`` printed "charged 3.00" and the
ledger (δ = 1e-5) then recorded 3.46 for the same search.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from search_helpers import example_dict, small_config

from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.planning import plan_search
from tunedp.run.driver import search
from tunedp.run.preflight import PreflightError

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


def test_the_ledger_would_record_more_than_a_plan_priced_at_a_larger_delta(tmp_path: Path) -> None:
    """The hole, measured: the same event costs more at the ledger's smaller δ than the plan said."""
    config = small_config(budget={"epsilon": 3.0, "delta": 5e-4})
    plan = plan_search(config)
    ledger = create_ledger(tmp_path / "digits.sqlite", dataset="digits", epsilon=50.0, delta=1e-5)
    _, after = ledger.admissible(plan.event)
    assert plan.search_epsilon <= 3.0 + 1e-9 < after


def test_a_search_at_another_delta_than_its_ledger_is_refused_and_charges_nothing(tmp_path: Path) -> None:
    ledger_path = tmp_path / "digits.sqlite"
    create_ledger(ledger_path, dataset="digits", epsilon=50.0, delta=1e-5)
    config = small_config(budget={"epsilon": 3.0, "delta": 5e-4})
    with pytest.raises(PreflightError, match=r"^budget\.delta: .*delta=0\.0005.*delta=1e-05; give --delta 1e-05$"):
        search(config, ledger_path=ledger_path, output_dir=tmp_path / "out")
    assert PrivacyLedger.open(ledger_path).charges() == []
    assert not (tmp_path / "out").exists()


def test_plan_and_search_refuse_a_delta_the_ledger_does_not_use_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    ledger_path = home / "digits.sqlite"
    create_ledger(ledger_path, dataset="digits", epsilon=50.0, delta=1e-5)
    data = example_dict()
    data["training"] = {"steps": 8, "expected_batch_size": 120, "evaluations": 1}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "TUNEDP_HOME": str(home)}
    before = ledger_path.read_bytes()
    for command in ("plan", "search"):
        done = subprocess.run(
            [TUNEDP, command, "--config", str(config), "--ledger", str(ledger_path), "--delta", "5e-4"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "budget.delta" in lines[0] and "give --delta 1e-05" in lines[0], done.stderr
    assert ledger_path.read_bytes() == before
    # At the ledger's δ the plan is admitted and its printed ε is what the ledger would record.
    done = subprocess.run(
        [TUNEDP, "plan", "--config", str(config), "--ledger", str(ledger_path), "--delta", "1e-5", "--no-preflight"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
