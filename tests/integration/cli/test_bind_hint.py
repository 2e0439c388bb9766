"""The hint for an unbound ledger is a command that binds it, as pasted (issue: it pointed at one that failed).

A ledger made with ``budget init --dataset my_table --size N`` is bound to no
rows. For a table declared in a search config, ``budget bind --ledger PATH``
alone fails ("declare the workload first"): the config is what declares it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from search_helpers import digits_table_search

from tunedp.ledger.sqlite import PrivacyLedger

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


def _run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TUNEDP, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_a_search_on_an_unbound_csv_ledger_prints_the_bind_command_that_works(tmp_path: Path) -> None:
    data = digits_table_search(tmp_path)
    config = tmp_path / "table.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "TUNEDP_HOME": str(tmp_path / "home"), "TUNEDP_TRACKING": "0"}
    made = _run("budget", "init", "--dataset", "digits_table", "--epsilon", "8", "--delta", "1e-5", "--size", "1497",
                env=env, cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    refused = _run("search", "--config", str(config), env=env, cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    command = re.search(r"`(tunedp budget bind [^`]+)`", line)
    assert command is not None and f"--config {config}" in command.group(1), line
    ledger_path = Path(re.search(r"--ledger (\S+)", command.group(1)).group(1))  # type: ignore[union-attr]
    assert PrivacyLedger.open_for_binding(ledger_path, dataset="digits_table").charges() == []  # nothing charged

    argv = shlex.split(command.group(1))
    bound = _run(*argv[1:], env=env, cwd=tmp_path)
    assert bound.returncode == 0, bound.stdout + bound.stderr
    assert PrivacyLedger.open(ledger_path).bound


def test_budget_show_takes_the_config_as_budget_init_does(tmp_path: Path) -> None:
    data = digits_table_search(tmp_path)
    config = tmp_path / "table.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "TUNEDP_HOME": str(tmp_path / "home")}
    made = _run("budget", "init", "--config", str(config), "--epsilon", "8", "--delta", "1e-5", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    shown = _run("budget", "show", "--config", str(config), "--json", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    summary = json.loads(shown.stdout)
    assert summary["dataset"] == "digits_table" and summary["epsilon"] == 8.0 and summary["spent_epsilon"] == 0.0
