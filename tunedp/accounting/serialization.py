"""DpEvents to JSON and back, through an explicit whitelist of event kinds.

The ledger stores *events*, not ε numbers, so that every admission recomputes
the composition from first principles. Stored data is untrusted: decoding
never imports or instantiates anything named in the data; it dispatches on a
fixed table of kinds, checks every field's type and range, and bounds the
nesting depth. Anything else is a :class:`EventDecodeError`.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from dp_accounting import dp_event

from tunedp.accounting.hypo import HypoDpEvent, check_hypo_parameters

__all__ = ["EVENT_KINDS", "EventDecodeError", "event_from_json", "event_to_json"]

MAX_DEPTH = 16
MAX_PARTS = 10_000


class EventDecodeError(ValueError):
    """A stored event is not one we wrote: unknown kind, bad field, or malformed."""


def event_to_json(event: dp_event.DpEvent) -> dict[str, Any]:
    """Encode an event of a whitelisted kind; any other kind is refused (fail closed).

    What is encoded is decoded again before it is returned: the ledger must
    never store a row its own decoder refuses (e.g. an empty composition or a
    σ outside the decoder's range), because such a row would make every later
    read of the ledger fail.
    """
    encoded = _encode(event)
    event_from_json(encoded)
    return encoded


def _encode(event: dp_event.DpEvent) -> dict[str, Any]:
    if isinstance(event, dp_event.NoOpDpEvent):
        return {"kind": "no_op"}
    if isinstance(event, dp_event.GaussianDpEvent):
        return {"kind": "gaussian", "noise_multiplier": float(event.noise_multiplier)}
    if isinstance(event, dp_event.PoissonSampledDpEvent):
        return {
            "kind": "poisson_sampled",
            "sampling_probability": float(event.sampling_probability),
            "event": _encode(event.event),
        }
    if isinstance(event, dp_event.SelfComposedDpEvent):
        if isinstance(event.count, bool) or int(event.count) != event.count:
            # int() would truncate 2.5 to 2 and store a cheaper event than was charged.
            raise EventDecodeError(f"count={event.count!r} is not an integer")
        return {"kind": "self_composed", "count": int(event.count), "event": _encode(event.event)}
    if isinstance(event, dp_event.ComposedDpEvent):
        return {"kind": "composed", "events": [_encode(e) for e in event.events]}
    if isinstance(event, dp_event.RepeatAndSelectDpEvent):
        return {
            "kind": "repeat_and_select",
            "mean": float(event.mean),
            # JSON has no infinity; Poisson (shape = ∞) is spelled out.
            "shape": "inf" if math.isinf(event.shape) else float(event.shape),
            "event": _encode(event.event),
        }
    if isinstance(event, HypoDpEvent):
        return {
            "kind": "hypo",
            "mean": float(event.mean),
            "shape": float(event.shape),  # finite: DP-HyPO covers no Poisson K
            "density_ratio": float(event.density_ratio),
            "event": _encode(event.event),
        }
    raise EventDecodeError(f"event kind {type(event).__name__} is not in the ledger's whitelist")


def event_from_json(data: object, *, _depth: int = 0) -> dp_event.DpEvent:
    """Decode what :func:`event_to_json` wrote; refuse everything else."""
    if _depth > MAX_DEPTH:
        raise EventDecodeError(f"event nesting deeper than {MAX_DEPTH}")
    if not isinstance(data, Mapping):
        raise EventDecodeError(f"expected an object, got {type(data).__name__}")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _DECODERS:
        raise EventDecodeError(f"unknown event kind {kind!r}; allowed: {', '.join(EVENT_KINDS)}")
    expected = _FIELDS[kind]
    if set(data) != expected:
        raise EventDecodeError(f"{kind} event has fields {sorted(data)}, expected {sorted(expected)}")
    return _DECODERS[kind](data, _depth)


def _number(data: Mapping[str, Any], key: str, *, low: float, high: float, low_open: bool) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventDecodeError(f"{key}={value!r} is not a finite number")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float (JSON allows any length)
        raise EventDecodeError(f"{key} is an integer too large for a float") from None
    if not finite:
        raise EventDecodeError(f"{key}={value!r} is not a finite number")
    if value < low or (low_open and value == low) or value > high:
        raise EventDecodeError(f"{key}={value!r} outside {'(' if low_open else '['}{low}, {high}]")
    return float(value)


def _count(data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**9:
        raise EventDecodeError(f"{key}={value!r} is not a count in [1, 1e9]")
    return value


def _no_op(data: Mapping[str, Any], depth: int) -> dp_event.DpEvent:
    return dp_event.NoOpDpEvent()


def _gaussian(data: Mapping[str, Any], depth: int) -> dp_event.DpEvent:
    sigma = _number(data, "noise_multiplier", low=0.0, high=1e12, low_open=True)
    return dp_event.GaussianDpEvent(sigma)


def _poisson(data: Mapping[str, Any], depth: int) -> dp_event.DpEvent:
    q = _number(data, "sampling_probability", low=0.0, high=1.0, low_open=True)
    return dp_event.PoissonSampledDpEvent(q, event_from_json(data["event"], _depth=depth + 1))


def _self_composed(data: Mapping[str, Any], depth: int) -> dp_event.DpEvent:
    return dp_event.SelfComposedDpEvent(event_from_json(data["event"], _depth=depth + 1), _count(data, "count"))


def _composed(data: Mapping[str, Any], depth: int) -> dp_event.DpEvent:
    events = data["events"]
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_PARTS:
        raise EventDecodeError(f"events must be a list of 1..{MAX_PARTS} events")
    return dp_event.ComposedDpEvent([event_from_json(e, _depth=depth + 1) for e in events])


def _repeat_and_select(data: Mapping[str, Any], depth: int) -> dp_event.DpEvent:
    mean = _number(data, "mean", low=1.0, high=1e6, low_open=False)
    if data["shape"] == "inf":
        shape = math.inf
    else:
        shape = _number(data, "shape", low=0.0, high=1e6, low_open=False)
    return dp_event.RepeatAndSelectDpEvent(event_from_json(data["event"], _depth=depth + 1), mean, shape)


def _hypo(data: Mapping[str, Any], depth: int) -> dp_event.DpEvent:
    mean = _number(data, "mean", low=1.0, high=1e6, low_open=False)
    shape = _number(data, "shape", low=0.0, high=1e6, low_open=False)
    ratio = _number(data, "density_ratio", low=1.0, high=1e6, low_open=False)
    try:
        check_hypo_parameters(mean=mean, shape=shape, density_ratio=ratio)
    except ValueError as error:
        raise EventDecodeError(str(error)) from None
    return HypoDpEvent(event_from_json(data["event"], _depth=depth + 1), mean, shape, ratio)


_DECODERS: dict[str, Callable[[Mapping[str, Any], int], dp_event.DpEvent]] = {
    "no_op": _no_op,
    "gaussian": _gaussian,
    "poisson_sampled": _poisson,
    "self_composed": _self_composed,
    "composed": _composed,
    "repeat_and_select": _repeat_and_select,
    "hypo": _hypo,
}
_FIELDS: dict[str, set[str]] = {
    "no_op": {"kind"},
    "gaussian": {"kind", "noise_multiplier"},
    "poisson_sampled": {"kind", "sampling_probability", "event"},
    "self_composed": {"kind", "count", "event"},
    "composed": {"kind", "events"},
    "repeat_and_select": {"kind", "mean", "shape", "event"},
    "hypo": {"kind", "mean", "shape", "density_ratio", "event"},
}
EVENT_KINDS: tuple[str, ...] = tuple(_DECODERS)
