"""Piped output keeps whole lines: a long path or command is not broken at rich's 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


def test_a_long_line_stays_one_line_when_piped(tmp_path: Path) -> None:
    home = tmp_path / ("a-long-folder-name-" * 4) / "home"
    env = {**os.environ, "TUNEDP_HOME": str(home)}
    env.pop("COLUMNS", None)
    done = subprocess.run(
        [TUNEDP, "budget", "init", "--dataset", "digits", "--epsilon", "8", "--delta", "1e-5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ledger = home / "ledgers" / "digits.sqlite"
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("created ledger")]
    assert line.endswith(f"at {ledger}") and len(line) > 100, done.stdout
