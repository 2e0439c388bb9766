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
    "UnboundLedgerError",
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


class UnboundLedgerError(LedgerError):
    """The ledger exists but is bound to no data yet; binding it needs the workload that reads the data.

    A workload declared in a search config (a CSV table) is known only to
    that config, so the command that binds is ``budget bind --config`` with
    it: :meth:`with_config` writes that command once the caller knows the
    config's path (the command line does).
    """

    def __init__(self, ledger: str, *, declared_in_config: bool) -> None:
        self.ledger, self.declared_in_config = ledger, declared_in_config
        config = " --config <the search config>" if declared_in_config else ""
        super().__init__(self._line(config))

    def _line(self, config: str) -> str:
        return (
            f"ledger {self.ledger} is not bound to its data yet; bind it with "
            f"`tunedp budget bind --ledger {self.ledger}{config}` (loads the workload's data)"
        )

    def with_config(self, config: object) -> str:
        """The message with a command that works as pasted: the real config path where one is needed."""
        return self._line(f" --config {config}" if self.declared_in_config else "")


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
