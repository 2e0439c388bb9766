"""The data owner's picture of a budget: one self-contained HTML page (``tunedp budget show --plot``).

``budget show`` is text; this page draws the same ledger. Each charge is a
bar of its own ε, the spent ε after it is a step line — the RDP composition
at the ledger's δ of every event up to it, recomputed from the stored events
(:func:`tunedp.observe.plots.cumulative_spent_epsilon`), never a sum of ε's — and the
global ε is the cap line above them, with the remaining budget marked between.
A table below lists the same figures, so every number on the picture can be
read (and copied) as text.

What the page shows is what ``budget show`` already prints, and nothing more
(the ledger is public under the threat model): the dataset, its ε, δ,
fingerprint and key id, and per charge its search id, UTC day, mode, label,
own ε and status. Never a time of day, never a trial count. It is one file:
the figure is inline SVG whose text stays text (searchable, readable by a
screen reader), the style is inline, and there is no script and nothing
fetched — a Content-Security-Policy forbids every network load, so the page
opens the same offline, from an e-mail or from an archive.

It imports neither torch, Ray nor MLflow; matplotlib (headless Agg/SVG) draws.
"""

from __future__ import annotations

import html
import io
import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.remaining import remaining_epsilon
from tunedp.observe.plots import cumulative_spent_epsilon

if TYPE_CHECKING:
    from tunedp.ledger.sqlite import PrivacyLedger

__all__ = ["BudgetPage", "PageCharge", "budget_page", "default_page_path", "render_html", "write_page"]

#: Bar colour of each ledger status (charged and running are budget already spent, like the rest).
_STATUS_COLOURS = {
    "charged": "#4c72b0",
    "running": "#64b5cd",
    "completed": "#55a868",
    "failed": "#c44e52",
    "interrupted": "#dd8452",
}
_OTHER_COLOUR = "#8c8c8c"
_SPENT_COLOUR = "#1f3b73"
#: At most this many charges get their label drawn above the bar and a tick of their own.
_LABELLED = 16


@dataclass(frozen=True, kw_only=True)
class PageCharge:
    """One charge as the page shows it: what ``budget show`` prints, plus the spent ε after it."""

    number: int
    search_id: str
    day: str
    mode: str
    label: str
    epsilon_alone: float
    spent_after: float
    status: str


@dataclass(frozen=True, kw_only=True)
class BudgetPage:
    """Everything the page draws, read from one ledger."""

    dataset: str
    epsilon: float
    delta: float
    fingerprint: str | None
    key_id: str | None
    charges: tuple[PageCharge, ...]

    @property
    def spent_epsilon(self) -> float:
        """RDP ε at δ of every charge (0 before the first)."""
        return self.charges[-1].spent_after if self.charges else 0.0

    @property
    def remaining_epsilon(self) -> float:
        """Global minus spent ε, the guide ``budget show`` prints (ε does not add up; admission recomposes)."""
        return remaining_epsilon(self.epsilon, self.spent_epsilon)


def budget_page(ledger: PrivacyLedger) -> BudgetPage:
    """The page's figures, recomputed from the ledger's stored events at its δ.

    Each charge's own ε is :func:`rdp_epsilon` of its event, and the spent ε
    after charge *i* is the RDP composition of events 1..i — the same
    accountant, orders and δ as the ledger's admission, so the last step
    equals ``ledger.spent_epsilon()``. An event the accountant cannot price
    raises (fail closed) instead of drawing it as free.
    """
    charges = ledger.charges()
    spent = cumulative_spent_epsilon([c.event for c in charges], ledger.delta)
    return BudgetPage(
        dataset=ledger.dataset,
        epsilon=ledger.epsilon,
        delta=ledger.delta,
        fingerprint=ledger.fingerprint or None,
        key_id=ledger.key_id or None,
        charges=tuple(
            PageCharge(
                number=i,
                search_id=c.search_id,
                day=c.created_at[:10],  # the UTC day (older ledgers stored seconds): never a time
                mode=c.mode,
                label=c.label,
                epsilon_alone=rdp_epsilon(c.event, ledger.delta),
                spent_after=after,
                status=c.status,
            )
            for i, (c, after) in enumerate(zip(charges, spent, strict=True), start=1)
        ),
    )


