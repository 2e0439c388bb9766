"""Every shipped config plans exactly as recorded (``scripts/record_plan_golden.py``): byte for byte.

A guard for changes that must not change what is charged (the stage
redesign moves every module the plan goes through): the whole ``plan
--json`` document — σ, every ε, the schedule, K's distribution, the RDP
orders — of each config in ``search_spaces/`` is compared with the file
recorded before the change.

One exception, measured: the PLD second opinions (``pld_*_epsilon``) come from
dp_accounting's FFT convolutions, whose last digits differ between CPUs (the
same code and wheels gave relative differences up to 5.2e-10 on two machines).
They are compared to a relative 1e-8, and only where the document carries them;
every other byte, the charged ε included (RDP, closed form), is compared exactly.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[3]
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
    now, then = plan_json(config), recorded.read_text(encoding="utf-8")
    assert _without_pld(now) == _without_pld(then)
    for (key, a), (_, b) in zip(_pld_figures(json.loads(now)), _pld_figures(json.loads(then)), strict=True):
        assert (a is None and b is None) or math.isclose(a, b, rel_tol=1e-8), (key, a, b)


_PLD_LINE = re.compile(r'^(\s*"pld_\w+_epsilon": )[-0-9.e+]+(,?)$', re.MULTILINE)


def _without_pld(document: str) -> str:
    """The document with every PLD figure's digits masked (their presence and place still compared)."""
    return _PLD_LINE.sub(r"\1<pld>\2", document)


def _pld_figures(document: Any, path: str = "") -> list[tuple[str, float | None]]:
    """Every ``pld_*_epsilon`` of the document (nested stages included), in order."""
    found: list[tuple[str, float | None]] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key.startswith("pld_") and key.endswith("_epsilon"):
                found.append((path + key, value))
            else:
                found.extend(_pld_figures(value, f"{path}{key}."))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(_pld_figures(value, f"{path}{index}."))
    return found


def test_the_pld_mask_hides_only_pld_digits() -> None:
    document = '{\n  "pld_trial_epsilon": 0.12345,\n  "trial_epsilon": 0.5,\n  "pld_search_epsilon": null\n}'
    assert _without_pld(document) == (
        '{\n  "pld_trial_epsilon": <pld>,\n  "trial_epsilon": 0.5,\n  "pld_search_epsilon": null\n}'
    )


def test_every_recorded_plan_has_its_config() -> None:
    assert {path.stem for path in GOLDEN.glob("*.json")} == {path.stem for path in shipped_configs()}
