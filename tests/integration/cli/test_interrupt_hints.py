"""What ``tunedp search`` says when interrupted is true, and its command works when pasted.

Before: Ctrl-C before the charge said "the charge stays on the ledger
(continue with `tunedp search --resume OUTPUT`)" — there was no charge and no
folder — and after a real charge it printed the literal word OUTPUT.
"""

from __future__ import annotations

import os
from pathlib import Path

from search_helpers import random_best

from tunedp.cli.search import _ChargeWitness
from tunedp.ledger.binding import create_ledger
from tunedp.planning import plan_search
from tunedp.run.resume import state_dir


def _charged_witness(tmp_path: Path) -> _ChargeWitness:
    plan = plan_search(random_best())
    ledger = create_ledger(tmp_path / "digits.sqlite", dataset="digits", epsilon=50.0, delta=1e-5)
    charge = ledger.charge(plan.event, config_hash="c", mode="random/best", label="hint", search_id="ab" * 16)
    witness = _ChargeWitness()
    witness.on_charged(plan, charge, ledger)
    return witness


def test_an_interruption_before_the_charge_says_nothing_was_charged() -> None:
    line = _ChargeWitness().interrupted_line(Path("out"))
    assert line == "interrupted before the charge: nothing was charged and nothing ran"


def test_an_interruption_after_the_charge_but_before_the_state_says_there_is_nothing_to_resume(
    tmp_path: Path,
) -> None:
    line = _charged_witness(tmp_path).interrupted_line(tmp_path / "out")
    assert "the charge stays" in line and "nothing to resume" in line and "--resume" not in line


def test_a_resumable_interruption_names_the_real_folder_in_both_commands(tmp_path: Path) -> None:
    witness = _charged_witness(tmp_path)
    out = tmp_path / "out"
    state_dir(out).mkdir(parents=True)
    line = witness.interrupted_line(out)
    assert f"`tunedp search --resume {out}`" in line and f"`tunedp search --abandon {out}`" in line
    assert "OUTPUT" not in line


def test_without_output_the_hint_names_the_default_folder_of_the_charged_search(tmp_path: Path) -> None:
    witness = _charged_witness(tmp_path)
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        state_dir(Path("runs") / ("ab" * 16)).mkdir(parents=True)
        line = witness.interrupted_line(None)
    finally:
        os.chdir(previous)
    assert f"`tunedp search --resume {Path('runs') / ('ab' * 16)}`" in line
