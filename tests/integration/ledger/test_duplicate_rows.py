"""The same rows under a new dataset name do not get a second budget (``budget init`` refuses them).

Before: declaring the protected rows under another dataset name and running
``budget init --config`` created a fresh ledger for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from search_helpers import digits_table_search

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


def test_budget_init_refuses_rows_another_ledger_of_the_home_protects(tmp_path: Path) -> None:
    data = digits_table_search(tmp_path)
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(yaml.safe_dump(data))
    data["workload"]["dataset"] = "digits_table_copy"
    second.write_text(yaml.safe_dump(data))
    home = tmp_path / "home"
    env = {**os.environ, "TUNEDP_HOME": str(home)}

    def init(config: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [TUNEDP, "budget", "init", "--config", str(config), "--epsilon", "8", "--delta", "1e-5"],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip

    made = init(first)
    assert made.returncode == 0, made.stdout + made.stderr
    refused = init(second)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "already protected by ledger 'digits_table'" in line and "Declare dataset: digits_table" in line, line
    assert sorted(p.name for p in (home / "ledgers").glob("*.sqlite")) == ["digits_table.sqlite"]

    # Other rows under the new name are a new dataset, and get their own ledger.
    data["workload"]["split"]["seed"] = 4  # the same file split otherwise: other train/validation rows
    second.write_text(yaml.safe_dump(data))
    other = init(second)
    assert other.returncode == 0, other.stdout + other.stderr
