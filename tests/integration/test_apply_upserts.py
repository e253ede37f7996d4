"""customer.upserted applied by the inbox trigger: tritonX is leading, versions guard, each
event is decided once, bad records are dead-lettered without blocking the rest."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.feed import event, snapshot, stage, upserted


def _customer(conn: psycopg.Connection[Any], number: str) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM shop.customer WHERE customer_number = %s", [number])
    row = cur.fetchone()
    assert row is not None, f"{number} is not in shop.customer"
    names = [d.name for d in cur.description or []]
    return dict(zip(names, row, strict=True))


def _audit(conn: psycopg.Connection[Any], number: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT outcome, reason, version FROM sync.audit WHERE customer_number = %s ORDER BY id",
        [number],
    ).fetchall()


def test_upsert_creates_then_overwrites_tritonx_fields_and_keeps_shop_fields(
    conn: psycopg.Connection[Any],
) -> None:
    outcome = stage(conn, [upserted("TX00000001", 1)])
    assert outcome.states == {"applied": 1}
    conn.execute(
        "UPDATE shop.customer SET preferred_language = 'nl', last_login_at = now() "
        "WHERE customer_number = 'TX00000001'"
    )
    conn.commit()
    stage(conn, [upserted("TX00000001", 2, city="Utrecht", infix=None, house_number=7)])
    row = _customer(conn, "TX00000001")
    assert (row["city"], row["infix"], row["house_number"]) == ("Utrecht", None, 7)
    assert row["preferred_language"] == "nl" and row["last_login_at"] is not None
    assert row["tritonx_version"] == 2
    assert _audit(conn, "TX00000001") == [("applied", "created", 1), ("applied", "updated", 2)]


def test_duplicates_and_stale_versions_are_recorded_and_never_applied(
    conn: psycopg.Connection[Any],
) -> None:
    v1, v2, v3 = (upserted("TX00000002", v, city=f"city-{v}") for v in (1, 2, 3))
    stage(conn, [v1, v3])
    outcome = stage(conn, [v3, v2, v1, v3])
    assert _customer(conn, "TX00000002")["city"] == "city-3"
    assert outcome.states == {"duplicate": 3, "skipped": 1}
    assert sorted(_audit(conn, "TX00000002"), key=lambda row: row[2]) == [
        ("skipped", "superseded", 1),
        ("skipped", "stale", 2),
        ("applied", "created", 3),
    ]


def test_malformed_records_are_dead_lettered_and_the_rest_applies(
    conn: psycopg.Connection[Any],
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
    assert {_customer(conn, n)["customer_number"] for n in ("TX00000006", "TX00000007")}


def test_other_event_types_stay_pending_until_their_apply_exists(
    conn: psycopg.Connection[Any],
) -> None:
    stage(conn, [upserted("TX00000008", 1)])
    outcome = stage(conn, [event("customer.deleted", "TX00000008", 2)])
    assert set(outcome.states) <= {"pending", "applied"}
    assert sum(outcome.states.values()) == 1


def test_hostile_strings_are_stored_as_given(conn: psycopg.Connection[Any]) -> None:
    hostile = "Robert'); DROP TABLE shop.customer; -- \u202e\U0001f600" + "x" * 50
    stage(conn, [upserted("TX00000009", 1, last_name=hostile, city="'\"\\")])
    row = _customer(conn, "TX00000009")
    assert row["last_name"] == hostile
    assert row["city"] == "'\"\\"
    assert conn.execute("SELECT count(*) FROM shop.customer").fetchone() == (1,)


def test_snapshot_for_another_number_is_refused(conn: psycopg.Connection[Any]) -> None:
    record = event("customer.upserted", "TX00000010", 1, customer=snapshot("TX00000011"))
    assert stage(conn, [record]).states == {"dead_letter": 1}
