"""Selection: which trial a search releases.

The best trial by its final *released* score — never by anything that was
not released (an exact validation accuracy, a training loss). Trials that ran
to completion come first: an early-stopped trial's last score is from a
shorter run and it has no final model to release.
"""

from __future__ import annotations

from collections.abc import Sequence

from tunedp.release.records import TrialRecord

__all__ = ["select_best"]


def select_best(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """The released trial, or ``None`` when no trial produced a released score."""
    for status in ("completed", "stopped"):
        candidates = [r for r in records if r.status == status and r.released_scores]
        if candidates:
            return max(candidates, key=lambda r: r.final_score)
    return None
