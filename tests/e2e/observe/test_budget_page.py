"""``tunedp budget show --plot``: the data owner's picture of a budget, checked in numbers and in a browser.

A real digits ledger (bound to the data) is charged with the events of real
plans of three modes on two UTC days; the page the CLI writes must carry
exactly the figures an independent computation gives — dp_accounting's own
``RdpAccountant`` composing the stored events in order at the ledger's δ,
never a sum of ε's — and show no more than ``budget show`` does (days, never
times; no trial counts). Headless Chromium (the system's, as in
``test_dashboard``) then renders the page from the file: its DOM holds the cap,
the labels and the totals, and the screenshot holds the drawn chart. The
browser tests are skipped, with the reason, where Chromium is absent (CI
installs it). The PostgreSQL ledger writes the page where ``--plot-file``
says, and without it refuses in one line whose hint works when pasted.
"""

from __future__ import annotations

import html
import os
import re
import secrets
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant
from matplotlib.image import imread
from postgres_fixtures import ADMIN_URL, create_team_ledger, drop_team_ledger, server_or_skip
from search_helpers import grid, random_all, random_best
from tracking_fixtures import CHROMIUM

import tunedp.ledger.sqlite as sqlite_ledger
from tunedp.accounting.epsilon import RDP_ORDERS
from tunedp.cli import main
from tunedp.ledger import LedgerUrl, open_ledger
from tunedp.ledger.binding import create_ledger
from tunedp.ledger.postgres import PostgresLedger
from tunedp.planning import plan_search

DELTA = 1e-5
CAP = 30.0
#: (day, mode, label, status) of each charge; the label is user text the page must escape.
CHARGES = [
    ("2026-03-01", "random/best", "first look", "completed"),
    ("2026-03-01", "grid/all", "momentum <b>&</b> $grid$", "failed"),
    ("2026-03-04", "random/all", "everything released", "charged"),
]
NEEDS_CHROMIUM = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1280,1100",
]


@dataclass(frozen=True)
class Ledger:
    path: Path
    events: list[dp_event.DpEvent]
    search_ids: list[str]


def _events() -> list[dp_event.DpEvent]:
    return [plan_search(config).event for config in (random_best(), grid([0.0, 0.9]), random_all())]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """A digits ledger bound to the data, charged on two UTC days; the last row stored seconds, as older ledgers did."""
    path = tmp_path_factory.mktemp("budget") / "digits.sqlite"
    opened = create_ledger(path, dataset="digits", epsilon=CAP, delta=DELTA)
    events = _events()
    ids = []
    with pytest.MonkeyPatch.context() as patch:
        for event, (day, mode, label, status) in zip(events, CHARGES, strict=True):
            patch.setattr(sqlite_ledger, "_now", lambda day=day: day)  # the ledger's clock: the UTC day it records
            charge = opened.charge(event, config_hash="h" * 64, mode=mode, label=label)
            if status != "charged":
                opened.set_status(charge.search_id, status)
            ids.append(charge.search_id)
    with sqlite3.connect(path) as connection:  # an older ledger's row: it stored the time of day too
        connection.execute("UPDATE charges SET created_at = '2026-03-04T14:22:05+00:00' WHERE id = 3")
    yield Ledger(path, events, ids)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def _independent(events: list[dp_event.DpEvent]) -> tuple[list[float], list[float]]:
    """(ε of each event alone, spent ε after each charge): dp_accounting's RdpAccountant, not tunedp's code."""
    alone = [
        rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS)).compose(event).get_epsilon(DELTA) for event in events
    ]
    spent = [
        rdp_privacy_accountant.RdpAccountant(list(RDP_ORDERS))
        .compose(dp_event.ComposedDpEvent(events[: i + 1]))
        .get_epsilon(DELTA)
        for i in range(len(events))
    ]
    return alone, spent


