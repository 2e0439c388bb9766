"""Why a trial failed, as it may be shown: which exception messages are safe to publish.

Everything leaving the driver is public, and an exception message is
arbitrary text: ``ValueError(f"bad label {row[14]!r}")`` would carry a row of
the private data out through the console. So a failure's *message* is shown
only for exception types whose messages are built from what the user wrote,
the code, or the machine — never from a data value:

==========================  =====================================================
shown (data-independent)    why
==========================  =====================================================
``UserFacingError``         tunedp's own config/plan/trial-settings errors
                            (``ConfigError``, ``TrialError``, …): built from the
                            config's values and raised before data is read
``FileNotFoundError``       a missing file: the message is a path and the
                            command that installs it (``DatasetNotFoundError``)
``ImportError``             a missing module: its name
``MemoryError`` and every   out of memory: sizes of allocations and devices
``OutOfMemoryError``
``TypeError``               a programming/type mismatch: type names
Ray's worker/node deaths    a process or node died: ids and addresses
==========================  =====================================================

Everything else — ``ValueError``, ``RuntimeError`` (torch raises it for NaNs
and for shape mismatches alike), ``KeyError``, ``IndexError``, … — may carry
data: its type name is shown and its message withheld. Shape errors are not
lost by this: the pre-flight runs a step on a synthetic batch and reports
them, in full, before anything is charged.

Ray wraps a trial's exception in ``RayTaskError(ValueError)`` whose text
starts with a coloured ``ray::ImplicitFunc.train()`` traceback; the real
exception is its ``cause``, unwrapped here without importing Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tunedp.errors import UserFacingError, one_line
from tunedp.release.disclosure import Disclosure
from tunedp.release.records import TrialRecord

__all__ = ["FailureReason", "describe_failure", "failure_reasons", "is_data_independent", "unwrap"]

#: Exception types whose messages cannot carry private data (see the table above).
SAFE_TYPES: tuple[type[BaseException], ...] = (UserFacingError, FileNotFoundError, ImportError, MemoryError, TypeError)
#: Safe by class name, for libraries this module must not import (torch, Ray).
SAFE_TYPE_NAMES = frozenset({"OutOfMemoryError", "WorkerCrashedError", "NodeDiedError", "OutOfDiskError"})
#: Wrappers whose ``cause`` is the exception the trial raised.
_WRAPPER_NAMES = frozenset({"RayTaskError", "TuneError", "RayActorError", "ActorDiedError"})


@dataclass(frozen=True)
class FailureReason:
    """One line saying why a trial failed, and whether it may be shown under every release policy."""

    text: str
    data_independent: bool


def unwrap(error: BaseException) -> BaseException:
    """The exception a trial raised, out of Ray's wrappers (``RayTaskError.cause``)."""
    seen = 0
    while seen < 10 and any(cls.__name__ in _WRAPPER_NAMES for cls in type(error).__mro__):
        cause = getattr(error, "cause", None)
        if not isinstance(cause, BaseException) or cause is error:
            break
        error, seen = cause, seen + 1
    return error


def _type_name(error: BaseException) -> str:
    """The exception's own type name (Ray's dual classes ``RayTaskError(ValueError)`` read as ``ValueError``)."""
    name = type(error).__name__
    if name.startswith("RayTaskError(") and name.endswith(")"):
        return name[len("RayTaskError(") : -1]
    return name


def is_data_independent(error: BaseException) -> bool:
    """Whether ``error``'s message is free of private data by construction (its type; see the table)."""
    if isinstance(error, SAFE_TYPES):
        return True
    return any(cls.__name__ in SAFE_TYPE_NAMES for cls in type(error).__mro__)


def describe_failure(error: BaseException) -> FailureReason:
    """The failure as one line: ``Type: message`` if data-independent, else the type with the message withheld."""
    cause = unwrap(error)
    name = _type_name(cause)
    if is_data_independent(cause):
        return FailureReason(text=one_line(f"{name}: {cause}"), data_independent=True)
    return FailureReason(text=f"{name} (message withheld: it may depend on the private data)", data_independent=False)


def failure_reasons(records: Sequence[TrialRecord], disclosure: Disclosure) -> tuple[str, ...]:
    """The distinct reasons trials failed, as the report and console may show them.

    Data-independent reasons are shown under every release policy, without
    which trial or how many (a sorted set). Under ``release: all`` every
    trial is public anyway, so the withheld-message lines are listed too.
    A config or file error fails every trial alike, so its reason says
    nothing about K; an out-of-memory reason can depend on K (more trials,
    more chances) but not on the data — the issue's accepted trade-off.
    """
    reasons = {
        r.error for r in records if r.status == "failed" and r.error and (r.error_public or disclosure.releases_all)
    }
    return tuple(sorted(reasons))
