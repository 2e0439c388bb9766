"""Calibrated σ remembered on disk, so a plan made twice is calibrated once — and always re-priced.

Why: calibration prices ten to fifteen candidate σ with dp_accounting's RDP
accountant, and most of that is its series for fractional Rényi orders
(0.3–0.5 s a candidate on 2 cores). ``tunedp plan`` followed by
``tunedp search`` of the same config, or a team re-running a shipped config,
paid for the same root-finding every time (2–5 s a plan; 13 s for
``search_spaces/digits.yaml``).

What is remembered is only the *answer* — the σ that an earlier
calibration of the very same problem returned — never an ε. A remembered σ
is used only after dp_accounting prices it again, uncached, and finds it
within budget and within :data:`~tunedp.accounting.calibration.LANDING_FRACTION`
of it, which is all that calibration promises. So a stale, edited or
colliding entry can at worst cost one extra pricing and a fresh
calibration; it can never make a charge larger than its budget, and the
ε a plan shows is computed from the σ it uses, as without the memo.

The key is a SHA-256 of everything the answer depends on: the event family
(the repr of its event at three probe σ, which names every parameter at
full precision), the target ε, δ, the Rényi orders, calibration's own
constants, and the versions of dp_accounting and of this scheme. An
entry holds one float and nothing of the data; its modification time is
set to the start of its UTC day, as every time tunedp writes is (a planned
search's σ is public anyway: ``tunedp plan`` prints it).

Where: ``$TUNEDP_CACHE_DIR``, else ``$XDG_CACHE_HOME/tunedp``, else
``~/.cache/tunedp``; ``TUNEDP_CACHE_DIR=off`` turns it off. Any error
reading or writing it is ignored: the memo only ever saves time.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

from dp_accounting import dp_event

__all__ = ["CalibrationMemo", "memo_key", "user_memo"]

#: Bump when what a key means, or how calibration answers, changes.
SCHEME = 1
#: The σ at which the event family is described in the key.
PROBES = (1.0, math.sqrt(3.0), 4.0)
#: The value of ``TUNEDP_CACHE_DIR`` that turns the memo off.
OFF = "off"


@functools.cache
def _dp_accounting_version() -> str:
    try:
        return metadata.version("dp-accounting")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "unknown"


def memo_key(
    make_event: Callable[[float], dp_event.DpEvent],
    *,
    target_epsilon: float,
    delta: float,
    orders: Sequence[float],
    constants: Sequence[float],
) -> str | None:
    """The memo's key for calibrating ``make_event`` to ``target_epsilon`` at ``delta``; ``None``: do not remember.

    An event whose repr names an object's address (``at 0x…``) is not
    described by its repr, so it is never remembered.
    """
    probes = [repr(make_event(sigma)) for sigma in PROBES]
    if any(" at 0x" in text for text in probes):
        return None
    described = {
        "scheme": SCHEME,
        "dp_accounting": _dp_accounting_version(),
        "orders": [repr(float(order)) for order in orders],
        "constants": [repr(float(value)) for value in constants],
        "target_epsilon": repr(float(target_epsilon)),
        "delta": repr(float(delta)),
        "events": probes,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


class CalibrationMemo:
    """One folder of remembered σ, one small JSON file each, named by :func:`memo_key`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def recall(self, key: str) -> float | None:
        """The σ remembered under ``key``, or ``None`` (absent, unreadable or not a positive finite number)."""
        try:
            value = json.loads((self.folder / f"{key}.json").read_text())["noise_multiplier"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        sigma = float(value)
        return sigma if math.isfinite(sigma) and sigma > 0 else None

    def remember(self, key: str, noise_multiplier: float) -> None:
        """Write ``noise_multiplier`` under ``key`` atomically (a reader sees the old file or the new one)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(handle, "w") as stream:
                    json.dump({"noise_multiplier": noise_multiplier}, stream)
                day = _utc_day_start()
                os.utime(temporary, (day, day))
                os.replace(temporary, self.folder / f"{key}.json")
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
        except OSError:
            return  # a read-only or full disk costs the next plan a calibration, nothing else


def _utc_day_start() -> float:
    now = time.time()
    return now - now % 86_400


def user_memo() -> CalibrationMemo | None:
    """The planners' memo: ``$TUNEDP_CACHE_DIR`` (``off``: none), ``$XDG_CACHE_HOME/tunedp``, ``~/.cache/tunedp``."""
    configured = os.environ.get("TUNEDP_CACHE_DIR")
    if configured is not None and configured.strip().lower() == OFF:
        return None
    if configured:
        return CalibrationMemo(Path(configured).expanduser().absolute() / "calibration")
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore a relative value
        return CalibrationMemo(Path(xdg) / "tunedp" / "calibration")
    try:
        return CalibrationMemo(Path.home() / ".cache" / "tunedp" / "calibration")
    except RuntimeError:  # no home directory to resolve
        return None
