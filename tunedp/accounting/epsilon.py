"""ε of a DpEvent: the RDP accountant (what the ledger uses) and PLD (a second opinion).

The RDP accountant is the only one in dp_accounting that supports
``RepeatAndSelectDpEvent``, so it is the one every charge is made with. The PLD
accountant is tighter for compositions; where it supports an event we report
its figure next to the RDP one so a reviewer sees how loose RDP is. Both
accountants fail closed: an event they cannot handle raises, never yields 0.

Why plans are calibrated with RDP, never with PLD (issue 12 §5; figures in
``benchmarks/README.md``, "Staged searches"). A σ calibrated so that PLD
prices a search at its share spends *more* than that share in the only
currency the ledger can add up: the ledger composes every charge (repeat-and-
select included, which PLD cannot price) with RDP, so it would record the
RDP ε of that σ — 3.29 for a Fashion-MNIST run that PLD prices at 3 — and
refuse or overspend the user's share. A mixed ledger would be sound only as
a minimum of bounds *at one δ*: the RDP composition of every charge, or the
basic composition Σεᵢ of per-charge (εᵢ, δᵢ) figures with Σδᵢ ≤ δ fixed in
advance. The second loses RDP's sublinear composition across searches and
needs δ split before the first search, and for a two-stage charge, whose
stage 1 is repeat-and-select, basic composition of RDP stage 1 and PLD
stage 2 (3.14) is already worse than their RDP composition (3.00). So PLD
stays a second opinion, shown and never charged.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict

import numpy as np
from dp_accounting import dp_event
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant

from tunedp.accounting.hypo import HypoRdpAccountant

__all__ = ["UnsupportedEventError", "pld_epsilon", "rdp_epsilon"]

#: Rényi orders: dp_accounting's defaults plus larger ones, which matter for
#: small δ with strongly subsampled mechanisms and for repeat-and-select.
RDP_ORDERS: tuple[float, ...] = tuple(
    [1.0 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [80, 96, 128, 192, 256, 512, 1024]
)

#: PLD discretisation: pessimistic estimate (an upper bound) at this grid.
PLD_DISCRETIZATION = 1e-3


class _DroppedOrderFilter(logging.Filter):
    """Silences dp_accounting's note that a Rényi order's series did not converge.

    The accountant then excludes that order, which can only raise ε (the
    minimum is over fewer orders): the conservative outcome, so the warning
    carries nothing a user must act on. Every other absl message passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to converge" not in record.getMessage()


logging.getLogger("absl").addFilter(_DroppedOrderFilter())


class UnsupportedEventError(ValueError):
    """The accountant cannot analyse this event; we never treat that as ε = 0."""


_MISSING = object()


class _Remembered:
    """A bounded, thread-safe map of pure figures by their inputs; the least recently used go first.

    Keys must be hashable; :func:`_key` says whether they are (an event with
    an unhashable part is priced afresh every time, as before).
    """

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._items: OrderedDict[tuple[object, ...], object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...]) -> object:
        """The figure under ``key`` (now the most recent), or ``_MISSING``."""
        with self._lock:
            if key not in self._items:
                return _MISSING
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: tuple[object, ...], value: object) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.kept:
                self._items.popitem(last=False)

    def values(self) -> list[object]:
        with self._lock:
            return list(self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def _key(*parts: object) -> tuple[object, ...] | None:
    """``parts`` as a key of :class:`_Remembered`, or ``None`` where one of them cannot be hashed."""
    try:
        hash(parts)
    except TypeError:
        return None
    return parts


#: Each step's RDP curve (one float per order), by (event, orders, neighbouring relation): 4096 kept.
_STEP_CURVES = _Remembered(kept=4096)


class StepCurveRdpAccountant(HypoRdpAccountant):
    """The RDP accountant that prices each distinct step once per process.

    Why: a plan prices the same steps many times over — the search ε at the
    calibrated σ after calibration priced it, the trial and naive figures,
    the ledger's admission check (every earlier charge composed again), the
    charge itself — and each pricing of a Poisson-subsampled Gaussian step
    is dp_accounting's series over every Rényi order (~0.3 s at
    :data:`RDP_ORDERS`). The curve of a leaf event (a ``GaussianDpEvent``
    or a ``PoissonSampledDpEvent``) at this accountant's orders depends on
    nothing else, so it is computed once, by dp_accounting on a fresh
    accountant, and added ``count`` times exactly as dp_accounting adds it
    (``rdp += count * curve``, the same floating-point operations). Every
    other event is traversed by dp_accounting as before.
    """

    def _maybe_compose(
        self, event: dp_event.DpEvent, count: int, do_compose: bool
    ) -> rdp_privacy_accountant.CompositionErrorDetails | None:
        leaf = isinstance(event, dp_event.GaussianDpEvent | dp_event.PoissonSampledDpEvent)
        key = _key(event, self._orders.tobytes(), self._neighboring_relation) if leaf and do_compose else None
        if key is None:
            return super()._maybe_compose(event, count, do_compose)
        curve = _STEP_CURVES.get(key)
        if curve is _MISSING:
            fresh = rdp_privacy_accountant.RdpAccountant(list(self._orders), self._neighboring_relation)
            error_details = fresh._maybe_compose(event, 1, True)
            if error_details is not None:
                return error_details
            curve = fresh._rdp
            curve.flags.writeable = False
            _STEP_CURVES.put(key, curve)
        assert isinstance(curve, np.ndarray)
        self._rdp += count * curve
        return None


def rdp_accountant() -> rdp_privacy_accountant.RdpAccountant:
    """dp_accounting's RDP accountant at :data:`RDP_ORDERS`, which also prices a ``hypo`` search
    (:class:`~tunedp.accounting.hypo.HypoDpEvent`, DP-HyPO's Theorem 1) and prices each step once
    per process (:class:`StepCurveRdpAccountant`)."""
    return StepCurveRdpAccountant(list(RDP_ORDERS))


def rdp_epsilon(event: dp_event.DpEvent, delta: float) -> float:
    """ε at ``delta`` of ``event`` by the RDP accountant (add/remove adjacency)."""
    _check_delta(delta)
    accountant = rdp_accountant()
    if not accountant.supports(event):
        raise UnsupportedEventError(f"RDP accountant does not support event {type(event).__name__}")
    return float(accountant.compose(event).get_epsilon(delta))


#: PLD figures by (event, δ): 256 kept.
_PLD_FIGURES = _Remembered(kept=256)


def pld_epsilon(event: dp_event.DpEvent, delta: float) -> float | None:
    """ε at ``delta`` by the PLD accountant, or ``None`` if PLD cannot analyse the event
    (e.g. repeat-and-select).

    Remembered per process by (event, δ): a search shows the same second opinion
    in its plan, its report and its console (~0.4 s of convolutions each time);
    the figure is a pure function of the two, and it is never charged.
    """
    _check_delta(delta)
    key = _key(event, float(delta))
    remembered = _PLD_FIGURES.get(key) if key is not None else _MISSING
    if remembered is not _MISSING:
        assert remembered is None or isinstance(remembered, float)
        return remembered
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=PLD_DISCRETIZATION)
    figure = float(accountant.compose(event).get_epsilon(delta)) if accountant.supports(event) else None
    if key is not None:
        _PLD_FIGURES.put(key, figure)
    return figure


def _check_delta(delta: float) -> None:
    if not (math.isfinite(delta) and 0 < delta < 1):
        raise ValueError(f"Expected delta={delta} in (0, 1)")
