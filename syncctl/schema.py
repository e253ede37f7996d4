"""The database schema: upgrading it with alembic (the migrations DBAs run), building it from
today's sql/ files (what the migrations must equal), and describing it so two databases can be
compared."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import create_engine, pool
from sqlalchemy.exc import DBAPIError

from syncctl import installation, queries, resources
from syncctl.database import connection_failure, error_text
from syncctl.errors import MigrationError

# Schemas the engine owns (the reference shop's `shop` is not one: syncctl.reference_shop); the
# description compares these and a downgrade to base drops them.
SCHEMAS = ("sync", "report", "gdpr", "syncmap")


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


def _connect(dsn: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn)
    except psycopg.OperationalError as exc:
        raise connection_failure(dsn, exc) from exc


def _with_connection(dsn: str, action: Any) -> Any:
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: _connect(dsn), poolclass=pool.NullPool
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


# the revision whose downgrade drops syncctl's schemas, and with them every row they hold
_BASELINE = "0001_baseline"


@dataclass(frozen=True)
class DowngradePlan:
    """What `downgrade(dsn, target)` would undo, and the data that would go with it."""

    current: tuple[str, ...]
    target: str
    undone: tuple[str, ...]
    # (schema, tables, rows) of the schemas dropped, when the baseline is undone
    schemas: tuple[tuple[str, int, int], ...] = ()
    # objects outside syncctl's schemas that the drop takes with it: the shop's foreign keys
    # that point into them, the engine's triggers on the shop's tables, and views built on them
    foreign_keys: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    views: tuple[str, ...] = ()

    @property
    def drops_data(self) -> bool:
        return bool(self.undone)

    def describe(self) -> list[str]:
        lines = [
            f"downgrade from {', '.join(self.current) or 'none'} to {self.target} undoes: "
            + (", ".join(self.undone) or "nothing")
        ]
        for name, tables, rows in self.schemas:
            lines.append(f"  drops schema {name}: {tables} tables, {rows:,} rows")
        lines += [f"  drops the shop's foreign key {fk}" for fk in self.foreign_keys]
        lines += [f"  drops the trigger {trigger}" for trigger in self.triggers]
        lines += [f"  drops the view {view}" for view in self.views]
        if self.undone and not self.schemas:
            lines.append("  a revision's downgrade may drop tables or columns and their data")
        return lines


_DOWNGRADE_LOSSES = (
    ("schemas", "downgrade_schemas"),
    ("foreign_keys", "downgrade_foreign_keys"),
    ("triggers", "downgrade_triggers"),
    ("views", "downgrade_views"),
)


def plan_downgrade(dsn: str, target: str) -> DowngradePlan:
    """The revisions a downgrade to `target` undoes and, when it undoes the baseline, the
    schemas, foreign keys and views that go with them. Changes nothing."""
    current = current_revisions(dsn)
    script = ScriptDirectory.from_config(alembic_config(dsn))
    try:
        undone = tuple(
            s.revision
            for s in script.iterate_revisions(current or "base", target)
            if s.revision != target
        )
    except Exception as exc:  # alembic's errors for an unknown or ambiguous revision
        raise MigrationError(f"cannot downgrade to {target}: {exc}") from exc
    if _BASELINE not in undone:
        return DowngradePlan(current, target, undone)
    with _connect(dsn) as conn:
        found = {
            kind: queries.all(conn, query, schemas=list(SCHEMAS))
            for kind, query in _DOWNGRADE_LOSSES
        }
        # counted, not estimated: a DBA about to drop the audit and the tombstones must not
        # read "0 rows" because the statistics are empty
        schemas = tuple(
            (str(name), int(tables), sum(_count_rows(conn, name, table) for table in holding))
            for name, tables, holding in found["schemas"]
        )
    return DowngradePlan(
        current,
        target,
        undone,
        schemas=schemas,
        foreign_keys=tuple(str(fk) for (fk,) in found["foreign_keys"]),
        triggers=tuple(str(t) for (t,) in found["triggers"]),
        views=tuple(str(v) for (v,) in found["views"]),
    )


def _count_rows(conn: psycopg.Connection[Any], schema: str, table: str) -> int:
    statement = sql.SQL("SELECT count(*) FROM {}.{}").format(
        sql.Identifier(schema), sql.Identifier(table)
    )
    row = conn.execute(statement).fetchone()
    return int(row[0]) if row else 0


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
    _require(current_revisions(dsn))


def require_current_on(conn: psycopg.Connection[Any]) -> None:
    """`require_current` on an open connection (one query, no second login). A role that may
    not read the version table is let through: a missing object then fails on its own, and
    `missing_object_hint` says why."""
    try:
        current = _revisions_on(conn)
    except psycopg.errors.InsufficientPrivilege:
        conn.rollback()
        return
    conn.rollback()
    _require(current)


def missing_object_hint(conn: psycopg.Connection[Any]) -> str | None:
    """After an undefined table, function or schema error: the `db upgrade` advice when the
    database is not at the newest revision, else None."""
    try:
        conn.rollback()
        _require(_revisions_on(conn))
    except MigrationError as exc:
        return str(exc)
    except psycopg.Error:
        return None
    return None


def _revisions_on(conn: psycopg.Connection[Any]) -> tuple[str, ...]:
    row = queries.one(conn, "version_table_exists")
    if not (row and row[0]):
        return ()
    return tuple(sorted(str(v) for (v,) in queries.all(conn, "schema_versions")))


def _require(current: tuple[str, ...]) -> None:
    heads = head_revisions()
    if current != heads:
        raise MigrationError(
            f"the database is at revision {', '.join(current) or 'none'}, this syncctl needs "
            f"{', '.join(heads)}: run `syncctl db upgrade`"
        )


_DESCRIBE = (
    ("columns", "describe_columns"),
    ("constraints", "describe_constraints"),
    ("indexes", "describe_indexes"),
    ("functions", "describe_functions"),
    ("triggers", "describe_triggers"),
    ("views", "describe_views"),
    ("types", "describe_types"),
    ("comments", "describe_comments"),
)


def describe(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Every object syncctl owns, as comparable rows per kind."""
    return {kind: queries.all(conn, query, schemas=list(SCHEMAS)) for kind, query in _DESCRIBE}
