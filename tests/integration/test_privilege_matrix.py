"""The privilege matrix in docs/security.md is the catalog's: every privilege the controller,
webshop and reporting roles hold on syncctl's objects (schemas, tables and views with their
columns, functions) is in the table, and nothing in the table is missing from the catalog.
PUBLIC holds nothing at all."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
KINDS = ("controller", "webshop", "reporting")
SCHEMAS = ["shop", "sync", "gdpr", "report", "syncctl", "syncmap"]
ACTIONS = {
    "SELECT": "read",
    "INSERT": "insert",
    "UPDATE": "update",
    "DELETE": "delete",
    "TRUNCATE": "truncate",
    "REFERENCES": "references",
    "TRIGGER": "trigger",
    "EXECUTE": "call",
    "USAGE": "usage",
    "CREATE": "create",
}

GRANTS = """
WITH role AS (
    SELECT k.kind, r.oid FROM unnest(%(kinds)s::text[]) AS k(kind)
    JOIN pg_roles AS r ON r.rolname = sync.role_name(k.kind)
    UNION ALL SELECT 'PUBLIC', 0
), relation AS (
    SELECT c.oid, c.relacl, n.nspname || '.' || c.relname AS name
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
)
SELECT 'schema ' || n.nspname, role.kind, a.privilege_type, NULL
FROM pg_namespace AS n, aclexplode(n.nspacl) AS a JOIN role ON role.oid = a.grantee
WHERE n.nspname = ANY(%(schemas)s)
UNION ALL
SELECT relation.name, role.kind, a.privilege_type, NULL
FROM relation, aclexplode(relation.relacl) AS a JOIN role ON role.oid = a.grantee
UNION ALL
SELECT relation.name, role.kind, a.privilege_type, att.attname
FROM relation JOIN pg_attribute AS att ON att.attrelid = relation.oid AND att.attnum > 0,
     aclexplode(att.attacl) AS a JOIN role ON role.oid = a.grantee
UNION ALL
SELECT p.oid::regprocedure::text, role.kind, a.privilege_type, NULL
FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace,
     aclexplode(p.proacl) AS a JOIN role ON role.oid = a.grantee
WHERE n.nspname = ANY(%(schemas)s)
"""


def catalog_matrix(conn: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
    """object -> role kind -> its cell: actions in a fixed order, column lists in brackets."""
    whole: dict[tuple[str, str], set[str]] = defaultdict(set)
    columns: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    rows = conn.execute(GRANTS, {"kinds": list(KINDS), "schemas": SCHEMAS}).fetchall()
    for name, kind, privilege, column in rows:
        if column is None:
            whole[(name, kind)].add(privilege)
        else:
            columns[(name, kind, privilege)].append(column)
    cells: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    order = list(ACTIONS)
    for (name, kind), privileges in whole.items():
        for privilege in sorted(privileges, key=order.index):
            cells[name][kind].append(ACTIONS[privilege])
    for (name, kind, privilege), names in sorted(columns.items()):
        if privilege in whole.get((name, kind), set()):
            continue
        cells[name][kind].append(f"{ACTIONS[privilege]} ({', '.join(sorted(names))})")
    return {
        name: {kind: ", ".join(actions) for kind, actions in by_kind.items()}
        for name, by_kind in cells.items()
    }


def documented_matrix() -> dict[str, dict[str, str]]:
    matrix: dict[str, dict[str, str]] = {}
    section = DOC.read_text(encoding="utf-8").split("## The privilege matrix", 1)[1]
    for line in section.split("\n## ", 1)[0].splitlines():
        found = re.match(r"^\| `([^`]+)` \|(.*)\|$", line)
        if not found:
            continue
        cells = [c.strip() for c in found.group(2).split("|")]
        assert len(cells) == len(KINDS), line
        matrix[found.group(1)] = {k: c for k, c in zip(KINDS, cells, strict=True) if c}
    return matrix


def as_markdown(matrix: dict[str, dict[str, str]]) -> str:
    lines = ["| object | " + " | ".join(KINDS) + " |", "|---|" + "---|" * len(KINDS)]
    for name in sorted(matrix, key=lambda n: (not n.startswith("schema "), n)):
        lines.append(f"| `{name}` | " + " | ".join(matrix[name].get(k, "") for k in KINDS) + " |")
    return "\n".join(lines)


def test_public_holds_nothing(conn: psycopg.Connection[Any]) -> None:
    matrix = catalog_matrix(conn)
    assert matrix, "no grants found: the query compares nothing"
    assert {name: cells["PUBLIC"] for name, cells in matrix.items() if "PUBLIC" in cells} == {}


def test_the_documented_matrix_is_the_catalogs(conn: psycopg.Connection[Any]) -> None:
    actual = catalog_matrix(conn)
    documented = documented_matrix()
    assert documented == actual, "docs/security.md differs; the catalog says:\n" + as_markdown(
        actual
    )
