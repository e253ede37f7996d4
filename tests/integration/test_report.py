"""The report views tell an operator what happened, by source, with reason codes, lag and
counts, and carry no personal data of the customers they count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from syncctl.report import fetch
from tests.feed import event, snapshot, stage, upserted


def _occurred(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).isoformat()


@pytest.fixture
def history(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """tritonX: four customers, a merge, an anonymisation, a malformed event; the back office:
    one anonymisation; the shop: a login whose email two local customers share."""
    stage(conn, [upserted(f"TX0000000{n}", 1) for n in range(1, 5)])
    stage(conn, [event("customer.merged", "TX00000001", 2, into="TX00000002")])
    stage(
        conn,
        [
            event("customer.anonymized", "TX00000003", 2, reason_code="AVG-17"),
            {**event("customer.upserted", "TX00000005", 1), "customer": "not an object"},
        ],
    )
    row = conn.execute("SELECT sync.resolve_customer('TX00000004')").fetchone()
    assert row is not None
    conn.execute("SELECT sync.anonymise_from_backoffice(%s, 'RET:2y', 'bo:7')", [row[0]])
    conn.execute(
        "INSERT INTO shop.customer (email) VALUES ('pair@example.nl'), ('pair@example.nl')"
    )
    stage(conn, [upserted("TX00000099", 1, email="pair@example.nl")])
    conn.execute("SELECT * FROM sync.login('TX00000099', 'pair@example.nl')")
    conn.commit()
    return conn


def _rows(conn: psycopg.Connection[Any], view: str) -> list[dict[str, Any]]:
    cur = conn.execute(f"SELECT * FROM report.{view}")
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_actions_per_day_by_type_and_source(history: psycopg.Connection[Any]) -> None:
    counts = {
        (r["action"], r["source"]): r["actions"]
        for r in _rows(history, "actions_per_day")
        if r["outcome"] == "applied"
    }
    assert counts[("customer.upserted", "tritonx")] == 5
    assert counts[("customer.merged", "tritonx")] == 1
    assert counts[("customer.anonymized", "tritonx")] == 1
    assert counts[("customer.anonymized", "back office")] == 1
    day = _rows(history, "actions_per_day")[0]["day"]
    assert day.date() == datetime.now(UTC).date() or abs(day - datetime.now(UTC)).days <= 1


def test_merges_list_the_rows_moved_per_table(history: psycopg.Connection[Any]) -> None:
    moved = {
        r["table_name"]: r["rows_moved"]
        for r in _rows(history, "merge_rows_moved")
        if (r["old_number"], r["survivor_number"]) == ("TX00000001", "TX00000002")
    }
    assert moved.get("shop.customer") == 1, moved


def test_anonymisations_carry_their_reason_codes_and_sources(
    history: psycopg.Connection[Any],
) -> None:
    found = {
        (r["customer_number"], r["source"], r["reason_code"])
        for r in _rows(history, "anonymisations")
    }
    assert ("TX00000003", "tritonx", "AVG-17") in found
    assert ("TX00000004", "back office", "RET:2y") in found


def test_sync_lag_from_tritonx_to_the_applied_effect(conn: psycopg.Connection[Any]) -> None:
    stage(conn, [{**upserted("TX00000001", 1), "occurred_at": _occurred(120)}])
    stage(conn, [{**upserted("TX00000002", 1), "occurred_at": _occurred(20)}])
    [lag] = _rows(conn, "sync_lag")
    assert lag["events"] == 2
    assert 60 <= lag["avg_seconds"] <= 80, lag
    assert 120 <= lag["max_seconds"] <= 140, lag


def test_dead_letters_and_link_conflicts_are_counted(history: psycopg.Connection[Any]) -> None:
    dead = _rows(history, "dead_letters")
    assert sum(r["events"] for r in dead) == 1
    assert "customer" in dead[0]["reason"]
    conflicts = {r["kind"]: (r["open"], r["resolved"]) for r in _rows(history, "link_conflicts")}
    assert conflicts == {"ambiguous_email": (1, 0)}
    outbox = {(r["event_type"], r["state"]): r["events"] for r in _rows(history, "outbox")}
    assert sum(outbox.values()) == 1


def test_no_report_row_holds_personal_data(history: psycopg.Connection[Any]) -> None:
    # every personal value long enough not to occur by chance (a 1-letter addition would)
    personal = {
        str(v)
        for k, v in snapshot("TX00000001").items()
        if k in ("email", "first_name", "last_name", "birth_date", "phone", "mobile", "street")
        or k in ("postcode", "city", "loyalty_card")
    } | {"pair@example.nl", "tx00000001@example.nl", "van der Berg"}
    views = [
        r[0]
        for r in history.execute(
            "SELECT table_name FROM information_schema.views WHERE table_schema = 'report'"
        )
    ]
    assert len(views) >= 7
    for view in views:
        text = " ".join(str(v) for row in _rows(history, view) for v in row.values())
        assert [p for p in personal if p in text] == [], view


def test_erasure_requests_from_received_to_done(history: psycopg.Connection[Any]) -> None:
    received = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    cid = history.execute("SELECT sync.resolve_customer('TX00000002')").fetchone()[0]  # type: ignore[index]
    request = history.execute(
        "SELECT gdpr.receive_erasure(%s, 'bo:7', %s)", [cid, received]
    ).fetchone()[0]  # type: ignore[index]
    verified = received + timedelta(hours=2)
    history.execute("SELECT gdpr.verify_erasure(%s, 'bo:7', %s)", [request, verified])
    history.execute("SELECT gdpr.schedule_erasure(%s, 'bo:7', '3 days', %s)", [request, verified])
    history.execute(
        "SELECT gdpr.execute_erasure(%s, 'bo:7', %s)", [request, verified + timedelta(days=3)]
    )
    history.commit()
    columns, rows = fetch(history, "erasure-requests", 10)
    row = dict(zip(columns, rows[0], strict=True))
    assert (row["request_id"], row["customer_key"], row["state"]) == (request, str(cid), "done")
    assert row["customer_number"] == "TX00000002"
    assert row["received_to_finished"] == timedelta(days=3, hours=2)
    assert row["grace_period"] == timedelta(days=3)
    assert (row["attempts"], row["residue_hits"], row["last_error"]) == (1, 0, None)
    assert row["columns_searched"] > 50
    personal = {str(v) for k, v in snapshot("TX00000002").items() if k in ("email", "last_name")}
    text = " ".join(str(v) for v in row.values())
    assert [p for p in personal if p in text] == []


def test_no_report_view_reads_a_shop_table(conn: psycopg.Connection[Any]) -> None:
    """The reports (and the gdpr views they sit beside) work on any mapped schema: no view
    depends on a table outside the engine's schemas (the mapped customer table is reached
    through the mapping, as its owner)."""
    outside = conn.execute(
        "SELECT DISTINCT v.relname, t.relnamespace::regnamespace::text || '.' || t.relname"
        " FROM pg_rewrite AS w"
        " JOIN pg_class AS v ON v.oid = w.ev_class"
        " JOIN pg_depend AS d ON d.objid = w.oid AND d.classid = 'pg_rewrite'::regclass"
        " JOIN pg_class AS t ON t.oid = d.refobjid AND d.refclassid = 'pg_class'::regclass"
        " WHERE v.relnamespace IN ('report'::regnamespace, 'gdpr'::regnamespace)"
        "   AND t.oid <> v.oid"
        "   AND t.relnamespace::regnamespace::text NOT IN ('sync', 'gdpr', 'report')"
    ).fetchall()
    assert outside == []
