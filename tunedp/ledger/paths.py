"""Where sqlite ledgers live on disk, and the checks a dataset name and a ledger folder must pass.

One file per protected dataset, ``$TUNEDP_HOME/ledgers/<dataset>.sqlite`` by
default, in a per-user folder that does not depend on where a command was
started (a budget must not reset because a search ran from another folder).
A dataset name is also a file name, so it is held to a safe alphabet; both
backends use the same rule, so a dataset can move from one to the other.

This module imports neither torch nor Ray.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from tunedp.errors import LedgerError

__all__ = ["check_dataset_name", "check_writable_folder", "default_ledger_path", "tunedp_home"]

_DATASET_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def default_ledger_path(dataset: str) -> Path:
    """``$TUNEDP_HOME/ledgers/<dataset>.sqlite``, else the per-user data dir (never the current directory).

    The per-user dir is ``$XDG_DATA_HOME/tunedp`` (when absolute) or
    ``~/.local/share/tunedp``: a budget must not reset because a search was
    started from another folder. ``$TUNEDP_LEDGER_DIR`` (the old per-folder
    override) is refused rather than ignored, so that nobody charges a ledger
    other than the one they think.
    """
    check_dataset_name(dataset)
    if os.environ.get("TUNEDP_LEDGER_DIR"):
        raise LedgerError(
            "TUNEDP_LEDGER_DIR is no longer read; unset it and use TUNEDP_HOME (ledgers live in "
            "$TUNEDP_HOME/ledgers) or --ledger PATH"
        )
    return tunedp_home() / "ledgers" / f"{dataset}.sqlite"


def tunedp_home() -> Path:
    """``$TUNEDP_HOME``, else ``$XDG_DATA_HOME/tunedp``, else ``~/.local/share/tunedp`` (absolute)."""
    home = os.environ.get("TUNEDP_HOME")
    if home:
        return Path(home).expanduser().absolute()
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore a relative value
        return Path(xdg) / "tunedp"
    return Path.home() / ".local" / "share" / "tunedp"


def check_dataset_name(dataset: str) -> None:
    """Refuse a dataset name outside letters, digits, ``_``, ``-``, ``.`` (1 to 64 characters)."""
    if not _DATASET_NAME.match(dataset):
        raise LedgerError(f"--dataset: {dataset!r} is not a valid dataset name; use letters, digits, '_', '-', '.'")


def check_writable_folder(folder: Path) -> None:
    """Refuse, in one line naming the folder and the cause, a ledger folder that cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tunedp-write-check-"):
            pass
    except OSError as error:
        raise LedgerError(
            f"ledger folder {folder}: cannot write there ({error.strerror or error}); "
            "set TUNEDP_HOME (or --ledger) to a writable folder"
        ) from None
