"""Admission arithmetic both backends share: a new budget's checks, composed ε, remaining ε, the refusal.

A charge is admitted only if the RDP composition of every stored event plus
the new one, converted to ε at the ledger's δ, stays within the global ε.
:class:`BudgetArithmetic` computes that from a backend's :meth:`charges`; the
backend itself makes the check and the insert one atomic step (sqlite's
``BEGIN IMMEDIATE``, PostgreSQL's row lock).

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import math

from dp_accounting import dp_event

from tunedp.accounting.epsilon import rdp_epsilon
from tunedp.accounting.remaining import remaining_epsilon
from tunedp.errors import BudgetExceededError, LedgerError
from tunedp.ledger.paths import check_dataset_name
from tunedp.ledger.records import Charge
from tunedp.workloads.contract import check_delta_range

__all__ = ["BudgetArithmetic", "check_new_budget", "composed_epsilon", "over_budget"]


def check_new_budget(dataset: str, epsilon: float, delta: float) -> None:
    """Refuse, before anything is created, a bad dataset name, a non-positive or infinite ε, or δ outside (0, 1)."""
    check_dataset_name(dataset)
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise LedgerError(f"--epsilon: {epsilon} must be a finite number > 0")
    check_delta_range(delta, field="--delta", error=LedgerError)


def composed_epsilon(events: list[dp_event.DpEvent], delta: float) -> float:
    """RDP ε at ``delta`` of the composition of ``events`` (0 for none)."""
    if not events:
        return 0.0
    return rdp_epsilon(dp_event.ComposedDpEvent(events), delta)


def over_budget(dataset: str, epsilon: float, before: float, after: float) -> BudgetExceededError:
    """The one-line refusal of a charge that would take the spent ε from ``before`` to ``after``, above ``epsilon``."""
    return BudgetExceededError(
        f"budget: dataset {dataset!r} has spent epsilon={before:.4g} of {epsilon:g}; "
        f"this search would bring it to {after:.4g}; lower --budget or raise the global budget"
    )


class BudgetArithmetic:
    """Spent, remaining and admissible ε of a ledger, recomposed from its stored events (never stored figures)."""

    epsilon: float
    delta: float

    def charges(self) -> list[Charge]:
        raise NotImplementedError

    def spent_epsilon(self) -> float:
        """RDP ε at the ledger's δ of the composition of everything charged so far."""
        return self._composed_epsilon([c.event for c in self.charges()])

    def remaining(self) -> float:
        """Global ε minus spent ε.

        ε does not add up under RDP composition; this figure is for display.
        Admission never uses it: :meth:`charge` recomposes every event.
        """
        return remaining_epsilon(self.epsilon, self.spent_epsilon())

    def admissible(self, event: dp_event.DpEvent) -> tuple[bool, float]:
        """Whether ``event`` fits now, and the spent ε it would leave (dry run of charge)."""
        events = [c.event for c in self.charges()]
        after = self._composed_epsilon([*events, event])
        return after <= self.epsilon, after

    def _composed_epsilon(self, events: list[dp_event.DpEvent]) -> float:
        return composed_epsilon(events, self.delta)
