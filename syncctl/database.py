"""Connections and the named SQL blocks of queries.sql (and of other .sql files beside it).
The DSN comes from --dsn, DATABASE_URL or the libpq PG* variables; with none of them, the
embedded default is used (see syncctl.environment)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import psycopg

from syncctl.errors import DatabaseUnavailable

_LIBPQ_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")
_BLOCK = re.compile(r"^-- name: (?P<name>\w+)\n", re.MULTILINE)


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
        # Every query syncctl sends names its objects schema-qualified; an empty search_path
        # keeps objects another role created in a searched schema out of them.
        return psycopg.connect(
            dsn,
            autocommit=autocommit,
            application_name=application_name,
            options="-c search_path=",
        )
    except psycopg.OperationalError as exc:
        # libpq's message names host and database, never data
        raise DatabaseUnavailable(f"cannot connect to the database: {exc}".strip()) from exc


@cache
def named_queries(file_name: str) -> dict[str, str]:
    """The named blocks ("-- name: <name>") of a .sql file next to this module."""
    text = (Path(__file__).parent / file_name).read_text(encoding="utf-8")
    parts = _BLOCK.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def queries() -> dict[str, str]:
    """The named blocks of queries.sql."""
    return named_queries("queries.sql")
