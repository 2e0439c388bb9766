"""SIGTERM handled as Ctrl-C: what ``timeout``, systemd, Kubernetes and batch schedulers send.

Python's default for SIGTERM is to die on the spot: Ray leaves a crash dump,
the ledger says ``running`` forever and no report is written. While a search
runs, :func:`sigterm_as_interrupt` routes SIGTERM to whatever handles SIGINT
at that moment — Tune's own handler while trials run (it stops them
cleanly), Python's ``KeyboardInterrupt`` otherwise — so both signals take the
one tested path: trials stopped, status ``interrupted``, report written,
nothing released, the charge kept. The caller exits with 143 (128 + SIGTERM)
instead of 130.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

__all__ = ["InterruptState", "sigterm_as_interrupt"]


@dataclass
class InterruptState:
    """Which signal interrupted the search (``None`` when none did)."""

    signal: int | None = None

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 143 for SIGTERM, 130 for Ctrl-C."""
        return 128 + (self.signal if self.signal is not None else signal.SIGINT)


@contextmanager
def sigterm_as_interrupt() -> Iterator[InterruptState]:
    """While inside, SIGTERM does what SIGINT would; the state records which one came."""
    state = InterruptState()
    if threading.current_thread() is not threading.main_thread():
        yield state  # signal handlers can only be set from the main thread
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        state.signal = signum
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler not in (signal.default_int_handler, on_sigint):
            handler(signal.SIGINT, frame)  # e.g. Tune's: stop the trials and return
        else:
            raise KeyboardInterrupt

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        state.signal = signum
        raise KeyboardInterrupt

    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)
