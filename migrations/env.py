"""alembic environment for syncctl. The database comes from, in order: a connection handed in
by syncctl (config.attributes["connection"]), `-x dsn=...`, DATABASE_URL, then libpq's PG*
variables and defaults. Revisions run raw SQL through psycopg 3; there is no ORM model.
Before any revision runs, syncctl.installation makes the roles exist and switches to the owner
role, so everything the revisions create belongs to that NOLOGIN role; the role prefix comes
from `-x role_prefix=...` or SYNCCTL_ROLE_PREFIX on the first installation."""

from __future__ import annotations

import os

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from syncctl import installation


def _run(connection: Connection) -> None:
    requested = context.get_x_argument(as_dictionary=True).get("role_prefix") or os.environ.get(
        "SYNCCTL_ROLE_PREFIX"
    )
    installation.prepare(connection.connection.driver_connection, requested)
    context.configure(
        connection=connection,
        version_table="alembic_version",
        version_table_schema=installation.VERSION_SCHEMA,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    handed_in = context.config.attributes.get("connection")
    if handed_in is not None:
        _run(handed_in)
        return
    dsn = context.get_x_argument(as_dictionary=True).get("dsn") or os.environ.get(
        "DATABASE_URL", ""
    )
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(dsn),
        poolclass=pool.NullPool,
    )
    with engine.connect() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("syncctl migrations run online only: give a database (-x dsn=...)")
run_migrations_online()
