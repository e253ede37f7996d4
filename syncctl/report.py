"""`syncctl report NAME --format table|csv|json`: the report views, printed. The views hold no
personal data; this module only formats what they return."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import click
import psycopg
from psycopg import sql

from syncctl.command_edge import HasDsn, connection, edge

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


def fetch(conn: psycopg.Connection[Any], name: str, limit: int) -> tuple[list[str], list[Any]]:
    view, order = REPORTS[name]
    query = sql.SQL("SELECT * FROM report.{} ORDER BY {} LIMIT %s").format(
        sql.Identifier(view), sql.SQL(order)
    )
    cur = conn.execute(query, [limit])
    return [d.name for d in cur.description or []], cur.fetchall()


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


@click.command("report")
@click.argument("name", type=click.Choice(sorted(REPORTS)))
@click.option(
    "--format",
    "style",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Aligned columns, CSV with a header row, or a JSON array of objects.",
)
@click.option("--limit", default=1000, show_default=True, help="At most this many rows.")
@click.pass_obj
@edge
def report(settings: HasDsn, name: str, style: str, limit: int) -> None:
    """Print a report (no personal data): actions, merges, anonymisations, lag, ..."""
    with connection(settings) as conn:
        columns, rows = fetch(conn, name, limit)
    click.echo(render(columns, rows, style))