def default_page_path(ledger_file: Path) -> Path:
    """Beside a sqlite ledger: ``digits.sqlite`` → ``digits.budget.html`` (a PostgreSQL ledger has no folder)."""
    return ledger_file.with_name(f"{ledger_file.stem}.budget.html")


def write_page(page: BudgetPage, path: Path) -> Path:
    """Write the page to ``path`` (a folder gets ``DATASET.budget.html``) atomically; returns the file.

    Written to a temporary file in the same folder and renamed, so a reader
    never sees half a page and a failure leaves any earlier page intact.
    Raises :class:`OSError` when the folder is missing or not writable.
    """
    target = path / f"{page.dataset}.budget.html" if path.is_dir() else path
    text = render_html(page)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)  # a page to share, like the ledger's public figures
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


# ---------------------------------------------------------------------------- the figure


def _plain(text: str) -> str:
    """User text for matplotlib: a ``$`` would start mathtext, so it is escaped."""
    return text.replace("$", r"\$")


def _short(text: str, width: int = 22) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _tick_labels(charges: Sequence[PageCharge]) -> list[str]:
    """``#i`` under every charge, with its day under the first charge of each day (charges grouped by day)."""
    labels = []
    previous = None
    for charge in charges:
        labels.append(f"#{charge.number}\n{charge.day}" if charge.day != previous else f"#{charge.number}")
        previous = charge.day
    return labels


def budget_figure(page: BudgetPage) -> Figure:
    """Own ε of each charge (bars), spent ε after it (step line), the cap and the remaining budget."""
    figure = Figure(figsize=(9.6, 5.0), dpi=100, layout="constrained")
    FigureCanvasSVG(figure)
    axes = figure.add_subplot()
    charges = page.charges
    n = len(charges)
    numbers = [c.number for c in charges]
    spent = [c.spent_after for c in charges]
    top = max(page.epsilon, *spent, *(c.epsilon_alone for c in charges), 0.0) * 1.12 or 1.0
    for status in dict.fromkeys(c.status for c in charges):
        mine = [c for c in charges if c.status == status]
        axes.bar(
            [c.number for c in mine],
            [c.epsilon_alone for c in mine],
            width=0.5,
            color=_STATUS_COLOURS.get(status, _OTHER_COLOUR),
            alpha=0.85,
            label=f"one search's charge ({_plain(status)})",
            zorder=2,
        )
    axes.step(
        [0, *numbers],
        [0.0, *spent],
        where="post",
        color=_SPENT_COLOUR,
        linewidth=2.2,
        label="spent ε after each charge (RDP composition)",
        zorder=3,
    )
    if n:
        axes.plot(numbers, spent, "o", color=_SPENT_COLOUR, markersize=4, zorder=3)
    right = n + 0.9
    axes.axhline(page.epsilon, color="black", linestyle="--", linewidth=1.4, zorder=1)
    axes.text(0.05, page.epsilon, f"cap: global ε = {page.epsilon:g}", va="bottom", ha="left", fontsize=9)
    axes.fill_between([0, right], page.spent_epsilon, page.epsilon, color="#55a868", alpha=0.10, zorder=0)
    axes.annotate(
        "",
        xy=(n + 0.55, page.epsilon),
        xytext=(n + 0.55, page.spent_epsilon),
        arrowprops={"arrowstyle": "<->", "color": "#2e7d32"},
    )
    axes.text(
        n + 0.5,
        (page.epsilon + page.spent_epsilon) / 2,
        f"remaining ε ≈ {page.remaining_epsilon:.4f}",
        ha="right",
        va="center",
        fontsize=9,
        color="#2e7d32",
    )
    if n <= _LABELLED:
        axes.set_xticks(numbers, _tick_labels(charges), fontsize=8)
        for charge in charges:
            axes.annotate(
                _plain("\n".join(dict.fromkeys(_short(text) for text in (charge.label, charge.mode) if text))),
                (charge.number, charge.epsilon_alone),
                textcoords="offset points",
                xytext=(0, 3),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=20 if n > 6 else 0,
            )
    else:  # too many to name: ticks at some charge numbers, each with its day
        axes.xaxis.set_major_locator(MaxNLocator(nbins=12, integer=True))
        ticks = [int(t) for t in axes.get_xticks() if 1 <= t <= n]
        axes.set_xticks(ticks, [f"#{t}\n{charges[t - 1].day}" for t in ticks], fontsize=8)
    if n:
        axes.annotate(
            f"spent {page.spent_epsilon:.4f}",
            (n, page.spent_epsilon),
            textcoords="offset points",
            xytext=(-4, 6),
            ha="right",
            fontsize=9,
            color=_SPENT_COLOUR,
        )
    axes.set_xlim(0, right)
    axes.set_ylim(0, top)
    axes.set_xlabel("charge, in ledger order (UTC day of the charge)")
    axes.set_ylabel("ε")
    axes.set_title(f"Privacy budget of {_plain(page.dataset)!r} (δ = {page.delta:g})")
    figure.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    axes.grid(axis="y", color="0.9", zorder=0)
    return figure


