"""Issue 23, items 2 and 3: what Ray and Tune write about the trials is private while a search runs and gone after.

The slow test runs a real ``release: best`` search through the command line
with its own local Ray (as a user runs it), looks at the driver's private
folder while trials run (item 3: mode 0700, Ray's logs 0600), then kills the
driver with SIGKILL — no code of it runs after that — and runs the next
tunedp command (item 2: every trace of K the dead driver left is gone).
The fast tests pin the rule that decides which folders are a dead driver's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from search_helpers import random_best

from tunedp.accounting.search_event import draw_trial_count
from tunedp.cli import main
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.sqlite import PrivacyLedger
from tunedp.planning import plan_search
from tunedp.run.resume import STATE_DIR, ResumeState, StateRecorder
from tunedp.run.scratch import OWNER_FILE, ROOT_PREFIX, remove_dead_scratch, scratch_root

TUNEDP = str(Path(sys.executable).with_name("tunedp"))
BASE = Path("/tmp")


# ---------------------------------------------------------------------------- which folders are a dead driver's


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _folder(pid: int, owner: str | None = None) -> Path:
    folder = BASE / f"{ROOT_PREFIX}{pid}-testonly{os.urandom(4).hex()}"
    folder.mkdir(mode=0o700)
    (folder / "search").mkdir()
    (folder / "search" / "basic-variant-state-x.json").write_text('{"_total_samples": 7}')
    if owner is not None:
        (folder / OWNER_FILE).write_text(owner)
    return folder


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def test_a_dead_drivers_folder_is_removed_a_running_ones_kept(sleeper: subprocess.Popen[bytes]) -> None:
    dead = _folder(_dead_pid())
    start = Path(f"/proc/{sleeper.pid}/stat").read_text().rsplit(")", 1)[-1].split()[19]
    alive = _folder(sleeper.pid, owner=f"{sleeper.pid} {start}")
    legacy_alive = _folder(sleeper.pid)  # no owner file (an older tunedp): kept while its pid runs
    reused = _folder(sleeper.pid, owner=f"{sleeper.pid} 1")  # the pid now belongs to a later process
    try:
        removed = remove_dead_scratch()
        assert dead in removed and not dead.exists()
        assert reused in removed and not reused.exists()
        assert alive.is_dir() and legacy_alive.is_dir()
        assert alive not in removed and legacy_alive not in removed
    finally:
        for folder in (dead, alive, legacy_alive, reused):
            subprocess.run(["rm", "-rf", str(folder)], check=True)


def test_a_link_named_like_a_scratch_folder_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "keep").write_text("x")
    link = BASE / f"{ROOT_PREFIX}{_dead_pid()}-testonly{os.urandom(4).hex()}"
    link.symlink_to(target)
    try:
        remove_dead_scratch()
        assert (target / "keep").is_file() and link.is_symlink()
    finally:
        link.unlink()


def test_this_process_folder_is_private_and_never_taken_for_a_dead_one() -> None:
    root = scratch_root()
    assert root.parent == BASE and root.name.startswith(f"{ROOT_PREFIX}{os.getpid()}-")
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert root not in remove_dead_scratch() and root.is_dir()


def test_abandon_removes_what_dead_drivers_left(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger_path = tmp_path / "digits.sqlite"
    create_ledger(ledger_path, dataset="digits", epsilon=40.0, delta=1e-5)
    out = tmp_path / "out"
    state = ResumeState(
        search_id="c" * 32,
        config=random_best().model_dump(mode="json"),
        ledger_path=str(ledger_path),
        trial_count=9,
        seed=None,
    )
    StateRecorder(out, state, PrivacyLedger.open(ledger_path)).close()
    dead = _folder(_dead_pid())
    try:
        with pytest.raises(SystemExit) as exited:
            main(["search", "--abandon", str(out)])
        assert exited.value.code == 0, capsys.readouterr().err
        assert not dead.exists() and not (out / STATE_DIR).exists()
    finally:
        subprocess.run(["rm", "-rf", str(dead)], check=True)


# ---------------------------------------------------------------------------- a real search, then SIGKILL


def _seed_with_trials(low: int, high: int) -> int:
    shape = plan_search(random_best(expected_trials=8.0)).shape
    for seed in range(1000):
        if low <= draw_trial_count(shape, np.random.default_rng(seed)) <= high:
            return seed
    raise AssertionError("no seed found")


def _completed(out: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads((out / STATE_DIR / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    state = document.get("state", document)  # the document as this tunedp or an older one writes it
    return list(state.get("completed", []))


def _trial_folders(base: Path) -> list[Path]:
    """Every ``_trainable_*`` entry below ``base``; folders other tests remove meanwhile are skipped."""
    found = []
    for folder, subfolders, files in os.walk(base, onerror=lambda error: None):
        found += [Path(folder, name) for name in [*subfolders, *files] if name.startswith("_trainable_")]
    return found


def _paths(root: Path) -> list[Path]:
    return [root, *root.rglob("*")] if root.exists() else []


@pytest.mark.slow
def test_a_killed_search_leaves_nothing_of_k_and_its_ray_folder_was_private(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(random_best(expected_trials=8.0).model_dump(mode="json", exclude_none=True)))
    ledger = tmp_path / "digits.sqlite"
    create_ledger(ledger, dataset="digits", epsilon=100.0, delta=1e-5)
    out, temp = tmp_path / "out", tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TUNEDP_TRACKING": "0", "TMPDIR": str(temp)}
    seed = _seed_with_trials(12, 30)  # many trials: SIGKILL lands while some still run
    driver = subprocess.Popen(
        [TUNEDP, "search", "--config", str(config), "--ledger", str(ledger), "--max-concurrent", "1",
         "--seed", str(seed), "--output", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(_completed(out)) < 2 and driver.poll() is None:
            time.sleep(0.2)
        assert len(_completed(out)) >= 2, "the search ended or was too slow"
        # Item 3, while the search runs: its one private folder is 0700 and Ray's own files 0600.
        (root,) = BASE.glob(f"{ROOT_PREFIX}{driver.pid}-*")
        info = root.stat()
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid(), oct(info.st_mode)
        inside = _paths(root)
        assert any(p.name.startswith("basic-variant-state-") for p in inside)  # Tune's state (K) is in it
        worker_logs = [p for p in inside if p.name.startswith("worker-") and p.parent.name == "logs"]
        assert worker_logs
        loose = [p for p in worker_logs if stat.S_IMODE(p.stat().st_mode) & 0o077]
        assert not loose, f"{oct(loose[0].stat().st_mode)} {loose[0]}"
        points = [record["point"] for record in _completed(out)]
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        driver.stdout.close()  # type: ignore[union-attr]
        driver.stderr.close()  # type: ignore[union-attr]
        with contextlib.suppress(ProcessLookupError):  # the killed driver's Ray helpers (its own session)
            os.killpg(driver.pid, signal.SIGKILL)
    assert root.exists()  # no code of the killed driver ran: its folder is still there

    # Item 2: the next tunedp command (any) removes what the dead driver left.
    shown = subprocess.run(
        [TUNEDP, "budget", "show", "--ledger", str(ledger)], capture_output=True, text=True, env=env, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    assert not list(BASE.glob(f"{ROOT_PREFIX}{driver.pid}-*"))
    # Nothing K-revealing anywhere else: not in the driver's TMPDIR, and no Tune trial folder named
    # by one of this search's points under /tmp.
    assert not _paths(temp)[1:], [str(p) for p in _paths(temp)]
    searched = ("clip_norm", "step_size")  # momentum is fixed: the same in every search
    names = [[f"{name}={point[name]:.4f}" for name in searched] for point in points]  # how Tune names a trial
    for path in _trial_folders(BASE):
        assert not any(all(part in path.name for part in name) for name in names), path
    # The secret state (K, the finished trials) is kept for --resume, in its 0700 folder only.
    assert stat.S_IMODE((out / STATE_DIR).stat().st_mode) == 0o700
