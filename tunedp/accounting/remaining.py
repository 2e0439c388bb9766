"""The remaining budget as displayed: global ε minus spent ε (pure arithmetic, no accountant).

ε does not add up under RDP composition — what a next search costs depends on
what it composes with — so this figure is a guide shown by ``budget show``,
the report and MLflow. Admission never uses it: the ledger recomposes every
stored event. Kept apart from the ledger so displaying a report does not
import the accountants.
"""

from __future__ import annotations

__all__ = ["remaining_epsilon"]


def remaining_epsilon(global_epsilon: float, spent_epsilon: float) -> float:
    """What is left of ``global_epsilon`` after ``spent_epsilon``, never below 0."""
    return max(0.0, global_epsilon - spent_epsilon)
