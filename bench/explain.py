"""Scenario `explain`: where the apply's time goes, for the docs. On a database holding the
insert run, one page (10,000 events, half updates) is staged with the inbox trigger disabled,
then each step the trigger would run is timed on its own, the decision statement and the
statement of the write generated from the schema's mapping (syncmap.write_customers, given the
arrays the decision passes it) are shown with EXPLAIN (ANALYZE, BUFFERS), and the per-row cost
of the validation expressions is measured. Everything is rolled back; nothing here is a
goal."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench import inbox_copy
from bench.databases import Server
from bench.dataset import Dataset
from bench.report import Row, size_label
from bench.statements import settle, statements

PAGE = 10_000
# the rows COPYed straight into the inbox (the profile times the apply's steps apart)
INBOX_COPY = (
    "COPY sync.inbox (source, seq, event_id, event_type, customer_number, version, occurred_at,"
    " payload) FROM STDIN (FORMAT BINARY)"
)
# the parameters of syncmap.write_customers and their element types
_WRITE_ARRAYS = (
    ("p_numbers", "text"),
    ("p_versions", "integer"),
    ("p_snapshots", "jsonb"),
    ("p_new", "boolean"),
)

# Validation expressions of sync.event_defect, each measured over the page by itself.
_EXPRESSIONS = [
    ("event_id !~ '^[A-Za-z0-9._:-]{1,100}$'", "i.event_id !~ '^[A-Za-z0-9._:-]{1,100}$'"),
    (
        "event_id !~ '^[A-Za-z0-9._:-]+$' OR length(event_id) > 100",
        "(i.event_id !~ '^[A-Za-z0-9._:-]+$' OR length(i.event_id) > 100)",
    ),
    ("customer_number !~ '^[A-Za-z0-9]{1,32}$'", "i.customer_number !~ '^[A-Za-z0-9]{1,32}$'"),
    (
        "customer_number !~ '^[A-Za-z0-9]+$' OR length(..) > 32",
        "(i.customer_number !~ '^[A-Za-z0-9]+$' OR length(i.customer_number) > 32)",
    ),
    (
        "sync.event_defect(...) IS NULL",
        "sync.event_defect(i.event_id, i.event_type, i.customer_number, i.version, "
        "i.occurred_at, i.payload) IS NULL",
    ),
    (
        "jsonb_populate_record(customer_snapshot, payload->'customer')",
        "(pg_catalog.jsonb_populate_record(NULL::sync.customer_snapshot, "
        "i.payload -> 'customer')).customer_number IS NOT NULL",
    ),
]


def _timed(conn: psycopg.Connection[Any], query: str, params: Any = None) -> float:
    started = time.perf_counter()
    conn.execute(query, params).fetchall()
    return time.perf_counter() - started


def _explain(conn: psycopg.Connection[Any], body: str, first: int, last: int) -> list[str]:
    """EXPLAIN ANALYZE of the decision statement of sync._apply_upserts, with the range as
    literals: the first WITH ... statement of its body, without its INTO clause."""
    found = re.search(r"(WITH staged AS .*?)\n\s*INTO [^;]*?\n(\s*FROM decided AS d);", body, re.S)
    if found is None:
        found = re.search(r"(WITH staged AS .*?)()(?:;|$)", body, re.S)
    if found is None:
        return ["(the body of sync._apply_upserts has a shape this tool does not know)"]
    statement = (found.group(1) + found.group(2)).replace("p_first", str(first))
    statement = statement.replace("p_last", str(last)).replace("p_ids", "NULL::bigint[]")
    # the run's own span of the page (variables of the function): the whole page here
    statement = re.sub(r"\blow\b", str(first), statement)
    statement = re.sub(r"\bhigh\b", str(last), statement)
    conn.execute("SAVEPOINT explained")
    try:
        return [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement)]
    finally:
        conn.execute("ROLLBACK TO SAVEPOINT explained")


def _explain_write(conn: psycopg.Connection[Any], first: int, last: int) -> list[str]:
    """EXPLAIN ANALYZE of the statement of the generated syncmap.write_customers, its arrays
    bound as parameters: the page's upserts (none of this page's is stale or a duplicate), new
    when the customer is not mapped yet."""
    s = statements()
    source = conn.execute(s["write_customers_body"]).fetchone()
    found = re.search(r"RETURN QUERY\s+(.*?);\s*END", source[0] if source else "", re.S)
    if found is None:
        return ["(the body of syncmap.write_customers has a shape this tool does not know)"]
    statement = found.group(1)
    for name, kind in _WRITE_ARRAYS:
        statement = re.sub(rf"\b{name}\b", f"%({name})s::{kind}[]", statement)
    arrays = conn.execute(s["write_customers_arrays"], {"first": first, "last": last}).fetchone()
    params = dict(zip([name for name, _ in _WRITE_ARRAYS], arrays or (), strict=True))
    conn.execute("SAVEPOINT explained")
    try:
        return [r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)]
    finally:
        conn.execute("ROLLBACK TO SAVEPOINT explained")


def run(server: Server, data: Dataset, log: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    page = min(PAGE, data.size)
    lines = [
        f"### Profile of one apply page ({page} events, half updates, "
        f"size {size_label(data.size)}, schema {server.shop.name})",
        "",
    ]
    log(f"explain {size_label(data.size)}: staging the insert run")
    with server.clone() as dsn:
        settle(dsn)
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            for k in range(0, data.size, PAGE):
                inbox_copy.copy_rows(conn, INBOX_COPY, data.inserts.rows[k : k + PAGE])
                conn.commit()
        settle(dsn)
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            conn.execute("ALTER TABLE sync.inbox DISABLE TRIGGER inbox_apply_staged")
            started = time.perf_counter()
            inbox_copy.copy_rows(conn, INBOX_COPY, data.mixed.rows[:page])
            copy_seconds = time.perf_counter() - started
            first, last = conn.execute(  # type: ignore[misc]
                "SELECT min(id), max(id) FROM sync.inbox WHERE seq > %s", (data.size,)
            ).fetchone()
            per_row = {
                label: _timed(
                    conn,
                    "SELECT count(*) FROM sync.inbox AS i WHERE i.id "
                    f"BETWEEN {first} AND {last} AND {expression}",
                )
                for label, expression in _EXPRESSIONS
            }
            scan = _timed(
                conn, f"SELECT count(*) FROM sync.inbox AS i WHERE i.id BETWEEN {first} AND {last}"
            )
            steps = {
                "COPY into sync.inbox (trigger disabled)": copy_seconds,
                "sync._dead_letter_defects": _timed(
                    conn, "SELECT sync._dead_letter_defects(%s, %s)", (first, last)
                ),
            }
            body = conn.execute(statements()["apply_upserts_body"]).fetchone()[0]  # type: ignore[index]
            plan = _explain(conn, body, first, last)
            write_plan = _explain_write(conn, first, last)
            steps["sync._apply_upsert_run"] = _timed(
                conn, "SELECT sync._apply_upsert_run(%s, %s, NULL)", (first, last)
            )
            steps["summary from sync.inbox_status"] = _timed(
                conn,
                "SELECT st.state, count(*) FROM sync.inbox_status AS st "
                "WHERE st.inbox_id BETWEEN %s AND %s GROUP BY st.state",
                (first, last),
            )
            conn.rollback()
    lines.append("| step | ms | us/event |")
    lines.append("|---|---|---|")
    for label, seconds in steps.items():
        lines.append(f"| {label} | {seconds * 1000:.0f} | {seconds / page * 1e6:.1f} |")
    lines += [
        "",
        f"Per-row cost of validation expressions (scan of the page alone: {scan * 1000:.0f} ms):",
        "",
        "| expression | ms per page | us/event |",
        "|---|---|---|",
    ]
    for label, seconds in per_row.items():
        lines.append(f"| `{label}` | {seconds * 1000:.0f} | {(seconds - scan) / page * 1e6:.1f} |")
    lines += [
        "",
        "EXPLAIN (ANALYZE, BUFFERS) of the decision+upsert statement of sync._apply_upserts "
        "(literal range, rolled back):",
        "",
        "```",
        *plan,
        "```",
        "",
        "EXPLAIN (ANALYZE, BUFFERS) of the statement of the generated syncmap.write_customers "
        "(its arrays as parameters, rolled back):",
        "",
        "```",
        *write_plan,
        "```",
    ]
    return [], ["\n".join(lines)]
