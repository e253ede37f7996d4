"""customer.upserted applied by the inbox trigger: tritonX is leading, versions guard, each
event is decided once, bad records are dead-lettered without blocking the rest."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.feed import event, snapshot, stage, upserted
from tests.shops import ShopSchema


def _audit(conn: psycopg.Connection[Any], number: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT outcome, reason, version FROM sync.audit WHERE customer_number = %s ORDER BY id",
        [number],
    ).fetchall()


def test_upsert_creates_then_overwrites_tritonx_fields_and_keeps_shop_fields(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    first = upserted("TX00000001", 1)
    outcome = stage(conn, [first])
    assert outcome.states == {"applied": 1}
    assert shop.read_row(conn, "TX00000001") == shop.expected_row(first["customer"])
    key = shop.key_of(conn, "TX00000001")
    assert key is not None
    shop.set_own_value(conn, key, "nl")
    conn.commit()
    second = upserted("TX00000001", 2, city="Utrecht", infix=None, house_number=7)
    stage(conn, [second])
    row = shop.read_row(conn, "TX00000001")
    assert row == shop.expected_row(second["customer"])
    assert row != shop.expected_row(first["customer"])
    assert shop.own_value(conn, key) == "nl"
    assert shop.key_of(conn, "TX00000001") == key
    assert shop.version_of(conn, "TX00000001") == 2
    assert _audit(conn, "TX00000001") == [("applied", "created", 1), ("applied", "updated", 2)]


def test_duplicates_and_stale_versions_are_recorded_and_never_applied(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    v1, v2, v3 = (upserted("TX00000002", v, city=f"city-{v}") for v in (1, 2, 3))
    stage(conn, [v1, v3])
    outcome = stage(conn, [v3, v2, v1, v3])
    assert shop.read_row(conn, "TX00000002") == shop.expected_row(v3["customer"])
    assert shop.version_of(conn, "TX00000002") == 3
    assert outcome.states == {"duplicate": 3, "skipped": 1}
    assert sorted(_audit(conn, "TX00000002"), key=lambda row: row[2]) == [
        ("skipped", "superseded", 1),
        ("skipped", "stale", 2),
        ("applied", "created", 3),
    ]


def test_malformed_records_are_dead_lettered_and_the_rest_applies(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    bad_date = upserted("TX00000003", 1, birth_date="2026-02-31")
    bad_version = upserted("TX00000004", 1)
    bad_version["version"] = "seven"
    no_id = upserted("TX00000005", 1)
    del no_id["event_id"]
    page = [
        bad_date,
        upserted("TX00000006", 1),
        "not an object",
        bad_version,
        no_id,
        upserted("TX00000007", 1),
    ]
    outcome = stage(conn, page)
    assert outcome.states == {"applied": 2, "dead_letter": 4}
    reasons = dict(
        conn.execute(
            "SELECT i.customer_number, d.reason FROM sync.dead_letter d "
            "JOIN sync.inbox i ON i.id = d.inbox_id"
        ).fetchall()
    )
    assert reasons["TX00000003"] == "customer.birth_date has a value that does not fit its type"
    assert reasons["TX00000004"] == "version is missing or not a positive integer"
    assert reasons["TX00000005"] == "event_id is missing or not an identifier"
    assert reasons[None] == "record is not a JSON object"
    assert "2026-02-31" not in " ".join(reasons.values())
    stored = conn.execute("SELECT count(*) FROM sync.inbox").fetchone()
    assert stored == (6,)
    assert all(shop.key_of(conn, n) is not None for n in ("TX00000006", "TX00000007"))
    assert shop.count_customers(conn) == 2


def test_other_event_types_stay_pending_until_their_apply_exists(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000008", 1)])
    outcome = stage(conn, [event("customer.deleted", "TX00000008", 2)])
    assert set(outcome.states) <= {"pending", "applied"}
    assert sum(outcome.states.values()) == 1


def test_hostile_strings_are_stored_as_given(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    # short enough for the boutique's full_name varchar(60) with the first name and infix
    hostile = f"Robert'); DROP TABLE {shop.customer_table}; -- \u202e\U0001f600xx"
    record = upserted("TX00000009", 1, last_name=hostile, city="'\"\\")
    assert stage(conn, [record]).states == {"applied": 1}
    row = shop.read_row(conn, "TX00000009")
    assert row == shop.expected_row(record["customer"])
    assert any(hostile in str(value) for value in row.values())
    assert "'\"\\" in row.values()
    assert shop.count_customers(conn) == 1


def test_snapshot_for_another_number_is_refused(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    record = event("customer.upserted", "TX00000010", 1, customer=snapshot("TX00000011"))
    assert stage(conn, [record]).states == {"dead_letter": 1}
    assert shop.count_customers(conn) == 0
