"""syncctl's own sessions run without JIT: the engine's catalog queries are estimated high
enough that PostgreSQL, where its LLVM module is installed (Debian's, Ubuntu's and the PGDG
packages), compiles them in every merge, anonymisation and delete, at about a quarter of a
second each time (on pagila: 0.5-1.3 s an event, against 53-130 ms without JIT). A DSN or
PGOPTIONS that asks for JIT still gets it."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from syncctl.database import connect


def _jit(dsn: str) -> str:
    with connect(dsn) as conn:
        row = conn.execute("SHOW jit").fetchone()
    assert row is not None
    return str(row[0])


def test_syncctl_sessions_run_without_jit(postgresql: psycopg.Connection[Any], dsn: str) -> None:
    row = postgresql.execute("SHOW jit").fetchone()
    assert row is not None and row[0] == "on", "the server's default this test relies on"
    assert _jit(dsn) == "off"


def test_a_dsn_that_asks_for_jit_gets_it(dsn: str) -> None:
    assert _jit(make_conninfo(dsn, options="-c jit=on")) == "on"
