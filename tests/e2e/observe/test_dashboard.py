"""The MLflow dashboard in a real browser: a grid search's runs appear on the experiment page.

Headless Chromium (the system's; no browser is downloaded) renders MLflow's
React UI from a real ``mlflow server``; the runs table is asserted on the
page's DOM text (``--dump-dom`` after a virtual-time budget) and a screenshot
is saved next to the test's files. Skipped, with the reason, where Chromium
is absent (CI installs it).
"""

from __future__ import annotations

import html
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tracking_fixtures import CHROMIUM, GRID, ON_SHARED_SERVER, MlflowServer, shared_mlflow_server, small_config

from tunedp.ledger.binding import create_ledger
from tunedp.observe.mlflow_tracker import MlflowTracker
from tunedp.observe.protocol import SearchOutcome
from tunedp.run.driver import search

pytestmark = [
    pytest.mark.slow,
    ON_SHARED_SERVER,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"),
]

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1440,900",
]


@dataclass
class Dashboard:
    server: MlflowServer
    outcome: SearchOutcome
    experiment_id: str


@pytest.fixture(scope="module")
def dashboard(
    ray_session: str, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Dashboard]:
    server = shared_mlflow_server(tmp_path_factory, pytestconfig)
    folder = tmp_path_factory.mktemp("dashboard")
    ledger = folder / "digits.sqlite"
    create_ledger(ledger, dataset="digits", epsilon=100.0, delta=1e-5)
    outcome = search(
        small_config(**GRID), ledger_path=ledger, observers=[MlflowTracker(server.url)], seed=2, output_dir=folder / "g"
    )
    yield Dashboard(server, outcome, server.experiment_id("tunedp-digits"))


def _chromium(profile: Path, *arguments: str, budget_ms: int) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _visible_text(dom: str) -> str:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def test_the_experiment_page_lists_the_search_and_its_runs(dashboard: Dashboard, tmp_path: Path) -> None:
    url = f"{dashboard.server.url}/#/experiments/{dashboard.experiment_id}/runs"
    parent = dashboard.server.search_runs(
        dashboard.experiment_id, f"tags.`tunedp.search_id` = '{dashboard.outcome.search_id}'"
    )
    parent_names = [run.name for run in parent if run.tags.get("tunedp.role") == "search"]
    assert len(parent_names) == 1 and len(parent) == 3  # the search and its two grid points
    text = ""
    for budget_ms in (15_000, 30_000, 60_000):  # a slow machine renders later: give it more virtual time
        done = _chromium(tmp_path / "profile", "--dump-dom", url, budget_ms=budget_ms)
        text = _visible_text(done.stdout)
        if parent_names[0] in text and "matching runs" in text:
            break
    assert "tunedp-digits" in text, text[:2000]
    # The search's run in the runs table, under the default columns: its name carries what a user
    # looks for first (issue 27 §5), the test metric and the charge leading (the column shows
    # about twenty characters), then the ledger's spent of its cap.
    assert parent_names[0] in text, text[:2000]
    assert re.match(r"test 0\.\d+ · ε [\d.]+ charged · [\d.]+ of [\d.]+ spent · ", parent_names[0]), parent_names[0]
    assert re.search(r"\b\d+ matching runs\b", text), text[:2000]
    assert "Run Name" in text and "Created" in text  # the table's header
    screenshot = tmp_path / "experiment.png"
    _chromium(tmp_path / "profile", f"--screenshot={screenshot}", url, budget_ms=budget_ms)
    assert screenshot.is_file() and screenshot.read_bytes().startswith(b"\x89PNG")
    print(f"screenshot: {screenshot}")
    print(f"runs table text: {text[text.find('Run Name') : text.find('matching runs') + 13]}")
