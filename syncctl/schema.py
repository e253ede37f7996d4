"""The database schema: upgrading it with alembic (the migrations DBAs run), building it from
today's sql/ files (what the migrations must equal), and describing it so two databases can be
compared."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import DBAPIError

from syncctl import installation, resources
from syncctl.database import error_text
from syncctl.errors import MigrationError

# Schemas syncctl owns; the description compares these.
SCHEMAS = ("shop", "sync", "report", "gdpr")


def run_sql_files(conn: Any, files: Iterable[Path]) -> None:
    """Execute SQL files in order on a psycopg connection, each as one simple query."""
    for path in files:
        conn.execute(path.read_text(encoding="utf-8"))


def build_from_sql(dsn: str) -> None:
    """Create every object from today's sql/ files (re-runnable), as the owner role."""
    with psycopg.connect(dsn, autocommit=False) as conn:
        installation.prepare(conn)
        run_sql_files(conn, resources.sql_files())


def alembic_config(dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.migrations_dir()))
    config.attributes["dsn"] = dsn
    return config


def _with_connection(dsn: str, action: Any) -> Any:
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=pool.NullPool
    )
    try:
        with engine.begin() as connection:
            config = alembic_config(dsn)
            config.attributes["connection"] = connection
            return action(config, connection)
    except DBAPIError as exc:
        if isinstance(exc.orig, psycopg.Error):
            raise MigrationError(error_text(exc.orig)) from exc
        raise
    finally:
        engine.dispose()


def upgrade(dsn: str, revision: str = "heads") -> None:
    _with_connection(dsn, lambda config, _: command.upgrade(config, revision))


def downgrade(dsn: str, revision: str) -> None:
    _with_connection(dsn, lambda config, _: command.downgrade(config, revision))


def head_revisions() -> tuple[str, ...]:
    """The newest revision of each branch (one, once branches are merged)."""
    heads = tuple(sorted(ScriptDirectory.from_config(alembic_config("")).get_heads()))
    if not heads:
        raise MigrationError("the migrations have no head revision")
    return heads


def current_revisions(dsn: str) -> tuple[str, ...]:
    def read(_: Config, connection: Any) -> tuple[str, ...]:
        context = MigrationContext.configure(
            connection, opts={"version_table_schema": installation.VERSION_SCHEMA}
        )
        return tuple(sorted(context.get_current_heads()))

    result: tuple[str, ...] = _with_connection(dsn, read)
    return result


def require_current(dsn: str) -> None:
    """Refuse to run against a database whose schema is not at the newest revision."""
    current, heads = current_revisions(dsn), head_revisions()
    if current != heads:
        raise MigrationError(
            f"the database is at revision {', '.join(current) or 'none'}, this syncctl needs "
            f"{', '.join(heads)}: run `syncctl db upgrade`"
        )


_DESCRIBE = {
    "columns": """
        SELECT table_schema, table_name, column_name, ordinal_position::int, data_type,
               udt_name, is_nullable, column_default, is_identity
        FROM information_schema.columns WHERE table_schema = ANY(%(schemas)s)
        ORDER BY 1, 2, 4""",
    "constraints": """
        SELECT n.nspname, c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE n.nspname = ANY(%(schemas)s) ORDER BY 1, 2, 3""",
    "indexes": """
        SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = ANY(%(schemas)s) ORDER BY 1, 2, 3""",
    "functions": """
        SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
               md5(pg_get_functiondef(p.oid))
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = ANY(%(schemas)s) AND p.prokind IN ('f', 'p') ORDER BY 1, 2, 3""",
    "triggers": """
        SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal ORDER BY 1, 2, 3""",
    "views": """
        SELECT schemaname, viewname, definition FROM pg_views
        WHERE schemaname = ANY(%(schemas)s) ORDER BY 1, 2""",
    "types": """
        SELECT n.nspname, t.typname, t.typtype FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND t.typtype IN ('c', 'e', 'd')
          AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
        ORDER BY 1, 2""",
    "comments": """
        SELECT n.nspname, obj_description(n.oid, 'pg_namespace') FROM pg_namespace n
        WHERE n.nspname = ANY(%(schemas)s) ORDER BY 1""",
}


def describe(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every object syncctl owns, as comparable rows per kind."""
    return {
        kind: conn.execute(query, {"schemas": list(SCHEMAS)}).fetchall()
        for kind, query in _DESCRIBE.items()
    }
