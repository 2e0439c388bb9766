"""A mistake in the options or the config is reported before the heavy libraries are imported.

``tunedp search`` imports the driver (torch, Ray, dp_accounting: about 5 s)
and, with tracking on, MLflow (about 2 s); ``tunedp plan`` imports
dp_accounting and the pre-flight. A user who mistyped a path or a budget
should read the one-line error at once, so the commands import those only
once the options and the config are known good. Each case runs the CLI in a
fresh interpreter (nothing imported before) and reports which of the heavy
libraries were loaded by the time it exited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DIGITS = str(REPO / "search_spaces" / "digits.yaml")
HEAVY = ("torch", "ray", "dp_accounting", "mlflow", "scipy")

_PROBE = f"""
import json, sys
from tunedp.cli.app import main
code = None
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({{"code": code, "loaded": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""

CASES = {
    "search: missing config": ["search", "--config", "/nonexistent/search.yaml"],
    "search: non-positive budget": ["search", "--config", DIGITS, "--budget", "-1"],
    "search: delta above one": ["search", "--config", DIGITS, "--delta", "2"],
    "plan: missing config": ["plan", "--config", "/nonexistent/search.yaml"],
    "plan: non-positive budget": ["plan", "--config", DIGITS, "--budget", "0"],
    "audit: missing config": ["audit", "--config", "/nonexistent/search.yaml"],
}


def _env(tmp_path: Path, *, tracking: str) -> dict[str, str]:
    """A clean environment; the test run's calibration memo (tests/conftest.py), never the user's."""
    return {
        "PATH": "/usr/bin:/bin",
        "TUNEDP_HOME": str(tmp_path / "home"),
        "TUNEDP_CACHE_DIR": os.environ["TUNEDP_CACHE_DIR"],
        "TUNEDP_TRACKING": tracking,
    }


@pytest.mark.parametrize("arguments", CASES.values(), ids=CASES.keys())
def test_a_bad_option_or_config_exits_2_before_the_heavy_imports(arguments: list[str], tmp_path: Path) -> None:
    # Tracking on (its default): the search command would build MLflow's tracker for a good config.
    env = _env(tmp_path, tracking="1")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *arguments], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr  # one line, naming the field
    assert result["loaded"] == [], f"imported before the error: {result['loaded']}"


def test_a_good_config_does_reach_the_heavy_imports(tmp_path: Path) -> None:
    """The probe sees the imports when they happen: a good plan of a shipped config loads dp_accounting."""
    env = _env(tmp_path, tracking="0")
    arguments = ["plan", "--config", DIGITS, "--no-preflight", "--json"]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *arguments], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, None), done.stderr
    assert "dp_accounting" in result["loaded"]
