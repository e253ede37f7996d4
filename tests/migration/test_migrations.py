"""A database built from the migrations equals one built from today's sql/ files, and the
migrations can be walked down and up again without leaving a difference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from syncctl import schema


def _describe(dsn: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as conn:
        return schema.describe(conn)


def _assert_same(left: dict[str, list[Any]], right: dict[str, list[Any]]) -> None:
    for kind in left:
        assert left[kind] == right[kind], f"{kind} differ"


def test_migrations_equal_sql_definitions(fresh_database: Callable[[str], str]) -> None:
    migrated, built = fresh_database("mig_migrated"), fresh_database("mig_built")
    schema.upgrade(migrated)
    schema.build_from_sql(built)
    left, right = _describe(migrated), _describe(built)
    assert left["columns"], "the description found no columns: it compares nothing"
    _assert_same(left, right)


def test_sql_definitions_are_rerunnable(fresh_database: Callable[[str], str]) -> None:
    dsn = fresh_database("mig_rerun")
    schema.build_from_sql(dsn)
    once = _describe(dsn)
    schema.build_from_sql(dsn)
    _assert_same(once, _describe(dsn))


def test_downgrade_then_upgrade_ends_equal(fresh_database: Callable[[str], str]) -> None:
    dsn = fresh_database("mig_roundtrip")
    schema.upgrade(dsn)
    before = _describe(dsn)
    schema.downgrade(dsn, "base")
    assert schema.current_revisions(dsn) == ()
    assert _describe(dsn)["columns"] == []
    schema.upgrade(dsn)
    assert schema.current_revisions(dsn) == schema.head_revisions()
    _assert_same(before, _describe(dsn))
