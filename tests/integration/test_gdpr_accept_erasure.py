"""Acceptance of the erasure requests and the subject access export by docs/gdpr.md alone, on
both test schemas: a dead letter whose envelope's customer number is missing, malformed or
another, while its snapshot names the customer, is the customer's data: the export lists it,
and executing an erasure request scrubs it and decides it (docs: "decided as skipped (the
customer's dead letters)"), so the request ends `done` with nothing of the person left in any
table. A negative grace period is refused: a request is never due before it was scheduled."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
import pytest

from syncctl import errors, gdpr
from tests.feed import stage, upserted
from tests.shops import ShopSchema


def _person() -> dict[str, Any]:
    """Random values: found only where this person left them."""
    word = secrets.token_hex
    return {
        "email": f"{word(5)}@example.nl",
        "first_name": f"F{word(5)}",
        "last_name": f"L{word(5)}",
        "mobile": f"+31 6 {secrets.randbelow(10**8):08d}",
        "phone": f"+31 20 {secrets.randbelow(10**7):07d}",
        "street": f"S{word(5)}",
        "city": f"C{word(5)}",
    }


def _tables_holding(conn: psycopg.Connection[Any], values: list[str]) -> dict[str, list[str]]:
    """Every table of the database (partitions read through their parent) whose rows hold one
    of `values`, with the values found."""
    found: dict[str, list[str]] = {}
    tables = conn.execute(
        "SELECT c.oid::regclass::text FROM pg_catalog.pg_class AS c"
        " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname NOT LIKE 'pg_toast%%'"
    ).fetchall()
    for (table,) in tables:
        row = conn.execute(f"SELECT string_agg(to_jsonb(t)::text, ' ') FROM {table} AS t")
        text = str(row.fetchone()).lower()
        hits = [v for v in values if v.lower() in text]
        if hits:
            found[table] = hits
    return found


def _malformed_dead_letters(conn: psycopg.Connection[Any], person: dict[str, Any]) -> None:
    """Three records of customer TX00000801 that are dead letters for their envelope: its number
    missing, malformed, and another (of nobody here); their snapshots name the customer and
    hold the person's values."""
    missing = upserted("TX00000801", 2, **person)
    del missing["customer_number"]
    malformed = upserted("TX00000801", 3, **person)
    malformed["customer_number"] = "TX 801!"
    another = upserted("TX00000801", 4, **person)
    another["customer_number"] = "TX00000899"
    assert stage(conn, [missing, malformed, another]).states == {"dead_letter": 3}


def test_the_export_lists_dead_letters_whose_snapshot_names_the_customer(
    shop: ShopSchema, conn: psycopg.Connection[Any]
) -> None:
    anna = _person()
    stage(conn, [upserted("TX00000801", 1, **anna), upserted("TX00000802", 1, **_person())])
    _malformed_dead_letters(conn, anna)
    key = shop.key_of(conn, "TX00000801")
    data = gdpr.subject_data(conn, customer_id=str(key))
    versions = sorted(r["version"] for r in data.tables["sync.inbox"])
    assert versions == [1, 2, 3, 4]


def test_an_erasure_scrubs_and_decides_dead_letters_whose_snapshot_names_the_customer(
    shop: ShopSchema, conn: psycopg.Connection[Any]
) -> None:
    anna = _person()
    stage(conn, [upserted("TX00000801", 1, **anna)])
    _malformed_dead_letters(conn, anna)
    key = shop.key_of(conn, "TX00000801")
    assert set(_tables_holding(conn, list(anna.values()))) >= {"sync.inbox"}
    request = gdpr.receive_erasure(conn, str(key), actor="bo:test")
    gdpr.verify_erasure(conn, request, actor="bo:test")
    gdpr.schedule_erasure(conn, request, actor="bo:test")
    planned = {(s.table, s.action): s.rows for s in gdpr.erasure_plan(conn, request)}
    assert planned[("sync.dead_letter", "decide as skipped")] == 3

    proof = gdpr.execute_erasure(conn, request, actor="bo:test")
    assert (proof.state, proof.residue_hits) == ("done", 0), proof.error
    assert proof.counts["sync.dead_letter"] == 3
    assert _tables_holding(conn, list(anna.values())) == {}
    assert conn.execute("SELECT count(*) FROM sync.dead_letter").fetchone() == (0,)


def test_a_request_cannot_be_scheduled_before_it_was_verified(
    shop: ShopSchema, conn: psycopg.Connection[Any]
) -> None:
    stage(conn, [upserted("TX00000803", 1, **_person())])
    key = shop.key_of(conn, "TX00000803")
    request = gdpr.receive_erasure(conn, str(key), actor="bo:test")
    gdpr.verify_erasure(conn, request, actor="bo:test")
    with pytest.raises(errors.GdprRefusal) as refused:
        gdpr.schedule_erasure(conn, request, actor="bo:test", grace_days=-10)
    assert refused.value.sqlstate == "SY087"
    row = conn.execute("SELECT state, scheduled_for FROM gdpr.erasure_request").fetchone()
    assert row == ("verified", None)
