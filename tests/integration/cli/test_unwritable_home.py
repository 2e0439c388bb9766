"""A ledger folder that cannot be written is one line naming the folder and the cause (exit 2, nothing charged).

Before: ``budget init`` printed a 40-line traceback, and ``search`` called a
ledger on a read-only file system "not a readable tunedp ledger".
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from search_helpers import example_dict

TUNEDP = str(Path(sys.executable).with_name("tunedp"))


INIT = ("budget", "init", "--epsilon", "8", "--delta", "1e-5", "--dataset")


def _tunedp(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TUNEDP_HOME": str(home), "TUNEDP_TRACKING": "0"}
    return subprocess.run([TUNEDP, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_budget_init_under_a_path_that_is_not_a_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    home = blocker / "home"
    done = _tunedp(
        "budget", "init", "--dataset", "digits", "--epsilon", "8", "--delta", "1e-5", home=home, cwd=tmp_path
    )
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: ledger folder {home / 'ledgers'}: cannot write there (Not a directory)"), line
    assert "Traceback" not in done.stdout + done.stderr


@functools.cache
def _can_mount_tmpfs() -> bool:
    """Mounting needs root and the capability (CI's and the development machines have both)."""
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as folder:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder], capture_output=True)
        if mounted.returncode != 0:
            return False
        subprocess.run(["umount", folder], check=True)
    return True


@pytest.fixture
def remountable(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "fs"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs root and the right to mount a tmpfs")
def test_a_ledger_on_a_read_only_file_system_is_named_with_its_cause(tmp_path: Path, remountable: Path) -> None:
    home = remountable / "home"
    made = _tunedp(
        "budget", "init", "--dataset", "digits", "--epsilon", "8", "--delta", "1e-5", home=home, cwd=tmp_path
    )
    assert made.returncode == 0, made.stdout + made.stderr
    ledger = home / "ledgers" / "digits.sqlite"
    before = ledger.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(remountable)], check=True)
    data = example_dict()
    data["training"] = {"steps": 8, "expected_batch_size": 120, "evaluations": 1}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    done = _tunedp("search", "--config", str(config), "--output", str(tmp_path / "out"), home=home, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert f"ledger folder {ledger.parent}: cannot write the ledger there" in line and "readonly" in line, line
    assert "not a readable tunedp ledger" not in done.stderr
    assert ledger.read_bytes() == before  # nothing charged
    again = _tunedp(
        "budget", "init", "--dataset", "adult", "--epsilon", "8", "--delta", "1e-5", home=home, cwd=tmp_path
    )
    assert again.returncode == 2 and "cannot write there (Read-only file system)" in again.stderr, again.stderr
