"""Before any schema change: the engine's four roles exist, the owner role may create schemas in
this database, and the session acts as the owner role (SET ROLE), so every object a migration
creates is owned by that NOLOGIN role and never by the installing login or a superuser.

What the installing login needs (docs/security.md, "Installing"): on the first installation,
CREATEROLE (or superuser) to create the roles unless a DBA created them, membership in the owner
role (granted here when the login may), and the right to grant CREATE on the database to the
owner role (the database owner has it) unless a DBA granted it. Later upgrades need only
membership in the owner role."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from syncctl import queries
from syncctl.errors import MigrationError

ROLE_KINDS = ("owner", "controller", "webshop", "reporting")
DEFAULT_PREFIX = "syncctl"
# alembic's version table lives in a schema of its own, owned by the owner role: `downgrade
# base` drops the engine's schemas and leaves the record of having done so.
VERSION_SCHEMA = "syncctl"


def _stored_prefix(conn: psycopg.Connection[Any]) -> str | None:
    if not _flag(conn, "setting_table_exists"):
        return None
    try:
        with conn.transaction():
            stored = queries.one(conn, "stored_role_prefix")
    except psycopg.errors.InsufficientPrivilege as exc:
        # an installed database, and a login outside its owner role (schema sync's owner)
        owner = _one_text(conn, "engine_schema_owner")
        raise MigrationError(_not_a_member(owner, _one_text(conn, "session_login"))) from exc
    return None if stored is None else str(stored[0])


def _not_a_member(owner: str, login: str) -> str:
    return f"this login is not a member of {owner}: a DBA runs GRANT {owner} TO {login}"


def role_prefix(conn: psycopg.Connection[Any], requested: str | None) -> str:
    """The prefix of the engine's roles: the one chosen at the first installation; a different
    one asked for later is refused rather than silently ignored."""
    stored = _stored_prefix(conn)
    if stored is not None and requested and requested != stored:
        raise MigrationError(
            f"this database was installed with role prefix {stored!r}; "
            f"it cannot be changed to {requested!r}"
        )
    prefix = stored or requested or DEFAULT_PREFIX
    if not prefix.replace("_", "").isalnum() or not prefix[0].isalpha() or len(prefix) > 40:
        raise MigrationError(
            "the role prefix must start with a letter and hold only letters, digits and _"
        )
    return prefix


def _flag(conn: psycopg.Connection[Any], query: str, /, **params: Any) -> bool:
    row = queries.one(conn, query, **params)
    return bool(row and row[0])


def _try(conn: psycopg.Connection[Any], statement: sql.Composed, refusal: str) -> None:
    try:
        with conn.transaction():
            conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise MigrationError(refusal) from exc


def _ensure(
    conn: psycopg.Connection[Any], check: str, role: str, fix: sql.Composed, refusal: str
) -> None:
    """Run `fix` when `check` is false, then check again: a GRANT the login may not give only
    warns ("no privileges were granted"), so the outcome is what counts."""
    if _flag(conn, check, role=role):
        return
    _try(conn, fix, refusal)
    if not _flag(conn, check, role=role):
        raise MigrationError(refusal)


def prepare(conn: psycopg.Connection[Any], requested_prefix: str | None = None) -> str:
    """Make the roles and the owner's CREATE and TEMPORARY rights exist, then SET ROLE to the
    owner for the rest of the session. Returns the owner role's name."""
    prefix = role_prefix(conn, requested_prefix)
    names = {kind: f"{prefix}_{kind}" for kind in ROLE_KINDS}
    for name in names.values():
        if _flag(conn, "role_exists", role=name):
            continue
        _try(
            conn,
            sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)),
            f"role {name} does not exist and this login may not create it: a DBA runs "
            f"CREATE ROLE {name} NOLOGIN (and the same for every one of "
            f"{', '.join(names.values())})",
        )
    owner = names["owner"]
    if _flag(conn, "role_has_unsafe_attribute", role=owner):
        raise MigrationError(
            f"role {owner} must be a plain NOLOGIN role: it holds an attribute "
            "(SUPERUSER, CREATEROLE, CREATEDB, BYPASSRLS or REPLICATION) that its SECURITY "
            "DEFINER functions would lend to every caller"
        )
    if _flag(conn, "role_can_login", role=owner):
        raise MigrationError(
            f"role {owner} must be a plain NOLOGIN role: it may log in, and whoever logs in as "
            f"it owns every object of syncctl's (a DBA runs ALTER ROLE {owner} NOLOGIN)"
        )
    memberships = queries.one(conn, "role_memberships", role=owner)
    if memberships is not None and memberships[0]:
        raise MigrationError(
            f"role {owner} must be a plain NOLOGIN role: it is a member of {memberships[0]}, "
            "whose rights its SECURITY DEFINER functions would lend to every caller "
            f"(REVOKE ... FROM {owner})"
        )
    login = _one_text(conn, "session_login")
    _ensure(
        conn,
        "member_of_role",
        owner,
        sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(login)),
        _not_a_member(owner, login),
    )
    database = _one_text(conn, "current_database")
    _ensure(
        conn,
        "role_may_create_schemas",
        owner,
        sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
            sql.Identifier(database), sql.Identifier(owner)
        ),
        f"role {owner} may not create schemas in this database: the database owner runs "
        f"GRANT CREATE ON DATABASE {database} TO {owner}",
    )
    # the feed's page is a temporary table of the owner role (sql/31_feed_page.sql): PUBLIC
    # may make them by default, a hardened database may have revoked that
    _ensure(
        conn,
        "role_may_create_temporary_tables",
        owner,
        sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(
            sql.Identifier(database), sql.Identifier(owner)
        ),
        f"role {owner} may not create temporary tables in this database (the feed's page is "
        f"one): the database owner runs GRANT TEMPORARY ON DATABASE {database} TO {owner}",
    )
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
    queries.run(conn, "pin_role_prefix", prefix=prefix)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(VERSION_SCHEMA)))
    conn.execute(
        sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(VERSION_SCHEMA))
    )
    return owner


def _one_text(conn: psycopg.Connection[Any], query: str) -> str:
    row = queries.one(conn, query)
    if row is None:
        raise MigrationError(f"no answer to {query}")
    return str(row[0])
