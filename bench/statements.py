"""The named SQL blocks of bench/statements.sql, and the few maintenance commands a fair
measurement needs between runs (VACUUM ANALYZE, CHECKPOINT)."""

from __future__ import annotations

import contextlib
import re
import time
from functools import cache
from pathlib import Path
from typing import Any

import psycopg

_BLOCK = re.compile(r"^-- name: (?P<name>\w+)\n", re.MULTILINE)


@cache
def statements() -> dict[str, str]:
    text = (Path(__file__).parent / "statements.sql").read_text(encoding="utf-8")
    parts = _BLOCK.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def settle(dsn: str) -> None:
    """VACUUM ANALYZE and a CHECKPOINT, so a timed run neither inherits the previous run's dirty
    pages and pending WAL nor plans with stale statistics."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        # a given DSN without pg_checkpoint: measure anyway
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def scalar(conn: psycopg.Connection[Any], name: str) -> Any:
    row = conn.execute(statements()[name]).fetchone()
    return None if row is None else row[0]


def timed_batches(dsn: str, name: str, params: dict[str, Any]) -> tuple[float, int]:
    """Run the named batch statement (it takes %(after)s and returns the batch's last id and
    how many rows it changed) again from that id, one transaction each, until it returns no
    id: the seconds it took and the rows changed in all."""
    changed = 0
    after = 0
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        while True:
            with conn.transaction():
                row = conn.execute(statements()[name], {**params, "after": after}).fetchone()
            if row is None or row[0] is None:
                return time.perf_counter() - started, changed
            after, changed = int(row[0]), changed + int(row[1])
