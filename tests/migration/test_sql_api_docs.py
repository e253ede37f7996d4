"""docs/sql-api.md documents every public function and view of a migrated database, and
nothing that does not exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

DOC = Path(__file__).resolve().parents[2] / "docs" / "sql-api.md"
# gdpr arrives with a later revision; its public functions and views will need a heading too
SCHEMAS = ["shop", "sync", "report", "gdpr", "syncmap"]


def test_every_public_function_and_view_is_documented(conn: psycopg.Connection[Any]) -> None:
    functions = {
        r[0]
        for r in conn.execute(
            "SELECT n.nspname || '.' || p.proname FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = ANY(%s) AND p.proname !~ '^_'"
            "   AND p.prorettype <> 'trigger'::regtype",
            [SCHEMAS],
        )
    }
    views = {
        r[0]
        for r in conn.execute(
            "SELECT schemaname || '.' || viewname FROM pg_views WHERE schemaname = ANY(%s)",
            [SCHEMAS],
        )
    }
    documented = set(re.findall(r"^### ([a-z_]+\.[a-z_]+)$", DOC.read_text(), re.MULTILINE))
    assert functions and views
    assert sorted((functions | views) - documented) == [], "undocumented"
    assert sorted(documented - (functions | views)) == [], "documented but missing"
