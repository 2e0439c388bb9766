"""Event JSON: every kind round-trips exactly, and anything we did not write is refused.

The ledger recomputes every admission from stored events, so two things must
hold: what we store decodes to the same event (same ε), and stored data —
untrusted, possibly hand-edited — can never decode to something cheaper, to a
kind outside the whitelist, or trigger an import.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from dp_accounting import dp_event
from hypothesis import given, settings
from hypothesis import strategies as st

from tunedp.accounting.epsilon import rdp_accountant, rdp_epsilon
from tunedp.accounting.hypo import HypoDpEvent
from tunedp.accounting.serialization import (
    EVENT_KINDS,
    MAX_DEPTH,
    MAX_PARTS,
    EventDecodeError,
    event_from_json,
    event_to_json,
)

DELTA = 1e-5


def _through_text(event: dp_event.DpEvent) -> dp_event.DpEvent:
    """What the ledger does: encode, write JSON text, read it back, decode."""
    return event_from_json(json.loads(json.dumps(event_to_json(event), sort_keys=True)))


# ----------------------------------------------------------------------------- round trips

_sigma = st.floats(min_value=0.3, max_value=1e3)
_q = st.floats(min_value=1e-5, max_value=1.0)
_gaussian = st.builds(dp_event.GaussianDpEvent, _sigma)
_leaves = st.one_of(
    _gaussian,
    st.just(dp_event.NoOpDpEvent()),
    st.builds(dp_event.PoissonSampledDpEvent, _q, _gaussian),
)


def _extend(children: st.SearchStrategy[dp_event.DpEvent]) -> st.SearchStrategy[dp_event.DpEvent]:
    return st.one_of(
        st.builds(dp_event.SelfComposedDpEvent, children, st.integers(1, 10_000)),
        st.builds(dp_event.ComposedDpEvent, st.lists(children, min_size=1, max_size=3)),
        st.builds(
            dp_event.RepeatAndSelectDpEvent,
            children,
            st.floats(min_value=1.0, max_value=100.0),
            st.sampled_from([0.0, 0.5, 1.0, 2.0, math.inf]),
        ),
        st.builds(dp_event.PoissonSampledDpEvent, _q, children),
    )


_events = st.recursive(_leaves, _extend, max_leaves=6)


@settings(max_examples=150, deadline=None)
@given(event=_events)
def test_every_whitelisted_event_round_trips_exactly(event: dp_event.DpEvent) -> None:
    assert _through_text(event) == event


def _extend_priceable(children: st.SearchStrategy[dp_event.DpEvent]) -> st.SearchStrategy[dp_event.DpEvent]:
    return st.one_of(
        st.builds(dp_event.SelfComposedDpEvent, children, st.integers(1, 10_000)),
        st.builds(dp_event.ComposedDpEvent, st.lists(children, min_size=1, max_size=3)),
        st.builds(
            dp_event.RepeatAndSelectDpEvent,
            children,
            st.floats(min_value=1.0, max_value=100.0),
            st.sampled_from([0.0, 0.5, 1.0, 2.0, math.inf]),
        ),
    )


# Events the RDP accountant can price (subsampling only directly around a Gaussian).
_priceable = st.recursive(
    st.one_of(_gaussian, st.builds(dp_event.PoissonSampledDpEvent, _q, _gaussian)), _extend_priceable, max_leaves=5
)


@settings(max_examples=25, deadline=None)
@given(event=_priceable)
def test_round_trip_preserves_epsilon(event: dp_event.DpEvent) -> None:
    assert rdp_accountant().supports(event)
    assert rdp_epsilon(_through_text(event), DELTA) == rdp_epsilon(event, DELTA)


def test_poisson_repetitions_are_stored_as_the_string_inf() -> None:
    """JSON has no infinity; a Poisson K must survive as shape = ∞, not as a finite shape."""
    event = dp_event.RepeatAndSelectDpEvent(dp_event.GaussianDpEvent(2.0), 10.0, math.inf)
    assert event_to_json(event)["shape"] == "inf"
    assert _through_text(event) == event


def test_every_kind_in_the_whitelist_is_exercised() -> None:
    samples = [
        dp_event.NoOpDpEvent(),
        dp_event.GaussianDpEvent(1.0),
        dp_event.PoissonSampledDpEvent(0.1, dp_event.GaussianDpEvent(1.0)),
        dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(1.0), 3),
        dp_event.ComposedDpEvent([dp_event.GaussianDpEvent(1.0)]),
        dp_event.RepeatAndSelectDpEvent(dp_event.GaussianDpEvent(1.0), 3.0, 1.0),
        HypoDpEvent(dp_event.GaussianDpEvent(1.0), 3.0, 1.0, 1.5),
    ]
    assert sorted(event_to_json(e)["kind"] for e in samples) == sorted(EVENT_KINDS)


# ----------------------------------------------------------------------------- refusals on decode

_GOOD_STEP: dict[str, Any] = {
    "kind": "self_composed",
    "count": 100,
    "event": {
        "kind": "poisson_sampled",
        "sampling_probability": 0.01,
        "event": {"kind": "gaussian", "noise_multiplier": 1.0},
    },
}


def _with(path: tuple[str, ...], value: object) -> dict[str, Any]:
    data = copy.deepcopy(_GOOD_STEP)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


_GAUSS = ("event", "event", "noise_multiplier")
_Q = ("event", "sampling_probability")
_RS = {"kind": "repeat_and_select", "mean": 5.0, "shape": 1.0, "event": {"kind": "gaussian", "noise_multiplier": 1.0}}

REFUSED: dict[str, object] = {
    "unknown kind laplace": {"kind": "laplace", "parameter": 1.0},
    "kind naming a module": {"kind": "os.system"},
    "kind naming a class": {"kind": "dp_accounting.dp_event.NonPrivateDpEvent"},
    "kind missing": {"noise_multiplier": 1.0},
    "kind not a string": {"kind": 3, "noise_multiplier": 1.0},
    "not an object": [_GOOD_STEP],
    "null": None,
    "extra field": _with(("event", "event", "extra"), 1),
    "extra top-level field": {**_GOOD_STEP, "epsilon": 0.0},
    "missing field": {"kind": "gaussian"},
    "sigma NaN": _with(_GAUSS, math.nan),
    "sigma inf": _with(_GAUSS, math.inf),
    "sigma -inf": _with(_GAUSS, -math.inf),
    "sigma zero": _with(_GAUSS, 0.0),
    "sigma negative": _with(_GAUSS, -1.0),
    "sigma true": _with(_GAUSS, True),
    "sigma string": _with(_GAUSS, "1.0"),
    "sigma huge int": _with(_GAUSS, 10**400),
    "sigma above range": _with(_GAUSS, 1e13),
    "q zero": _with(_Q, 0.0),
    "q negative": _with(_Q, -0.01),
    "q above one": _with(_Q, 1.5),
    "q true": _with(_Q, True),
    "count zero": _with(("count",), 0),
    "count negative": _with(("count",), -5),
    "count float": _with(("count",), 100.0),
    "count fractional": _with(("count",), 2.5),
    "count true": _with(("count",), True),
    "count above 1e9": _with(("count",), 10**10),
    "composed empty": {"kind": "composed", "events": []},
    "composed not a list": {"kind": "composed", "events": {"kind": "no_op"}},
    "composed too many parts": {"kind": "composed", "events": [{"kind": "no_op"}] * (MAX_PARTS + 1)},
    "mean below one": {**_RS, "mean": 0.5},
    "mean NaN": {**_RS, "mean": math.nan},
    "mean true": {**_RS, "mean": True},
    "shape negative": {**_RS, "shape": -1.0},
    "shape Infinity spelled otherwise": {**_RS, "shape": "Infinity"},
    "shape false": {**_RS, "shape": False},
    "shape NaN": {**_RS, "shape": math.nan},
}


@pytest.mark.parametrize("data", list(REFUSED.values()), ids=list(REFUSED))
def test_malformed_or_foreign_event_is_refused(data: object) -> None:
    with pytest.raises(EventDecodeError):
        event_from_json(data)


def test_nan_and_infinity_literals_in_json_text_are_refused() -> None:
    """Python's json accepts NaN/Infinity literals; the decoder must not."""
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        text = '{"kind": "gaussian", "noise_multiplier": ' + literal + "}"
        with pytest.raises(EventDecodeError):
            event_from_json(json.loads(text))