class _Table(HTMLParser):
    """The cells of the page's charges table, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _by_id(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert found, element_id
    return html.unescape(found.group(1))


@pytest.fixture(scope="module")
def page(ledger: Ledger) -> Path:
    """The page ``budget show --plot`` writes beside the ledger (its output checked in the tests below)."""
    path = ledger.path.with_name("digits.budget.html")
    path.unlink(missing_ok=True)
    with pytest.raises(SystemExit) as exited:
        main(["budget", "show", "--ledger", str(ledger.path), "--plot"])
    assert exited.value.code == 0
    return path


def test_plot_writes_the_page_beside_the_ledger_and_prints_its_path(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(["budget", "show", "--ledger", str(ledger.path), "--plot"], capsys)
    assert code == 0, err
    assert out.splitlines() == [str(ledger.path.with_name("digits.budget.html").absolute())]
    assert Path(out.strip()).read_text().startswith("<!DOCTYPE html>")


def test_the_page_carries_the_independent_rdp_composition_of_the_charges(ledger: Ledger, page: Path) -> None:
    text = page.read_text()
    alone, spent = _independent(ledger.events)
    assert spent[-1] < sum(alone)  # composition, not addition: the two would differ on the page
    table = _Table()
    table.feed(text)
    assert len(table.rows) == len(CHARGES)
    for i, (row, (day, mode, label, status)) in enumerate(zip(table.rows, CHARGES, strict=True)):
        number, shown_day, search, shown_mode, shown_label, own, after, shown_status = row
        assert (number, shown_day, shown_mode, shown_label) == (str(i + 1), day, mode, label)
        assert search == ledger.search_ids[i][:12] and shown_status.endswith(status)
        assert float(own) == pytest.approx(alone[i], abs=5e-5)
        assert float(after) == pytest.approx(spent[i], abs=5e-5)
    assert float(_by_id(text, "cap")) == CAP and float(_by_id(text, "delta")) == DELTA
    assert float(_by_id(text, "spent")) == pytest.approx(spent[-1], abs=5e-5)
    assert float(_by_id(text, "remaining")) == pytest.approx(CAP - spent[-1], abs=5e-5)
    assert _by_id(text, "dataset") == "digits"
    # The figure's own text: the cap, the total and the remaining budget, as the accountant gives them.
    svg = text[text.index("<svg") : text.index("</svg>")]
    assert f"cap: global ε = {CAP:g}" in svg
    assert f"spent {spent[-1]:.4f}" in svg and f"remaining ε ≈ {CAP - spent[-1]:.4f}" in svg
    assert "2026-03-01" in svg and "2026-03-04" in svg  # the x axis is labelled by day


def test_the_page_shows_what_budget_show_shows_and_nothing_else(
    ledger: Ledger, page: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    code, out, _ = _run(["budget", "show", "--ledger", str(ledger.path), "--json"], capsys)
    assert code == 0
    shown = json.loads(out)
    text = page.read_text()
    assert shown["fingerprint"] and shown["fingerprint"] in text and shown["key_id"] in text
    for charge in shown["charges"]:
        assert charge["search_id"][:12] in text and charge["created_at"] in text
    # Days only: the old row's stored time of day never reaches the page; no trial count, no duration.
    assert not re.search(r"\d{2}:\d{2}", text), re.search(r".{40}\d{2}:\d{2}.{40}", text)
    assert "trial" not in text.lower()
    # Self-contained: no script, nothing fetched; user text escaped, never markup.
    assert "<script" not in text and "<link" not in text and "src=" not in text and "@import" not in text
    assert not re.search(r'href="(?!#)', text) and not re.search(r"url\((?!#)", text)  # in-page references only
    assert "momentum &lt;b&gt;&amp;&lt;/b&gt; $grid$" in text and "<b>&</b>" not in text


def test_an_unwritable_place_is_one_line_exit_2(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (tmp_path / "missing" / "page.html", "does not exist"),
        (a_file / "page.html", "is not a folder"),
    ]
    if os.geteuid() != 0:  # root writes into a read-only folder anyway
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        cases.append((locked / "page.html", "cannot write the page"))
    for target, says in cases:
        code, out, err = _run(["budget", "show", "--ledger", str(ledger.path), "--plot-file", str(target)], capsys)
        assert code == 2 and out == "", (target, out, err)
        assert len(err.strip().splitlines()) == 1 and "--plot-file" in err and says in err, err
        assert not target.exists()
    code, out, err = _run(["budget", "show", "--ledger", str(ledger.path), "--plot", "--json"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--json" in err


def test_an_empty_and_a_long_ledger_are_drawn_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tunedp.ledger.sqlite import PrivacyLedger

    empty = PrivacyLedger.create(tmp_path / "empty.sqlite", dataset="empty", epsilon=2.0, delta=DELTA)
    code, out, err = _run(["budget", "show", "--ledger", str(empty.path), "--plot"], capsys)
    assert code == 0, err
    text = Path(out.strip()).read_text()
    assert "No search has been charged yet" in text and float(_by_id(text, "spent")) == 0.0
    assert float(_by_id(text, "remaining")) == 2.0 and "cap: global ε = 2" in text

    long = PrivacyLedger.create(tmp_path / "long.sqlite", dataset="long", epsilon=1000.0, delta=DELTA)
    events: list[dp_event.DpEvent] = [dp_event.GaussianDpEvent(20.0 + i % 7) for i in range(40)]
    for i, event in enumerate(events):
        long.charge(event, config_hash="h" * 64, mode="grid/all", label=f"sweep {i} costs $5")
    code, out, err = _run(["budget", "show", "--ledger", str(long.path), "--plot-file", str(tmp_path)], capsys)
    assert code == 0, err
    text = Path(out.strip()).read_text()
    assert Path(out.strip()) == tmp_path / "long.budget.html"
    table = _Table()
    table.feed(text)
    _, spent = _independent(events)
    assert [float(row[6]) for row in table.rows] == pytest.approx(spent, abs=5e-5)
    svg = text[text.index("<svg") : text.index("</svg>")]
    ticks = re.findall(r"<text[^>]*>#(\d+)", svg)
    assert 2 <= len(ticks) <= 13 and {int(t) for t in ticks} <= set(range(1, 41))  # some charges, not 40 labels
    assert "sweep" not in svg  # forty labels would be unreadable: the table carries them
    assert "sweep 39 costs $5" in text


def test_drawing_the_page_loads_no_heavy_library(ledger: Ledger) -> None:
    """``budget show --plot`` stays a budget command: no torch, Ray, Optuna, MLflow, and no pyplot (no window)."""
    code = (
        "import sys, json\n"
        "from tunedp.cli import main\n"
        f"try:\n    main(['budget', 'show', '--ledger', {str(ledger.path)!r}, '--plot'])\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print(json.dumps([m for m in ('torch', 'ray', 'optuna', 'mlflow', 'matplotlib.pyplot') if m in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert done.stdout.splitlines()[-1] == "[]", done.stdout


# ---------------------------------------------------------------------------- in the browser


def _chromium(profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _visible_text(dom: str) -> str:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def _near(pixels: np.ndarray, colour: str, alpha: float = 1.0, tolerance: int = 4) -> int:
    """How many pixels show ``colour`` (drawn at ``alpha`` over white)."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
    expected = alpha * rgb + (1 - alpha) * 255
    return int(np.all(np.abs(pixels[..., :3] * 255 - expected) <= tolerance, axis=-1).sum())


