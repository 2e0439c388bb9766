"""The errors users see: each is one line naming the field and the fix.

They live in a module of their own, importing nothing, so the command line
can catch them without importing the accountants (dp_accounting costs a
second of start-up) before a command needs them.
"""

from __future__ import annotations

import re

__all__ = [
    "BudgetExceededError",
    "CalibrationError",
    "ConfigError",
    "DataMismatchError",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerMissingError",
    "UserFacingError",
    "one_line",
]


class UserFacingError(ValueError):
    """A problem with what the user asked for: reported as one line, exit code 2."""


class ConfigError(UserFacingError):
    """A user error in a config: the message is one line naming the field and the fix."""


class CalibrationError(UserFacingError):
    """No σ can make the search fit the budget (one line, with the fix)."""


class LedgerError(UserFacingError):
    """A user-facing ledger problem (one line, with the fix)."""


class LedgerMissingError(LedgerError):
    """No ledger exists where one was expected."""


class LedgerCorruptError(LedgerError):
    """The ledger file was edited or damaged outside tunedp; it refuses to operate."""


class DataMismatchError(LedgerError):
    """The data a search would read is not the data its ledger protects, or names another dataset."""


class BudgetExceededError(LedgerError):
    """The ledger cannot admit the search: the global budget would be exceeded."""


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def one_line(text: object, limit: int = 300) -> str:
    """``text`` (an exception, a message) as one line without terminal colour codes, at most ``limit`` chars.

    An exception shows as ``Type: message``. Used wherever a message reaches a
    single-line channel (the console, report.json, an MLflow tag).
    """
    if isinstance(text, BaseException):
        text = f"{type(text).__name__}: {text}"
    words = " ".join(_ANSI.sub("", str(text)).split())
    return words if len(words) <= limit else words[: limit - 1] + "…"
