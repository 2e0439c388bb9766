"""``tunedp ledger setup``, ``grant`` and ``revoke``: administering a team's shared PostgreSQL ledger.

The database admin sets the ledger up once (schema, roles, the charge
function); the data owner then grants and revokes analysts and auditors.
The server's own permissions enforce who may charge what; these commands
only call the functions ``setup`` installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tunedp.cli.options import DatasetOption, UrlOption
from tunedp.cli.output import UserError, console

if TYPE_CHECKING:
    from tunedp.ledger import LedgerUrl

__all__ = ["ledger_grant", "ledger_revoke", "ledger_setup"]


def _url(text: str) -> LedgerUrl:
    from tunedp.ledger import LedgerUrl

    return LedgerUrl.parse(text, field="--url")


def ledger_setup(
    url: UrlOption,
    role_prefix: Annotated[str, typer.Option("--role-prefix", help="Prefix of the roles it creates.")] = "tunedp_",
    owner: Annotated[
        str | None, typer.Option("--owner", help="An existing login role to make the data owner.", show_default=False)
    ] = None,
) -> None:
    """Create the ledger's schema, roles (owner, analyst, auditor) and charge function; run once, as the DB admin."""
    from tunedp.ledger.postgres_schema import check_prefix, setup

    roles = check_prefix(role_prefix)
    target = _url(url)
    with target.connect(autocommit=True) as connection:
        from tunedp.ledger.postgres_session import call as _call

        _call(target, lambda: setup(connection, roles, owner_login=owner))
    console.print(
        f"set up the tunedp ledger in {target}: roles {roles.owner} (owner), {roles.analyst} (analyst), "
        f"{roles.auditor} (auditor), objects owned by {roles.ledger}"
        + (f"; {owner} is the owner" if owner else f"; next: GRANT {roles.owner} TO <the data owner's login>"),
        highlight=False,
    )


def ledger_grant(
    url: UrlOption,
    role: Annotated[str, typer.Option("--role", help="The login role to grant.", show_default=False)],
    dataset: DatasetOption = None,
    auditor: Annotated[bool, typer.Option("--auditor", help="Read-only access to every dataset.", metavar="")] = False,
) -> None:
    """The owner grants a login role: analyst of one dataset (--dataset), or auditor of all (--auditor)."""
    from tunedp.ledger.postgres_session import call as _call

    if (dataset is None) == (not auditor):
        raise UserError("--dataset: give --dataset D (an analyst of D) or --auditor (reads every dataset), not both")
    target = _url(url)
    with target.connect() as connection:
        if auditor:
            _call(target, lambda: connection.execute("SELECT tunedp.grant_auditor(%s)", (role,)))
        else:
            _call(target, lambda: connection.execute("SELECT tunedp.grant_dataset(%s, %s)", (dataset, role)))
    console.print(
        f"{role} may now read every dataset on {target}"
        if auditor
        else f"{role} may now charge and read {dataset!r} on {target}",
        highlight=False,
    )


def ledger_revoke(
    url: UrlOption,
    role: Annotated[str, typer.Option("--role", help="The login role.", show_default=False)],
    dataset: Annotated[str, typer.Option("--dataset", help="Protected dataset name.", show_default=False)],
) -> None:
    """The owner withdraws a role's grant on one dataset (its past charges stay)."""
    from tunedp.ledger.postgres_session import call as _call

    target = _url(url)
    with target.connect() as connection:
        _call(target, lambda: connection.execute("SELECT tunedp.revoke_dataset(%s, %s)", (dataset, role)))
    console.print(f"{role} may no longer charge {dataset!r} on {target}; its charges stay", highlight=False)
