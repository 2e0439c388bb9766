"""What the ledger's audit commands show: refusals and under-reported curves (plain values)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CurveShortfall", "Refusal"]


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """A charge the server refused (over budget, or data that did not match): nothing was charged."""

    search_id: str
    refused_by: str
    day: str
    reason: str
    mode: str
    epsilon_after: float | None


@dataclass(frozen=True, kw_only=True)
class CurveShortfall:
    """A charge whose stored RDP curve is below its event's (the server was told less than was spent)."""

    search_id: str
    charged_by: str | None
    day: str
    orders: tuple[float, ...]
    stored_epsilon: float
    recomputed_epsilon: float