def _inline_svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element: text kept as text, no date, stable ids."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "tunedp-budget"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML declaration and DOCTYPE: an HTML document holds it
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)  # matplotlib's RDF credits, not needed
    return svg.replace("<svg ", '<svg role="img" aria-label="privacy budget chart" ', 1)


# ---------------------------------------------------------------------------- the page


_STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 22px; margin-bottom: 4px; }
.summary { font-size: 15px; margin: 8px 0 16px; }
.summary b { font-size: 17px; }
.fingerprint code { word-break: break-all; font-size: 12px; }
.figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 13px; margin-top: 12px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; font-size: 12px; margin-top: 16px; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def render_html(page: BudgetPage) -> str:
    """The whole page as one HTML document (inline SVG and style; no script, nothing fetched)."""
    fingerprint = (
        f'<p class="fingerprint">data fingerprint (key id {_e(page.key_id)}): <code>{_e(page.fingerprint)}</code></p>'
        if page.fingerprint
        else '<p class="fingerprint">data fingerprint: none (unbound; run <code>tunedp budget bind</code>)</p>'
    )
    rows = "\n".join(
        "<tr>"
        f'<td class="num">{c.number}</td><td>{_e(c.day)}</td><td><code>{_e(c.search_id[:12])}</code></td>'
        f"<td>{_e(c.mode)}</td><td>{_e(c.label)}</td>"
        f'<td class="num">{c.epsilon_alone:.4f}</td><td class="num">{c.spent_after:.4f}</td>'
        f'<td><span style="color:{_STATUS_COLOURS.get(c.status, _OTHER_COLOUR)}">■</span> {_e(c.status)}</td>'
        "</tr>"
        for c in page.charges
    )
    table = (
        '<table id="charges"><thead><tr><th>#</th><th>day (UTC)</th><th>search</th><th>mode</th><th>label</th>'
        "<th>ε alone</th><th>spent ε after (RDP)</th><th>status</th></tr></thead>"
        f"<tbody>\n{rows}\n</tbody></table>"
        if page.charges
        else "<p>No search has been charged yet.</p>"
    )
    used = page.spent_epsilon / page.epsilon if page.epsilon > 0 and math.isfinite(page.spent_epsilon) else 0.0
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Privacy budget of {_e(page.dataset)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Privacy budget of <span id="dataset">{_e(page.dataset)}</span></h1>
<p class="summary">global ε (cap) = <b id="cap">{page.epsilon:g}</b>, δ = <b id="delta">{page.delta:g}</b>;
spent ε = <b id="spent">{page.spent_epsilon:.4f}</b> ({used:.1%} of the cap);
remaining ε ≈ <b id="remaining">{page.remaining_epsilon:.4f}</b>
over <span id="count">{len(page.charges)}</span> charged search(es)</p>
{fingerprint}
<div class="figure">{_inline_svg(budget_figure(page))}</div>
{table}
<p class="note">Spent ε is the RDP composition, at δ = {page.delta:g}, of every charge's privacy event up to
that charge: ε's do not add up, so the step line rises by less than each bar. The remaining ε is a guide
(global minus spent); whether a next search fits depends on what it composes with, and the ledger decides
that when it charges. Days are UTC; the ledger records no time of day. This page shows what
<code>tunedp budget show</code> prints.</p>
</body>
</html>
"""
