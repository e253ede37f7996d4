"""The tritonX field contract as the places that state it say it, read mechanically (the list of
places is the TRITONX FIELD CONTRACT header in sql/20_sync_tables.sql)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "tritonx-contract.md"

# the JSON type each SQL type of sync.customer_snapshot is sent as
JSON_TYPES = {
    "character varying": "string",
    "date": "string",
    "timestamp with time zone": "string",
    "integer": "number",
    "boolean": "boolean",
}


def documented_fields() -> dict[str, tuple[str, int | None]]:
    """field -> (JSON type, maximum length) from docs/tritonx-contract.md's snapshot table, in
    the table's order."""
    text = CONTRACT.read_text(encoding="utf-8")
    section = text[text.index("### Snapshot fields") : text.index("### Errors and retries")]
    fields = {}
    for name, kind, limit in re.findall(
        r"^\| `([a-z_]+)` \| ([a-z ]+) \| (\d+|-) \|", section, flags=re.MULTILINE
    ):
        fields[name] = (kind.split()[0], None if limit == "-" else int(limit))
    return fields


def snapshot_type(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, int | None]]:
    """field -> (SQL type without modifier, varchar length or None) of sync.customer_snapshot,
    in attribute order."""
    rows = conn.execute(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, NULL),"
        " CASE WHEN a.atttypid = 'varchar'::regtype THEN a.atttypmod - 4 END"
        " FROM pg_catalog.pg_attribute AS a"
        " JOIN pg_catalog.pg_type AS t ON t.typrelid = a.attrelid"
        " WHERE t.oid = 'sync.customer_snapshot'::regtype AND a.attnum > 0"
        " AND NOT a.attisdropped ORDER BY a.attnum"
    ).fetchall()
    return {str(name): (str(kind), limit) for name, kind, limit in rows}


def transform_fields(source: Any) -> Iterator[str]:
    """The snapshot fields one source expression of a mapping reads (format 1)."""
    if isinstance(source, str):
        yield source
    elif isinstance(source, dict):
        if isinstance(source.get("field"), str):
            yield source["field"]
        for key in ("join", "first_of"):
            yield from (f for f in source.get(key, []) if isinstance(f, str))


def mapped_fields(document: dict[str, Any]) -> list[str]:
    """Every field a mapping's column sources read, once per use (customer and related tables)."""
    tables = [document.get("customer", {}), *document.get("related", [])]
    return [
        field
        for table in tables
        for source in table.get("columns", {}).values()
        for field in transform_fields(source)
    ]


def mapped_columns(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(schema, table, column) of every column a mapping writes from the snapshot."""
    tables = [document.get("customer", {}), *document.get("related", [])]
    return [
        (table["schema"], table["table"], column)
        for table in tables
        for column in table.get("columns", {})
    ]
