"""Talking to a PostgreSQL ledger: one session per operation, the server's errors as one line, the settings check.

Each operation opens its own connection (closed after), so a server restart
between two operations costs nothing but a reconnect. psycopg's messages are
multi-line and name internals; :func:`call` maps each class of server error
to one line that says what happened and whether anything changed. A lost
connection is a :class:`ServerAway`, which bookkeeping (a status update)
retries and a charge does not.

Used by the ledger (:mod:`tunedp.ledger.postgres`), the migration
(:mod:`tunedp.ledger.migrate`) and the ``tunedp ledger`` commands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from tunedp.errors import LedgerCorruptError, LedgerError, LedgerMissingError, one_line
from tunedp.ledger.curves import LEDGER_ORDERS
from tunedp.ledger.postgres_schema import SCHEMA, SCHEMA_VERSION

if TYPE_CHECKING:
    import psycopg

    from tunedp.ledger.location import LedgerUrl

__all__ = ["ServerAway", "call", "check_settings", "session"]

_T = TypeVar("_T")


class ServerAway(LedgerError):
    """The connection failed or was lost (server down, restarting, or the backend terminated)."""


@contextmanager
def session(url: LedgerUrl) -> Iterator[psycopg.Connection[Any]]:
    """A connection for one operation, closed after; no connection at all is a :class:`ServerAway`."""
    try:
        connection = url.connect()
    except LedgerError as error:
        raise ServerAway(str(error)) from None
    try:
        yield connection
    finally:
        connection.close()


def call(url: LedgerUrl, operation: Callable[[], _T]) -> _T:
    """Run one statement, mapping the server's errors to one line (psycopg's messages are multi-line)."""
    import psycopg
    from psycopg import errors

    try:
        return operation()
    except errors.InsufficientPrivilege as error:
        raise LedgerError(f"ledger {url.shown}: the server refused: {_primary(error)}; nothing changed") from None
    except (errors.InvalidSchemaName, errors.UndefinedTable, errors.UndefinedFunction) as error:
        raise LedgerMissingError(
            f"ledger {url.shown}: no tunedp ledger in this database ({_primary(error)}); its administrator creates "
            f"one with `tunedp ledger setup --url {url.shown}`"
        ) from None
    except errors.NoDataFound as error:
        raise LedgerMissingError(f"ledger {url.shown}: {_primary(error)}") from None
    except errors.UniqueViolation as error:
        raise LedgerError(f"ledger {url.shown}: {_primary(error)}") from None
    except (psycopg.OperationalError, psycopg.InterfaceError) as error:
        raise ServerAway(
            f"ledger {url.shown}: lost the connection to the server ({_primary(error)}); the operation did not "
            "complete (a charge is committed only if `tunedp budget show` lists it)"
        ) from None
    except psycopg.Error as error:
        raise LedgerError(f"ledger {url.shown}: the server refused: {_primary(error)}") from None


def _primary(error: BaseException) -> str:
    diagnostic = getattr(error, "diag", None)
    primary = getattr(diagnostic, "message_primary", None) if diagnostic is not None else None
    return one_line(primary or error, 200)


def check_settings(connection: psycopg.Connection[Any], url: LedgerUrl) -> None:
    """The schema's version and the orders its curves are stored at must be this tunedp's."""
    row = call(url, lambda: connection.execute("SELECT schema_version, orders FROM tunedp.settings").fetchone())
    if row is None:
        raise LedgerCorruptError(f"ledger {url.shown}: its settings row is missing; refusing to use it")
    version, orders = row
    if version != SCHEMA_VERSION or tuple(float(o) for o in orders) != LEDGER_ORDERS:
        raise LedgerCorruptError(
            f"ledger {url.shown}: schema {SCHEMA!r} version {version} stores curves at other orders than this "
            f"tunedp (version {SCHEMA_VERSION}); use the tunedp version that set it up"
        )
