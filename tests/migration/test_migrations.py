"""A database built from the migrations equals one built from today's sql/ files, and the
migrations can be walked down and up again without leaving a difference."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
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


def test_security_is_written_in_each_functions_source() -> None:
    """SECURITY DEFINER is never switched on (or off) after the fact: sql/ and the migrations
    hold no ALTER FUNCTION ... SECURITY, so what a function's source says is what runs."""
    root = Path(__file__).resolve().parents[2]
    altered = re.compile(r"ALTER\s+FUNCTION[^;]*\bSECURITY\b", re.IGNORECASE)
    sources = [*root.glob("sql/**/*.sql"), *root.glob("migrations/**/*.sql")]
    sources += root.glob("migrations/versions/*.py")
    assert sources
    assert [p.name for p in sources if altered.search(p.read_text(encoding="utf-8"))] == []


def test_every_function_follows_the_security_rules(fresh_database: Callable[[str], str]) -> None:
    dsn = fresh_database("mig_rules")
    schema.upgrade(dsn)
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT * FROM sync.function_defects()").fetchall() == []
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname IN ('shop', 'sync', 'gdpr', 'report', 'syncctl')"
            " UNION SELECT DISTINCT pg_get_userbyid(p.proowner) FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname IN ('shop', 'sync', 'gdpr', 'report')"
            " UNION SELECT pg_get_userbyid(n.nspowner) FROM pg_namespace n"
            " WHERE n.nspname IN ('shop', 'sync', 'gdpr', 'report', 'syncctl')"
            " UNION SELECT DISTINCT pg_get_userbyid(t.typowner) FROM pg_type t"
            " JOIN pg_namespace n ON n.oid = t.typnamespace"
            " WHERE n.nspname IN ('shop', 'sync', 'gdpr', 'report')"
        ).fetchall()
        assert owners == [("syncctl_owner",)]
