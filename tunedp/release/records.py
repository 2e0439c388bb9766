"""What the driver knows about one trial: an immutable record inside the privacy boundary.

A record is built once from what the trial reported and replaced (never
patched) as the driver learns more — its test metric after selection, its
checkpoint folder while it is kept. Whether any of it may leave the driver is
decided by :mod:`tunedp.release.disclosure`, not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["TrialRecord", "TrialStatus"]

TrialStatus = Literal["completed", "stopped", "failed"]


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """One trial as the driver saw it: its point, status, released scores and bookkeeping."""

    point: dict[str, float]
    hyperparameters: dict[str, float]
    status: TrialStatus
    #: The model variant it trained (``None``: the workload's default).
    variant: str | None = None
    released_scores: tuple[float, ...] = ()
    test_metric: float | None = None
    #: Why it failed, as it may be shown (see :mod:`tunedp.run.failures`): ``Type: message``
    #: when the message cannot carry data, else the type with the message withheld.
    error: str | None = None
    #: Whether ``error`` is data-independent, so it may be shown under every release policy.
    error_public: bool = False
    node_id: str | None = None
    #: Where the trial trained ("cpu", "cuda:0") and the GPUs Ray assigned it (bookkeeping).
    device: str | None = None
    gpu_ids: tuple[str, ...] = ()
    checkpoint_path: str | None = None
    train_seconds: float = 0.0
    wall_time_s: float = 0.0

    def __post_init__(self) -> None:
        # Accept any sequence (Tune hands lists) but store an immutable tuple.
        object.__setattr__(self, "released_scores", tuple(float(s) for s in self.released_scores))

    @property
    def final_score(self) -> float:
        return self.released_scores[-1] if self.released_scores else -math.inf

    def public_view(self) -> dict[str, Any]:
        """Every field that may be shown once this record is disclosable (the report's names)."""
        return {
            "point": self.point,
            **({"variant": self.variant} if self.variant is not None else {}),
            "hyperparameters": self.hyperparameters,
            "status": self.status,
            "released_scores": list(self.released_scores),
            "final_score": self.released_scores[-1] if self.released_scores else None,
            "error": self.error,
        }
