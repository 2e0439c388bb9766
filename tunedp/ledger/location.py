"""Where a ledger lives: a sqlite file (the default) or a PostgreSQL URL, and how to reach the server.

``--ledger`` takes either; so does ``TUNEDP_LEDGER_URL`` (a URL only), which
``--ledger`` overrides. Everything that can go wrong here — a typo in the
scheme, a port that is not a number, a server that is down, a wrong password,
a role the server does not know — is found before anything is charged and
reported as one line that never contains the password.

psycopg is imported only when a URL is used: a user without PostgreSQL keeps
the sqlite default and never loads it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from tunedp.errors import LedgerError, one_line
from tunedp.ledger.paths import default_ledger_path

if TYPE_CHECKING:
    import psycopg

__all__ = ["LEDGER_URL_ENV", "LedgerUrl", "ledger_location", "looks_like_url"]

LEDGER_URL_ENV = "TUNEDP_LEDGER_URL"
SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 10
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def looks_like_url(text: str) -> bool:
    """Whether ``text`` is meant as a URL (``scheme://…``), so a typo in the scheme is refused, not made a file."""
    return _SCHEME.match(text) is not None


@dataclass(frozen=True)
class LedgerUrl:
    """A PostgreSQL ledger's connection string; ``shown`` is what may be printed (no password)."""

    conninfo: str
    shown: str

    def __str__(self) -> str:
        return self.shown

    def __repr__(self) -> str:  # never the password, wherever an object is printed or logged
        return f"LedgerUrl({self.shown!r})"

    @classmethod
    def parse(cls, text: str, *, field: str = "--ledger") -> LedgerUrl:
        """Validate ``text`` as a PostgreSQL URL (scheme, port, database) without connecting."""
        match = _SCHEME.match(text)
        if match is None or match.group(1).lower() not in SCHEMES:
            scheme = match.group(1) if match else text.split(":", 1)[0]
            raise LedgerError(
                f"{field}: {scheme!r} is not a ledger URL scheme; use postgresql://USER@HOST:PORT/DATABASE "
                "or a sqlite file path"
            )
        from psycopg.conninfo import conninfo_to_dict

        try:
            parts = conninfo_to_dict(text)
        except Exception as error:  # psycopg.ProgrammingError: libpq could not parse it
            raise LedgerError(
                f"{field}: not a valid PostgreSQL URL ({_redact(one_line(error, 160), text)}); "
                "use postgresql://USER@HOST:PORT/DATABASE"
            ) from None
        port = str(parts.get("port", "5432"))
        if not all(p.isdigit() and 0 < int(p) < 65536 for p in port.split(",")):
            raise LedgerError(f"{field}: port {port!r} is not a number in 1..65535; use postgresql://USER@HOST:PORT/DB")
        if not parts.get("dbname"):
            raise LedgerError(f"{field}: the URL names no database; use postgresql://USER@HOST:PORT/DATABASE")
        user = parts.get("user") or os.environ.get("PGUSER") or _login_name()
        shown = f"postgresql://{quote(str(user), safe='')}@{parts.get('host', 'localhost')}:{port}/{parts['dbname']}"
        return cls(conninfo=text, shown=shown)

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[tuple[object, ...]]:
        """A connection, or one line saying why there is none (server down, password, unknown role or database)."""
        import psycopg

        try:
            return psycopg.connect(
                self.conninfo,
                autocommit=autocommit,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="tunedp-ledger",
                options="-c TimeZone=UTC",
            )
        except psycopg.Error as error:
            raise LedgerError(
                f"--ledger: cannot connect to the PostgreSQL ledger {self.shown} ({_connect_reason(error)}); "
                f"check the URL (--ledger or {LEDGER_URL_ENV}), that the server runs, and the password "
                "(PGPASSWORD or ~/.pgpass); nothing charged"
            ) from None


def _login_name() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


def _redact(message: str, url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = conninfo_to_dict(url).get("password")
    except Exception:
        password = None
    if password:
        message = message.replace(str(password), "***")
    return message


def _connect_reason(error: BaseException) -> str:
    """The useful part of libpq's message: after 'failed:', first line, without 'FATAL:'."""
    text = str(error)
    if "failed:" in text:
        text = text.rsplit("failed:", 1)[1]
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return one_line(first.replace("FATAL:", "").strip(), 200)


def ledger_location(dataset: str, ledger: str | Path | None) -> Path | LedgerUrl:
    """The ledger a command uses: ``--ledger`` (file or URL), else ``$TUNEDP_LEDGER_URL``, else the default file."""
    if ledger is not None:
        text = str(ledger)
        return LedgerUrl.parse(text) if looks_like_url(text) else Path(ledger)
    from_env = os.environ.get(LEDGER_URL_ENV)
    if from_env:
        return LedgerUrl.parse(from_env, field=LEDGER_URL_ENV)
    return default_ledger_path(dataset)
