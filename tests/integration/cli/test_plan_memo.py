"""``tunedp plan`` with the calibration memo: the second plan of a config prints what the first printed.

Two fresh console-script processes share one empty memo folder: the first
calibrates from scratch (nothing is remembered yet) and the second from what
the first remembered. Both ``plan --json`` documents must be the same (σ,
every ε, the events, the RDP orders), and the memo must hold one entry per
calibration the staged plan made: σ₁ and σ₂, as the plan shows them. (That a
remembered σ is a cold calibration's σ for every kind of event, and that an
edited one is refused, is ``tests/unit/accounting/test_calibration_memo.py``.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from search_helpers import REPO

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


def _plan(config: Path, home: Path, memo: str) -> dict[str, object]:
    env = {**os.environ, "TUNEDP_HOME": str(home), "TUNEDP_CACHE_DIR": memo, "NO_COLOR": "1"}
    done = subprocess.run(
        [TUNEDP, "plan", "--config", str(config), "--json", "--no-preflight"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert isinstance(document, dict)
    return document


def test_a_plan_made_again_from_the_memo_is_the_same_document(tmp_path: Path) -> None:
    config = REPO / "search_spaces" / "digits_two_stage.yaml"
    memo = tmp_path / "memo"
    first = _plan(config, tmp_path / "home", str(memo))
    entries = sorted((memo / "calibration").iterdir())
    assert len(entries) == 2  # stage 1's σ₁ and the composition's σ₂
    again = _plan(config, tmp_path / "home", str(memo))
    assert first == again
    assert sorted((memo / "calibration").iterdir()) == entries  # nothing new was remembered
    remembered = set()
    for entry in entries:
        (value,) = json.loads(entry.read_text()).values()
        remembered.add(value)
    stage1, stage2 = first["stage1"], first["stage2"]
    assert isinstance(stage1, dict) and isinstance(stage2, dict)
    assert remembered == {stage1["noise_multiplier"], stage2["noise_multiplier"]}