def _nested(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": "gaussian", "noise_multiplier": 1.0}
    for _ in range(depth):
        data = {"kind": "self_composed", "count": 1, "event": data}
    return data


def test_nesting_is_bounded() -> None:
    event_from_json(_nested(MAX_DEPTH))
    with pytest.raises(EventDecodeError, match="deeper"):
        event_from_json(_nested(MAX_DEPTH + 1))
    with pytest.raises(EventDecodeError, match="deeper"):
        event_from_json(_nested(500))


def test_decoding_never_imports_a_module_named_in_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kind that names an importable module is refused, and the module is not imported."""
    marker = tmp_path / "imported"
    (tmp_path / "tunedp_probe_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Event: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for kind in ("tunedp_probe_module", "tunedp_probe_module.Event", "tunedp_probe_module:Event"):
        with pytest.raises(EventDecodeError):
            event_from_json({"kind": kind})
    assert not marker.exists()
    assert "tunedp_probe_module" not in sys.modules


# ----------------------------------------------------------------------------- refusals on encode

ENCODE_REFUSED: dict[str, dp_event.DpEvent] = {
    "kind outside the whitelist": dp_event.LaplaceDpEvent(1.0),
    "nested kind outside the whitelist": dp_event.ComposedDpEvent(
        [dp_event.GaussianDpEvent(1.0), dp_event.NonPrivateDpEvent()]
    ),
    "empty composition": dp_event.ComposedDpEvent([]),
    "sigma zero": dp_event.GaussianDpEvent(0.0),
    "sigma out of the decoder's range": dp_event.GaussianDpEvent(1e13),
    "fractional count": dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(1.0), 2.5),
    "one level deeper than the decoder accepts": dp_event.SelfComposedDpEvent(event_from_json(_nested(MAX_DEPTH)), 1),
}


@pytest.mark.parametrize("event", list(ENCODE_REFUSED.values()), ids=list(ENCODE_REFUSED))
def test_encoder_refuses_what_the_decoder_would_refuse(event: dp_event.DpEvent) -> None:
    """Otherwise the ledger would store a row that makes every later read fail."""
    with pytest.raises(EventDecodeError):
        event_to_json(event)
