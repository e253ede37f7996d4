"""Test fixtures. One PostgreSQL server per test session: the embedded default (it runs as
root too), or the server SYNCCTL_TEST_DSN names. A template database is built once from the
migrations; pytest-postgresql clones it for every test that asks for `postgresql`. Under
pytest-xdist every worker process has a server of its own (session fixtures are per worker).

Hypothesis profiles (HYPOTHESIS_PROFILE): `ci`, the default and what `make test` runs, keeps
the full number of examples; `dev` runs a quarter of them for a quick loop; `thorough` runs 500
for an assurance run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import settings
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pytest_postgresql import factories
from pytest_postgresql.executors.noop import NoopExecutor

from syncctl import reference_shop, schema
from syncctl.embedded import EmbeddedPostgres

settings.register_profile("ci", max_examples=60)
settings.register_profile("dev", max_examples=15)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class ServerExecutor(NoopExecutor):
    """The bare server: unlike a database fixture it has no template of its own."""

    @property
    def template_dbname(self) -> None:  # type: ignore[override]
        return None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[NoopExecutor]:
    external = os.environ.get("SYNCCTL_TEST_DSN")
    if external:
        params = conninfo_to_dict(external)
        yield ServerExecutor(
            host=str(params.get("host", "localhost")),
            port=str(params.get("port", 5432)),
            user=str(params.get("user", "postgres")),
            password=params.get("password"),  # type: ignore[arg-type]
            options="",
            dbname="syncctl_test",
        )
        return
    with EmbeddedPostgres() as server:
        yield ServerExecutor(
            host=server.socket_dir,
            port=server.port,
            user="postgres",
            options="",
            dbname="syncctl_test",
        )


def migrate_template(**params: Any) -> None:
    """The template every test database is cloned from: the engine at the newest revision, and
    the reference shop with its mapping (the embedded demo database's contents)."""
    libpq = ("host", "port", "user", "password", "dbname")
    dsn = make_conninfo(**{k: params[k] for k in libpq if params.get(k) is not None})
    schema.upgrade(dsn)
    reference_shop.install(dsn)


postgresql_template = factories.postgresql_noproc(
    depends_on="pg_server", dbname="syncctl_test", load=[migrate_template]
)
postgresql = factories.postgresql("postgresql_template")


@pytest.fixture
def dsn(postgresql: psycopg.Connection[Any]) -> str:
    """A DSN for this test's own database (a clone of the migrated template)."""
    return postgresql.info.dsn


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(dsn) as connection:
        yield connection


@pytest.fixture
def as_role(dsn: str) -> Iterator[Any]:
    """Connections to this test's database acting as a role (SET ROLE), closed afterwards."""
    opened: list[psycopg.Connection[Any]] = []

    def connect(role: str) -> psycopg.Connection[Any]:
        c = psycopg.connect(dsn, autocommit=True)
        c.execute(f"SET ROLE {role}")
        opened.append(c)
        return c

    yield connect
    for c in opened:
        c.close()


@pytest.fixture
def server_dsn(pg_server: NoopExecutor) -> Any:
    """DSN factory for any database on the test server (migration tests make their own)."""

    def for_database(dbname: str) -> str:
        return make_conninfo(
            host=pg_server.host, port=pg_server.port, user=pg_server.user, dbname=dbname
        )

    return for_database


@pytest.fixture
def fresh_database(server_dsn: Callable[[str], str]) -> Iterator[Callable[[str], str]]:
    """A factory of empty databases on the test server, dropped afterwards."""
    made: list[str] = []

    def make(name: str) -> str:
        with psycopg.connect(server_dsn("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return server_dsn(name)

    yield make
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as admin:
        for name in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
