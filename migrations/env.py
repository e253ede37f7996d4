"""alembic environment for syncctl. The database comes from, in order: a connection handed in
by syncctl (config.attributes["connection"]), `-x dsn=...`, DATABASE_URL, then libpq's PG*
variables and defaults. Revisions run raw SQL through psycopg 3; there is no ORM model."""

from __future__ import annotations

import os

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

VERSION_TABLE_SCHEMA = "public"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        version_table="alembic_version",
        version_table_schema=VERSION_TABLE_SCHEMA,
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
