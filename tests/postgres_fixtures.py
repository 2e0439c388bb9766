"""A real PostgreSQL for the ledger tests: a fresh database and per-run roles, dropped afterwards.

The shared server (127.0.0.1:5432, trust authentication) is used through the
``postgres`` superuser only to create and drop what a run needs. Outside CI a
missing server skips these tests with the reason; with ``CI`` set they fail,
so CI can never pass without having run them.

``own_server`` starts a throwaway PostgreSQL of our own (initdb + pg_ctl in a
temporary folder, on a free port, password authentication) for what must
not be done to the shared one: restarting it, refusing a password.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tunedp.ledger.postgres_schema import Roles

ADMIN_URL = os.environ.get("TUNEDP_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def server_or_skip(url: str = ADMIN_URL) -> None:
    """Skip (outside CI) or fail (in CI) when the PostgreSQL server is not there."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as error:
        reason = f"PostgreSQL server at {url} is not reachable ({str(error).strip().splitlines()[0]})"
        if _in_ci():
            pytest.fail(f"{reason}; CI must run the PostgreSQL ledger tests (start the server)")
        pytest.skip(reason)


@dataclass(frozen=True)
class TeamLedger:
    """One database set up as a tunedp ledger, with login roles for each kind of user."""

    database: str
    prefix: str
    host: str
    port: int
    password: str | None = None

    def url(self, who: str) -> str:
        """The URL of login ``who`` ('admin', 'owner', 'analyst', 'analyst2', 'auditor', 'outsider')."""
        user = "postgres" if who == "admin" else self.login(who)
        secret = f":{self.password}" if self.password and who != "admin" else ""
        return f"postgresql://{user}{secret}@{self.host}:{self.port}/{self.database}"

    def login(self, who: str) -> str:
        """The login role of ``who`` (``u_`` keeps them apart from the ledger's own group roles)."""
        return f"{self.prefix}u_{who}"


LOGINS = {"owner": "owner", "analyst": "analyst", "analyst2": "analyst", "auditor": "auditor", "outsider": None}


def create_team_ledger(admin_url: str, host: str, port: int, password: str | None = None) -> TeamLedger:
    """A fresh database, ``tunedp ledger setup`` on it, and one login per kind of user."""
    from tunedp.ledger.postgres_schema import Roles

    run = secrets.token_hex(4)
    team = TeamLedger(database=f"tunedp_test_{run}", prefix=f"t{run}_", host=host, port=port, password=password)
    roles = Roles(team.prefix)
    try:
        _create(admin_url, team, roles, password)
    except BaseException:
        drop_team_ledger(admin_url, team)
        raise
    return team


def _create(admin_url: str, team: TeamLedger, roles: Roles, password: str | None) -> None:
    import psycopg
    from psycopg import sql

    from tunedp.ledger.postgres_schema import setup

    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(team.database)))
        with psycopg.connect(team.url("admin") if password is None else _admin_db(admin_url, team.database)) as conn:
            setup(conn, roles)
        for who, group in LOGINS.items():
            login = sql.Identifier(team.login(who))
            if password:
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(login, sql.Literal(password)))
            else:
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(login))
            if group is not None:
                admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(getattr(roles, group)), login))
    return team


def _admin_db(admin_url: str, database: str) -> str:
    return admin_url.rsplit("/", 1)[0] + f"/{database}"


def drop_team_ledger(admin_url: str, team: TeamLedger) -> None:
    import psycopg
    from psycopg import sql

    from tunedp.ledger.postgres_schema import Roles

    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(team.database)))
        for role in [*(team.login(w) for w in LOGINS), *Roles(team.prefix).all()]:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture(scope="session")
def team() -> Iterator[TeamLedger]:
    """A set-up ledger database on the shared server for this test session (per xdist worker)."""
    server_or_skip()
    created = create_team_ledger(ADMIN_URL, "127.0.0.1", 5432)
    try:
        yield created
    finally:
        drop_team_ledger(ADMIN_URL, created)


# ---------------------------------------------------------------------------- our own throwaway server


@dataclass
class OwnServer:
    """A PostgreSQL we started (and may restart or stop): data folder, port, superuser password."""

    data: Path
    port: int
    password: str
    user: str

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    options: str = ""

    def pg_ctl(self, *args: str) -> None:
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args]
        # No pipes: the server it starts would hold them open.
        subprocess.run(
            _as_user(self.user, command), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120
        )

    def start(self) -> None:
        self.pg_ctl("-o", self.options, "-l", str(self.data.parent / "log"), "start")

    def restart(self) -> None:
        """Stop (fast: clients are disconnected) and start again, on the same port."""
        self.pg_ctl("-m", "fast", "stop")
        self.start()


def _as_user(user: str, command: list[str]) -> list[str]:
    return command if os.geteuid() != 0 else ["runuser", "-u", user, "--", *command]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def own_server() -> Iterator[OwnServer]:
    """initdb + pg_ctl start on a free port (as the ``postgres`` OS user when we are root); removed afterwards."""
    if not (PG_BIN / "initdb").exists():
        reason = f"{PG_BIN}/initdb is not installed (Debian package postgresql-15)"
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "")
    folder = Path(tempfile.mkdtemp(prefix="tunedp-pg-"))
    os.chmod(folder, 0o755)
    data = folder / "data"
    password = secrets.token_hex(8)
    secret = folder / "pw"
    secret.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, user=user)
        shutil.chown(secret, user=user)
    port = _free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    server = OwnServer(data=data, port=port, password=password, user=user, options=options)
    subprocess.run(
        _as_user(
            user,
            [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={secret}"],
        ),
        check=True,
        capture_output=True,
        timeout=300,
    )
    server.start()
    try:
        yield server
    finally:
        subprocess.run(
            _as_user(user, [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(folder, ignore_errors=True)


def wait_until_up(url: str, timeout: float = 60.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
