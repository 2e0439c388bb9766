"""The console's view of a running search, within the disclosure rule.

Where the mode releases every trial, each finished trial is printed with its
released score and the count done/planned. Under ``release: best`` nothing
about a single trial — not even how many have run — is shown before
selection; the console says so and shows the elapsed time only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console

from tunedp.disclosure import TrialRecord, disclosure_for
from tunedp.search import SearchObserver

if TYPE_CHECKING:
    from tunedp.accounting.ledger import Charge, PrivacyLedger
    from tunedp.plan import SearchPlan
    from tunedp.search import SearchOutcome

__all__ = ["ConsoleProgress"]


class ConsoleProgress(SearchObserver):
    """Prints the charge, then trials as they finish (where released), then the elapsed time."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()

    def on_charged(self, plan: SearchPlan, charge: Charge, ledger: PrivacyLedger) -> None:
        self.started = time.monotonic()
        rule = disclosure_for(plan.shape.mode, plan.shape.release)
        self.console.print(
            f"charged ε = {charge.epsilon:.4f} to ledger {ledger.dataset!r} "
            f"(σ = {plan.noise_multiplier:.4f}, {plan.shape.mode}/{plan.shape.release})",
            highlight=False,
        )
        if rule.shows_trial_count:
            self.console.print(f"running up to {plan.shape.max_trials} trials on Ray Tune …", highlight=False)
        else:
            self.console.print(
                "running a secret number of trials on Ray Tune (release: best shows only the best) …",
                highlight=False,
            )

    def on_trial_done(self, record: TrialRecord, done: int, planned: int) -> None:
        elapsed = time.monotonic() - self.started
        score = f"{record.final_score:.4f}" if record.released_scores else "-"
        hyper = ", ".join(f"{k}={v:.4g}" for k, v in sorted(record.hyperparameters.items()))
        self.console.print(
            f"[{done}/{planned}] {elapsed:6.1f}s  {record.status:9s} score {score}  {hyper}", highlight=False
        )

    def on_finished(self, outcome: SearchOutcome) -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(f"search finished in {elapsed:.1f}s", highlight=False)
