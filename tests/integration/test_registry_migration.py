"""Revision 0002 can be walked back to 0001 and forward again: the downgrade restores 0001's
definitions exactly, and data staged before the upgrade survives both ways."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from syncctl import schema


@pytest.fixture
def database(server_dsn: Callable[[str], str]) -> Iterator[Callable[[str], str]]:
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


def _describe(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    """schema.describe, with column positions as ranks: a column dropped by a downgrade and
    added again by the upgrade gets a new attnum (PostgreSQL leaves the dropped one's hole),
    but its place among the table's columns is the same."""
    with psycopg.connect(dsn) as conn:
        described = schema.describe(conn)
    ranked, rank, table = [], 0, None
    for row in described["columns"]:
        rank = rank + 1 if row[:2] == table else 1
        table = row[:2]
        ranked.append((*row[:3], rank, *row[4:]))
    described["columns"] = ranked
    return described


def test_downgrade_to_0001_restores_0001(database: Callable[[str], str]) -> None:
    only_0001, walked = database("reg_only_0001"), database("reg_walked")
    schema.upgrade(only_0001, "0001_initial")
    schema.upgrade(walked)
    with psycopg.connect(walked) as conn:
        conn.execute(
            "INSERT INTO sync.audit (actor, action, outcome, related_number)"
            " VALUES ('t', 'customer.merged', 'applied', 'TX1')"
        )
    at_head = _describe(walked)

    schema.downgrade(walked, "0001_initial")
    reference = _describe(only_0001)
    for kind, rows in reference.items():
        assert _describe(walked)[kind] == rows, f"{kind} differ after downgrade"

    schema.upgrade(walked)
    for kind, rows in at_head.items():
        assert _describe(walked)[kind] == rows, f"{kind} differ after upgrade again"
    with psycopg.connect(walked) as conn:
        assert conn.execute("SELECT count(*) FROM sync.audit").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM sync.pii_column").fetchone() != (0,)