@NEEDS_CHROMIUM
def test_chromium_renders_the_cap_the_labels_and_the_chart(ledger: Ledger, page: Path, tmp_path: Path) -> None:
    url = page.absolute().as_uri()
    done = _chromium(tmp_path / "profile", "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-2000:]
    text = _visible_text(done.stdout)
    _, spent = _independent(ledger.events)
    assert "Privacy budget of digits" in text, text[:2000]
    assert f"cap: global ε = {CAP:g}" in text  # the cap line's label, drawn in the SVG
    assert f"remaining ε ≈ {CAP - spent[-1]:.4f}" in text and f"spent {spent[-1]:.4f}" in text
    for _, mode, label, status in CHARGES:
        assert label in text and mode in text and status in text  # bars' labels, legend and table
    assert "<svg" in done.stdout and "<script" not in done.stdout

    screenshot = tmp_path / "budget.png"
    shot = _chromium(tmp_path / "profile", f"--screenshot={screenshot}", url)
    assert screenshot.is_file(), shot.stderr[-2000:]
    assert _png_size(screenshot.read_bytes()) == (1280, 1100)
    pixels = imread(screenshot)
    assert (pixels[..., :3] < 0.9).any(axis=-1).mean() > 0.03  # not a blank page
    # The chart itself was painted: the bars in their status colours and the spent-ε line.
    assert _near(pixels, "#55a868", alpha=0.85) > 500  # completed
    assert _near(pixels, "#c44e52", alpha=0.85) > 500  # failed
    assert _near(pixels, "#4c72b0", alpha=0.85) > 500  # charged
    assert _near(pixels, "#1f3b73") > 100  # the step line of spent ε
    print(f"screenshot: {screenshot}")


# ---------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def team_dataset() -> Iterator[tuple[str, str, list[dp_event.DpEvent]]]:
    """(analyst URL, dataset, events) on a fresh team ledger of the shared server, charged as an analyst."""
    server_or_skip()
    team = create_team_ledger(ADMIN_URL, "127.0.0.1", 5432)
    try:
        dataset = f"d{secrets.token_hex(4)}"
        owner = LedgerUrl.parse(team.url("owner"))
        PostgresLedger.create(owner, dataset=dataset, epsilon=CAP, delta=DELTA)
        with owner.connect() as connection:
            connection.execute("SELECT tunedp.grant_dataset(%s, %s)", (dataset, team.login("analyst")))
        analyst = open_ledger(team.url("analyst"), dataset=dataset)
        events = _events()
        for event, (_, mode, label, _) in zip(events, CHARGES, strict=True):
            analyst.charge(event, config_hash="h" * 64, mode=mode, label=label)
        yield team.url("analyst"), dataset, events
    finally:
        drop_team_ledger(ADMIN_URL, team)


def test_a_postgresql_ledger_writes_the_page_where_plot_file_says(
    team_dataset: tuple[str, str, list[dp_event.DpEvent]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, dataset, events = team_dataset
    code, out, err = _run(["budget", "show", "--ledger", url, "--dataset", dataset, "--plot"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    hint = re.search(r"--plot-file (\S+)", err)
    assert hint, err
    monkeypatch.chdir(tmp_path)  # the hint's path is relative: pasted where the user stands
    code, out, err = _run(["budget", "show", "--ledger", url, "--dataset", dataset, "--plot-file", hint[1]], capsys)
    assert code == 0, err
    written = Path(out.strip())
    assert written == (tmp_path / f"{dataset}.budget.html").absolute() and written.is_file()
    text = written.read_text()
    _, spent = _independent(events)
    assert float(_by_id(text, "spent")) == pytest.approx(spent[-1], abs=5e-5)
    table = _Table()
    table.feed(text)
    assert [float(row[6]) for row in table.rows] == pytest.approx(spent, abs=5e-5)
    assert "postgresql://" not in text  # the page names the dataset, not the server or the login
    # A folder as --plot-file gets DATASET.budget.html inside it.
    code, out, _ = _run(["budget", "show", "--ledger", url, "--dataset", dataset, "--plot-file", str(tmp_path)], capsys)
    assert code == 0 and Path(out.strip()) == written
