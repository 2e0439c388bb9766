"""The cheap pre-flight checks: the ledger, the output folder, the data files, the Ray address.

Each reads no private row and starts neither torch nor Ray; each failure is
a :class:`PreflightError` (one line naming the field and the fix, exit code
2, nothing charged).
"""

from __future__ import annotations

import math
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from tunedp.errors import UserFacingError, one_line

if TYPE_CHECKING:
    from dp_accounting.dp_event import DpEvent

    from tunedp.ledger.sqlite import PrivacyLedger
    from tunedp.planning.single_stage import SearchPlan

__all__ = [
    "RAY_CONNECT_TIMEOUT_S",
    "PreflightError",
    "check_admissible",
    "check_data_files",
    "check_ledger_delta",
    "check_output",
    "check_ray_address",
]

#: Seconds to wait for Ray at --ray-address before giving up (before any charge).
RAY_CONNECT_TIMEOUT_S = 10.0


class PreflightError(UserFacingError):
    """A pre-flight check failed: one line naming the field and the fix; nothing was charged."""


def check_admissible(plan: SearchPlan, ledger: PrivacyLedger, *, event: DpEvent | None = None) -> None:
    """Refuse (nothing charged) a search the ledger cannot admit, before anything else is started.

    A dry run of :meth:`PrivacyLedger.charge`; the charge itself re-checks
    under a lock, so a concurrent search cannot slip in between. ``event``
    is what will be charged when it is not the plan's (an audit charges one trial).
    """
    from tunedp.errors import BudgetExceededError

    check_ledger_delta(plan, ledger)
    fits, after = ledger.admissible(plan.event if event is None else event)
    if not fits:
        raise BudgetExceededError(
            f"budget: dataset {ledger.dataset!r} has spent epsilon={ledger.spent_epsilon():.4g} of "
            f"{ledger.epsilon:g}; this search would bring it to {after:.4g}; lower --budget or raise the global budget"
        )


def check_ledger_delta(plan: SearchPlan, ledger: PrivacyLedger) -> None:
    """Refuse a plan priced at another δ than the ledger's (nothing charged).

    σ is calibrated so the search costs its budget at the *config's* δ, but
    the ledger records every charge at *its* δ: at a larger config δ the
    ledger would record more than the budget the plan printed (ε 3.46 for a
    plan that said 3.00 at δ = 5e-4 against a ledger at 1e-5).
    """
    if not math.isclose(plan.delta, ledger.delta, rel_tol=1e-9, abs_tol=0.0):
        raise PreflightError(
            f"budget.delta: the config prices the search at delta={plan.delta:g} but ledger {ledger.dataset!r} "
            f"accounts at delta={ledger.delta:g}; give --delta {ledger.delta:g}"
        )


def check_output(output: Path | None, *, force: bool) -> None:
    """Refuse an existing non-empty output folder: it may hold an earlier, paid-for result."""
    if output is None:
        return
    if output.exists() and not output.is_dir():
        raise PreflightError(f"--output: {output} is a file; give a folder")
    if (output / ".tunedp-state").is_dir():  # tunedp.run.resume.STATE_DIR; refused even with --force
        raise PreflightError(
            f"--output: {output} holds an interrupted search; continue it with `tunedp search --resume {output}` "
            f"or give it up with `tunedp search --abandon {output}`"
        )
    if output.is_dir() and any(output.iterdir()) and not force:
        raise PreflightError(
            f"--output: {output} is not empty (an earlier search's results?); give a new folder or add --force"
        )


def check_data_files(workload: object) -> None:
    """The workload's data files exist; a missing one is named with the command that installs it.

    The files are the ones the workload's declaration locates (``Workload.data_files``):
    built-in and third-party workloads alike; nothing is read. A ``csv``
    workload's file was already read for its row count by planning, and a
    workload that cannot be resolved is refused by the model check next.
    """
    from tunedp.workloads import resolve_workload

    if not isinstance(workload, str):
        return
    try:
        locate = resolve_workload(workload).data_files
    except (ValueError, TypeError, ImportError):
        return
    if locate is None:
        return  # nothing declared: the loader finds a missing file itself
    try:
        locate()
    except FileNotFoundError as error:
        raise PreflightError(f"workload: {one_line(str(error))}") from None


def check_ray_address(address: str | None, *, timeout_s: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Something answers at ``address`` within ``timeout_s`` (a TCP probe; ``None``: a local Ray, nothing to probe).

    Before Ray is imported or connected: an address where nothing listens is
    one line and nothing charged — not minutes of Ray's own retries.
    """
    if address is None:
        return
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=timeout_s):
            pass
    except OSError as error:
        reason = "timed out" if isinstance(error, TimeoutError) else (error.strerror or type(error).__name__)
        raise PreflightError(
            f"--ray-address: nothing answers at {address} ({reason.lower()} within {timeout_s:g} s); "
            "start the cluster (`ray start --head`) or drop --ray-address to run locally"
        ) from None


def _host_port(address: str) -> tuple[str, int] | None:
    """host and port of a ``host:port`` or ``ray://host:port`` address (None for ``auto`` and the like)."""
    bare = address.split("://", 1)[-1]
    host, sep, port = bare.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)
