"""The PostgreSQL ledger's schema, roles and functions: the server, not tunedp, decides who may do what.

``tunedp ledger setup`` runs :func:`setup` once per database as its
administrator. It creates four roles (names carry a prefix, ``tunedp_`` by
default, so several ledgers can share a cluster):

* ``<prefix>ledger`` — owns the schema, the tables and the functions; nobody
  logs in as it. The SECURITY DEFINER functions run as this role.
* ``<prefix>owner`` — the data owner: creates a dataset's budget, binds its
  fingerprint, grants and revokes analysts per dataset. Even the owner has
  no INSERT, UPDATE or DELETE on any table: a budget cannot be raised or
  reset, and history cannot be rewritten, by anyone but the database's
  administrator.
* ``<prefix>analyst`` — may charge and read the datasets it is granted (a
  row in ``grants``), through the ``tunedp.charge`` function only.
* ``<prefix>auditor`` — reads every dataset's budget, charges and refusals.

The charge function checks the grant, locks the dataset's budget row
(``SELECT … FOR UPDATE``: concurrent charges of one dataset serialise, other
datasets are not blocked), adds every stored RDP curve and the new one order
by order, converts to ε at the budget's δ with tunedp's formula
(:data:`tunedp.ledger.curves.EPSILON_FUNCTION_SQL`), and either appends the
charge or appends a refusal — in the same transaction. The caller recorded is
``session_user``, the login the server authenticated; no argument names a
role, so none can be forged. Every time stored is the UTC day.

Row-level security limits reading: an analyst sees only granted datasets.
The SQL text itself (tables, functions, policies) is
:mod:`tunedp.ledger._postgres_sql`; this module creates the roles, runs it,
and grants each role what it may call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tunedp.errors import LedgerError
from tunedp.ledger._postgres_sql import FUNCTIONS, POLICIES, TABLES
from tunedp.ledger.curves import EPSILON_FUNCTION_SQL, LEDGER_ORDERS

if TYPE_CHECKING:
    import psycopg

__all__ = ["SCHEMA", "SCHEMA_VERSION", "Roles", "check_prefix", "setup"]

SCHEMA = "tunedp"
SCHEMA_VERSION = "1"
_PREFIX = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


@dataclass(frozen=True)
class Roles:
    """The four role names of one ledger (see the module docstring)."""

    prefix: str

    @property
    def ledger(self) -> str:
        return f"{self.prefix}ledger"

    @property
    def owner(self) -> str:
        return f"{self.prefix}owner"

    @property
    def analyst(self) -> str:
        return f"{self.prefix}analyst"

    @property
    def auditor(self) -> str:
        return f"{self.prefix}auditor"

    def all(self) -> tuple[str, str, str, str]:
        return (self.ledger, self.owner, self.analyst, self.auditor)


def check_prefix(prefix: str) -> Roles:
    if not _PREFIX.match(prefix):
        raise LedgerError(
            f"--role-prefix: {prefix!r} must be lower-case letters, digits and '_', starting with a letter"
        )
    return Roles(prefix)


_EVERYONE_READS = ("settings", "budgets", "charges", "refusals", "grants")
_ANALYST_FUNCTIONS = (
    "charge(text, text, text, text, text, text, text, float8[], boolean)",
    "set_status(text, text)",
    "data_key(text)",
)
_OWNER_FUNCTIONS = (
    "create_budget(text, float8, float8, text, bytea, text)",
    "bind_dataset(text, text, bytea, text)",
    "grant_dataset(text, name)",
    "grant_auditor(name)",
    "revoke_dataset(text, name)",
    "import_dataset(text, float8, float8, text, bytea, text, jsonb)",
    "set_status(text, text)",
    "data_key(text)",
)
_HELPERS = (
    "epsilon_of(float8[], float8)",
    "today()",
    "is_owner()",
    "may_charge(text)",
    "may_read(text)",
    "require_owner()",
    "curve_sum(text)",
)


def setup(connection: psycopg.Connection[tuple[object, ...]], roles: Roles, *, owner_login: str | None = None) -> None:
    """Create roles, schema, tables, functions, policies and grants in one transaction (refuses a second setup)."""
    from psycopg import sql

    ident = sql.Identifier
    with connection.transaction():
        exists = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone()
        if exists:
            raise LedgerError(
                f"--url: this database already holds a tunedp ledger (schema {SCHEMA!r}); nothing changed"
            )
        taken = [
            r for r in roles.all() if connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (r,)).fetchone()
        ]
        if taken:
            raise LedgerError(
                f"--role-prefix: role {taken[0]!r} already exists on this server; choose another --role-prefix"
            )
        for role in roles.all():
            connection.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident(role)))
        # The ledger role hands out analyst/auditor membership (grant_dataset) and nothing else.
        connection.execute(
            sql.SQL("GRANT {}, {} TO {} WITH ADMIN OPTION").format(
                ident(roles.analyst), ident(roles.auditor), ident(roles.ledger)
            )
        )
        connection.execute(sql.SQL("GRANT {} TO current_user").format(ident(roles.ledger)))
        connection.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(ident(SCHEMA), ident(roles.ledger)))
        connection.execute(sql.SQL("SET LOCAL ROLE {}").format(ident(roles.ledger)))
        connection.execute(TABLES)
        connection.execute(EPSILON_FUNCTION_SQL.replace("{schema}", SCHEMA))
        connection.execute(FUNCTIONS)
        connection.execute(POLICIES)
        connection.execute(
            "INSERT INTO tunedp.settings (schema_version, orders, ledger_role, owner_role, analyst_role, auditor_role,"
            " created_on) VALUES (%s, %s, %s, %s, %s, %s, tunedp.today())",
            (SCHEMA_VERSION, list(LEDGER_ORDERS), roles.ledger, roles.owner, roles.analyst, roles.auditor),
        )
        connection.execute(sql.SQL("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {} FROM PUBLIC").format(ident(SCHEMA)))
        readers = sql.SQL(", ").join(ident(r) for r in (roles.owner, roles.analyst, roles.auditor))
        connection.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident(SCHEMA), readers))
        for table in _EVERYONE_READS:
            connection.execute(sql.SQL("GRANT SELECT ON {}.{} TO {}").format(ident(SCHEMA), ident(table), readers))
        for function in _HELPERS:
            connection.execute(sql.SQL(f"GRANT EXECUTE ON FUNCTION {SCHEMA}.{function} TO {{}}").format(readers))
        for function in _ANALYST_FUNCTIONS:
            connection.execute(
                sql.SQL(f"GRANT EXECUTE ON FUNCTION {SCHEMA}.{function} TO {{}}").format(ident(roles.analyst))
            )
        for function in _OWNER_FUNCTIONS:
            connection.execute(
                sql.SQL(f"GRANT EXECUTE ON FUNCTION {SCHEMA}.{function} TO {{}}").format(ident(roles.owner))
            )
        connection.execute("RESET ROLE")
        if owner_login is not None:
            connection.execute(sql.SQL("GRANT {} TO {}").format(ident(roles.owner), ident(owner_login)))
