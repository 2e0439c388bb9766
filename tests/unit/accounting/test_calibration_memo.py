"""The calibration memo: a remembered σ is re-priced and used only when it keeps calibration's promises.

Each test calibrates a real search event (the planner's construction) with
and without a memo in a temporary folder; "priced" counts the pricings
calibration asks dp_accounting for, by wrapping the function it calls.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dp_accounting import dp_event

import tunedp.accounting.calibration as calibration_module
from tunedp.accounting.calibration import LANDING_FRACTION, calibrate_noise_multiplier
from tunedp.accounting.calibration_memo import CalibrationMemo, memo_key, user_memo
from tunedp.accounting.epsilon import RDP_ORDERS, rdp_epsilon
from tunedp.accounting.schedule import NoiseSegment
from tunedp.accounting.search_event import SearchShape, search_event
from tunedp.accounting.trial_event import TrialPlan

DELTA = 1e-5
TARGET = 2.0


def _family(q: float = 0.02, steps: int = 200, mean: float = 3.0) -> Callable[[float], dp_event.DpEvent]:
    def make_event(sigma: float) -> dp_event.DpEvent:
        trial = TrialPlan(
            dataset_size=10_000,
            sampling_rate=q,
            steps=steps,
            segments=(NoiseSegment(noise_multiplier=sigma, steps=steps),),
            evaluation_steps=(steps,),
            score_noise_multiplier=20.0,
        )
        shape = SearchShape(mode="random", release="best", expected_trials=mean, max_trials=None, count_shape=1.0)
        return search_event(trial.dp_event(), shape)

    return make_event


@pytest.fixture
def priced(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ε calibration asks for, in order (the real pricing still runs)."""
    seen: list[float] = []

    def counting(event: dp_event.DpEvent, delta: float) -> float:
        epsilon = rdp_epsilon(event, delta)
        seen.append(epsilon)
        return epsilon

    monkeypatch.setattr(calibration_module, "rdp_epsilon", counting)
    return seen


def _key(make_event: Callable[[float], dp_event.DpEvent], target: float = TARGET, delta: float = DELTA) -> str:
    key = memo_key(
        make_event,
        target_epsilon=target,
        delta=delta,
        orders=RDP_ORDERS,
        constants=(
            calibration_module.MAX_NOISE_MULTIPLIER,
            calibration_module.SIGMA_RELATIVE_TOLERANCE,
            calibration_module.LANDING_FRACTION,
        ),
    )
    assert key is not None
    return key


def test_a_remembered_sigma_is_the_calibrated_one_and_costs_one_pricing(tmp_path: Path, priced: list[float]) -> None:
    make_event = _family()
    cold = calibrate_noise_multiplier(make_event, target_epsilon=TARGET, delta=DELTA)
    from_scratch = len(priced)
    memo = CalibrationMemo(tmp_path / "memo")
    first = calibrate_noise_multiplier(make_event, target_epsilon=TARGET, delta=DELTA, memo=memo)
    priced.clear()
    again = calibrate_noise_multiplier(make_event, target_epsilon=TARGET, delta=DELTA, memo=memo)
    assert first == cold and again == cold  # the same σ and the same ε, to the bit
    assert len(priced) == 1 and from_scratch >= 5, (len(priced), from_scratch)
    # ε of the σ it answers with is recomputed, not read from anywhere.
    assert again.epsilon == rdp_epsilon(make_event(again.noise_multiplier), DELTA) <= TARGET


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(lambda sigma: {"noise_multiplier": sigma * 0.8}, id="too little noise: over budget"),
        pytest.param(lambda sigma: {"noise_multiplier": sigma * 1.5}, id="too much noise: lands below 99 %"),
        pytest.param(lambda sigma: {"noise_multiplier": -sigma}, id="negative"),
        pytest.param(lambda sigma: {"noise_multiplier": "NaN"}, id="not a number"),
        pytest.param(lambda sigma: {"noise_multiplier": True}, id="a boolean"),
        pytest.param(lambda sigma: {"sigma": sigma}, id="another field"),
        pytest.param(lambda sigma: [sigma], id="not an object"),
        pytest.param(None, id="not JSON"),
    ],
)
def test_an_edited_or_broken_entry_is_ignored_and_the_answer_unchanged(
    tmp_path: Path, entry: Callable[[float], object] | None
) -> None:
    make_event = _family()
    cold = calibrate_noise_multiplier(make_event, target_epsilon=TARGET, delta=DELTA)
    memo = CalibrationMemo(tmp_path)
    path = tmp_path / f"{_key(make_event)}.json"
    path.write_text("{not json" if entry is None else json.dumps(entry(cold.noise_multiplier)))
    answer = calibrate_noise_multiplier(make_event, target_epsilon=TARGET, delta=DELTA, memo=memo)
    assert answer == cold
    assert LANDING_FRACTION * TARGET <= rdp_epsilon(make_event(answer.noise_multiplier), DELTA) <= TARGET
    # ... and the calibrated σ replaced what was there.
    assert json.loads(path.read_text()) == {"noise_multiplier": cold.noise_multiplier}


def test_the_key_names_the_family_target_and_delta() -> None:
    keys = {
        _key(_family()),
        _key(_family(q=0.021)),
        _key(_family(steps=201)),
        _key(_family(mean=4.0)),
        _key(_family(), target=2.5),
        _key(_family(), delta=1e-6),
    }
    assert len(keys) == 6
    assert _key(_family()) == _key(_family())  # and nothing else: the same problem, the same key


def test_an_event_described_by_an_address_is_never_remembered() -> None:
    class Opaque(dp_event.DpEvent):  # type: ignore[misc]
        """A custom event whose parameters its repr does not show."""

        __repr__ = object.__repr__

    assert memo_key(lambda sigma: Opaque(), target_epsilon=1.0, delta=DELTA, orders=RDP_ORDERS, constants=()) is None


def test_an_unwritable_memo_costs_time_only(tmp_path: Path) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("")
    memo = CalibrationMemo(blocker / "memo")  # under a file: every write fails
    make_event = _family()
    answer = calibrate_noise_multiplier(make_event, target_epsilon=TARGET, delta=DELTA, memo=memo)
    assert answer == calibrate_noise_multiplier(make_event, target_epsilon=TARGET, delta=DELTA)


def test_an_entry_holds_one_float_and_carries_only_the_utc_day(tmp_path: Path) -> None:
    make_event = _family()
    calibrate_noise_multiplier(make_event, target_epsilon=TARGET, delta=DELTA, memo=CalibrationMemo(tmp_path))
    (entry,) = tmp_path.iterdir()
    assert entry.name == f"{_key(make_event)}.json"
    (value,) = json.loads(entry.read_text()).values()
    assert isinstance(value, float) and math.isfinite(value)
    assert entry.stat().st_mtime % 86_400 == 0 and time.time() - entry.stat().st_mtime < 86_400 + 60
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_where_the_memo_lives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUNEDP_CACHE_DIR", str(tmp_path / "c"))
    memo = user_memo()
    assert memo is not None and memo.folder == tmp_path / "c" / "calibration"
    monkeypatch.setenv("TUNEDP_CACHE_DIR", "off")
    assert user_memo() is None
    monkeypatch.delenv("TUNEDP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    memo = user_memo()
    assert memo is not None and memo.folder == tmp_path / "xdg" / "tunedp" / "calibration"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    memo = user_memo()
    assert memo is not None and memo.folder == tmp_path / "home" / ".cache" / "tunedp" / "calibration"
    assert not os.path.exists(tmp_path / "home")  # nothing is made until something is remembered
