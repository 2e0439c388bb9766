"""Process-wide settings changed only for the duration of a block, then restored.

The driver quiets Ray's loggers and sets Tune's environment switches while a
search runs; a user's process (a notebook, their pipeline) gets its own
settings back afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = ["environment", "logger_levels"]


@contextmanager
def environment(settings: Mapping[str, str], *, override: bool = True) -> Iterator[None]:
    """Set ``settings`` in ``os.environ`` (only those not set unless ``override``); restore on exit."""
    saved = {key: os.environ.get(key) for key in settings}
    for key, value in settings.items():
        if override or key not in os.environ:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, previous in saved.items():
            if previous is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = previous


@contextmanager
def logger_levels(levels: Mapping[str, int]) -> Iterator[None]:
    """Set the named loggers' levels; restore each one's own level on exit."""
    saved = {name: logging.getLogger(name).level for name in levels}
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
