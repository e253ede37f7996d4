"""The report views (schema `report`, no personal data) as `syncctl report` prints them: read
one (`fetch`) and format it as aligned columns, CSV or JSON (`render`)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

REPORTS = {
    "actions": ("actions_per_day", "day DESC, action"),
    "merges": ("merge_rows_moved", "at DESC"),
    "anonymisations": ("anonymisations", "at DESC"),
    "lag": ("sync_lag", "hour DESC"),
    "dead-letters": ("dead_letters", "events DESC"),
    "link-conflicts": ("link_conflicts", "kind"),
    "outbox": ("outbox", "event_type, state"),
    "erasure-requests": ("erasure_requests", "received_at DESC, request_id DESC"),
    "gdpr-daily": ("gdpr_daily_runs", "slot DESC"),
}


class Table(NamedTuple):
    """A report's column names and rows."""

    columns: list[str]
    rows: list[Any]


def fetch(conn: psycopg.Connection[Any], name: str, limit: int) -> Table:
    view, order = REPORTS[name]
    query = sql.SQL("SELECT * FROM report.{} ORDER BY {} LIMIT %s").format(
        sql.Identifier(view), sql.SQL(order)
    )
    cur = conn.execute(query, [limit])
    return Table([d.name for d in cur.description or []], cur.fetchall())


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def render(columns: list[str], rows: list[Any], style: str) -> str:
    if style == "json":
        return json.dumps([dict(zip(columns, map(_plain, r), strict=True)) for r in rows], indent=2)
    if style == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([[_plain(v) for v in r] for r in rows])
        return out.getvalue()
    cells = [columns] + [["" if v is None else str(_plain(v)) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
