"""Where the command line prints, and how it refuses: the two consoles, ``UserError`` and the one-line error.

Every command prints through these two consoles so that a test (or a wider
terminal) changes one object, and every refusal is the same one red line on
stderr. Nothing here imports more than rich: every command module starts
from it.
"""

from __future__ import annotations

import logging

from rich.console import Console
from rich.markup import escape

from tunedp.errors import UserFacingError

__all__ = ["UserError", "console", "err_console", "print_error", "quiet_libraries"]

# soft_wrap: a line longer than the terminal (or than rich's 80 columns when piped) stays one
# line, so that logs and pipes get whole lines (paths, commands) and a terminal wraps them itself.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


class UserError(UserFacingError):
    """A one-line problem with what the user asked for (exit code 2)."""


def print_error(message: str, prefix: str = "error:") -> None:
    """``message`` as one line on stderr after a bold red ``prefix`` (``error:``, ``warning:``, …)."""
    # User text (paths, values) may contain brackets: never render it as markup.
    err_console.print(f"[bold red]{prefix}[/] {escape(message)}", highlight=False, soft_wrap=True)


def quiet_libraries() -> None:
    """Silence library logging that says nothing to a user (called by the commands that calibrate or account)."""
    # dp_accounting logs through absl when it drops a Rényi order whose series
    # does not converge; the order is then excluded (ε can only go up), which
    # is the conservative outcome, so the warning is noise for users.
    logging.getLogger("absl").setLevel(logging.ERROR)
