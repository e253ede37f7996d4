"""Connections, and the one mapping of psycopg errors to domain errors (`refusals`,
`error_text`); the SQL itself is in syncctl.queries. The DSN comes from --dsn, DATABASE_URL
or the libpq PG* variables; with none of them, the embedded default is used (see
syncctl.environment)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from syncctl.errors import DatabaseRefused, DatabaseUnavailable

T = TypeVar("T")

_LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


def configured_dsn(dsn: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The DSN to use, or None when nothing is configured (use the embedded default).

    An empty string means "libpq's own defaults and PG* variables"."""
    if dsn:
        return dsn
    if environ.get("DATABASE_URL"):
        return environ["DATABASE_URL"]
    if any(environ.get(name) for name in _LIBPQ_VARIABLES):
        return ""
    return None


def connect(
    dsn: str, *, autocommit: bool = False, application_name: str = "syncctl"
) -> psycopg.Connection[tuple[object, ...]]:
    try:
        # Every query syncctl sends names its objects schema-qualified; pg_catalog first and
        # pg_temp last keep objects another role created (or a temporary one) out of them.
        return psycopg.connect(
            dsn,
            autocommit=autocommit,
            application_name=application_name,
            options=_with_pinned_search_path(dsn),
        )
    except psycopg.OperationalError as exc:
        raise connection_failure(dsn, exc) from exc


def connection_failure(dsn: str, exc: psycopg.OperationalError) -> DatabaseUnavailable:
    """libpq's own message (it names the host, port, role or database that failed, never a
    password), in one line, followed by where the connection went, defaults filled in."""
    message = " ".join(str(exc).split())
    return DatabaseUnavailable(
        f"cannot connect to the database: {message} ({connection_target(dsn)})"
    )


def connection_target(dsn: str) -> str:
    """host, port, role and database a DSN connects to, libpq's defaults and PG* variables
    filled in; no password or other option."""
    wanted = (b"host", b"port", b"user", b"dbname")
    found: dict[bytes, str] = {}
    try:
        given = pq.Conninfo.parse(dsn.encode())
    except psycopg.Error:
        given = []
    for option in [*given, *pq.Conninfo.get_defaults()]:
        if option.keyword in wanted and option.val and option.keyword not in found:
            found[option.keyword] = option.val.decode(errors="replace")
    user = found.get(b"user", "?")
    return (
        f"host {found.get(b'host', 'local socket')}, port {found.get(b'port', '5432')}, "
        f"role {user}, database {found.get(b'dbname', user)}"
    )


_SEARCH_PATH = "-c search_path=pg_catalog,pg_temp"
# a bytea customer key is kept as its text form (\x and hex): pinned like the search_path, so
# a role's or PGOPTIONS' bytea_output=escape cannot give the engine another form of the key
_BYTEA_OUTPUT = "-c bytea_output=hex"
# the feed's page (pg_temp.syncctl_page) stays in the session's memory, not in temporary files
_TEMP_BUFFERS = "-c temp_buffers=64MB"


def _with_pinned_search_path(dsn: str) -> str:
    """The connection's options: JIT off and room for the feed's page, then the DSN's own (or
    PGOPTIONS, which may turn it on again), then the pinned search_path and bytea_output. A
    keyword argument replaces the DSN's options, so they are carried over here. JIT: the
    engine's catalog queries are estimated high enough that a server with its LLVM module
    compiles them in every merge, anonymisation and delete (a quarter of a second each,
    docs/own-database.md). temp_buffers: a page of 10,000 records stays in memory
    (sql/31_feed_page.sql)."""
    given = conninfo_to_dict(dsn).get("options") or os.environ.get("PGOPTIONS") or ""
    return " ".join(
        part
        for part in ("-c jit=off", _TEMP_BUFFERS, str(given).strip(), _SEARCH_PATH, _BYTEA_OUTPUT)
        if part
    )


@contextmanager
def refusals(
    failed: type[DatabaseRefused], refused: Callable[[str, str], DatabaseRefused]
) -> Iterator[None]:
    """Map psycopg errors to domain errors: an SY-class SQLSTATE (the engine's own refusals,
    whose messages hold ids and codes only) to `refused(code, message)`, anything else to
    `failed`. Only the primary message is kept, as values may be personal data: a detail
    quotes them (a unique violation's key), and so does a data exception's primary message
    (class 22: 'invalid input syntax for type date: "..."'), which is replaced."""
    try:
        yield
    except psycopg.Error as exc:
        code = exc.sqlstate
        if code and code.startswith("SY"):
            raise refused(code, exc.diag.message_primary or type(exc).__name__) from exc
        raise failed(error_text(exc), sqlstate=code) from exc


def error_text(exc: psycopg.Error) -> str:
    """A database error in one line without values: the primary message and the SQLSTATE. A
    data exception's primary message (class 22) quotes the value, so it is replaced."""
    code = exc.sqlstate
    primary = exc.diag.message_primary or type(exc).__name__
    if code and code.startswith("22"):
        primary = "a value does not fit its column"
    sqlstate = f"(SQLSTATE {code})"
    # a refusal of the shop's tables the engine raised again says it already
    return primary if primary.endswith(sqlstate) else f"{primary} {sqlstate}"


def in_transaction(
    conn: psycopg.Connection[Any],
    work: Callable[[], T],
    failed: type[DatabaseRefused],
    refused: Callable[[str, str], DatabaseRefused],
) -> T:
    """`work()` in a transaction (a savepoint inside one), its errors mapped by `refusals`."""
    with refusals(failed, refused), conn.transaction():
        return work()
