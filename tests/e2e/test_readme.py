"""The README's Python examples run as written (on the real digits data, a real Ray, a real ledger)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), flags=re.S)


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TUNEDP_HOME": str(tmp_path / "home")}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=500, check=False
    )


def test_the_readme_has_the_two_python_examples() -> None:
    assert len(BLOCKS) >= 2 and "tunedp.search(config)" in BLOCKS[0] and "make_private" in BLOCKS[1]


def test_private_optimizer_example_runs() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCKS[1]], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(r"epsilon so far: \d+\.\d+", done.stdout)


@pytest.mark.slow
def test_search_example_runs(tmp_path: Path) -> None:
    ledger = (
        "from tunedp.ledger.sqlite import default_ledger_path\n"
        "from tunedp.ledger.binding import create_ledger\n"
        "create_ledger(default_ledger_path('digits'), dataset='digits', epsilon=10.0, delta=1e-5)\n"
    )
    done = _run(ledger + BLOCKS[0], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 and "clip_norm" in lines[-1]
