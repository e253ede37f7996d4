"""The contract is the contract: every snapshot field has the JSON type and the maximum length
docs/tritonx-contract.md documents (this test reads the table there; that the table states
sync.customer_snapshot: tests/migration/test_field_contract.py); a value that does not fit
is a dead letter naming the field, never the value, and is never cut or converted. A record with
U+0000 is kept exactly as received (sync.inbox.raw) and dead-lettered."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import psycopg
import pytest

from syncctl import engine
from tests.contract import documented_fields
from tests.feed import event, stage, upserted
from tests.integration.test_feed_isolation import random_text

FIELDS = documented_fields()
# fields whose value has a format of its own, or the event's own number
FORMATTED = {"customer_number", "birth_date", "updated_at", "house_number"}
STRINGS = [f for f, (kind, limit) in FIELDS.items() if kind == "string" and f not in FORMATTED]


def dead_letter_reason(conn: psycopg.Connection[Any]) -> str:
    (reason,) = [r for (r,) in conn.execute("SELECT reason FROM sync.dead_letter")]
    return str(reason)


@pytest.mark.parametrize("field", STRINGS)
def test_a_string_at_its_maximum_applies_and_one_longer_is_a_dead_letter(
    conn: psycopg.Connection[Any], field: str
) -> None:
    limit = FIELDS[field][1]
    assert limit is not None
    fits, too_long = random_text(limit), random_text(limit + 1)
    outcome = stage(
        conn,
        [
            upserted("TX00000001", 1, **{field: fits}),
            upserted("TX00000002", 1, **{field: too_long}),
        ],
    )
    assert outcome.states == {"applied": 1, "dead_letter": 1}
    stored = conn.execute(f"SELECT {field} FROM shop.customer").fetchall()
    assert stored == [(fits,)]
    reason = dead_letter_reason(conn)
    assert f"customer.{field}" in reason and too_long[:5] not in reason


WRONG_TYPES = {
    "phone as a number": ("phone", 31201234567),
    "mobile as a number": ("mobile", 612345678),
    "email as an object": ("email", {"a": "b"}),
    "newsletter_opt_in as a string": ("newsletter_opt_in", "true"),
    "blocked as a number": ("blocked", 1),
    "house_number as a string": ("house_number", "12"),
    "house_number not an integer": ("house_number", 12.5),
    "birth_date as a number": ("birth_date", 19840312),
    "birth_date too long": ("birth_date", "2026-01-01 AD"),
    # what PostgreSQL's date input would also read, converting what tritonX sent
    "birth_date today": ("birth_date", "today"),
    "birth_date infinity": ("birth_date", "infinity"),
    "birth_date without dashes": ("birth_date", "20260102"),
    "birth_date by DateStyle": ("birth_date", "1/2/2026"),
    "updated_at now": ("updated_at", "now"),
    "updated_at infinity": ("updated_at", "infinity"),
    "updated_at without a time zone": ("updated_at", "2026-11-20T10:00:00"),
    "updated_at a date only": ("updated_at", "2026-11-20"),
}

ISO_TIMES = ["2026-11-20T10:00:00Z", "2026-11-20 11:00:00.5+01:00", "2026-11-20T10:00z",
             "2026-11-20T10:00:00.123456-0330", "2026-11-20T10:00:00+02"]  # fmt: skip


@pytest.mark.parametrize("value", ISO_TIMES)
def test_updated_at_in_any_iso_form_with_a_zone_applies(
    conn: psycopg.Connection[Any], value: str
) -> None:
    outcome = stage(conn, [upserted("TX00000001", 1, updated_at=value)])
    assert outcome.states == {"applied": 1}


@pytest.mark.parametrize("case", WRONG_TYPES)
def test_a_value_of_another_json_type_is_a_dead_letter_naming_the_field(
    conn: psycopg.Connection[Any], case: str
) -> None:
    field, value = WRONG_TYPES[case]
    outcome = stage(conn, [upserted("TX00000001", 1, **{field: value}), upserted("TX00000002", 1)])
    assert outcome.states == {"applied": 1, "dead_letter": 1}
    reason = dead_letter_reason(conn)
    assert f"customer.{field}" in reason and str(value) not in reason


def test_a_megabyte_street_is_a_dead_letter_and_the_page_goes_on(
    conn: psycopg.Connection[Any],
) -> None:
    street = base64.b64encode(os.urandom(750_000)).decode()
    outcome = stage(conn, [upserted("TX00000001", 1, street=street), upserted("TX00000002", 1)])
    assert outcome.states == {"applied": 1, "dead_letter": 1}
    assert "customer.street" in dead_letter_reason(conn)
    # what tritonX sent is kept for the dead letter
    kept = conn.execute(
        "SELECT payload -> 'customer' ->> 'street' FROM sync.inbox WHERE customer_number = %s",
        ["TX00000001"],
    ).fetchone()
    assert kept == (street,)


def test_a_record_with_nul_is_kept_as_sent_and_dead_lettered(
    conn: psycopg.Connection[Any],
) -> None:
    name = random_text(5) + "\x00" + random_text(5)
    record = upserted("TX00000001", 1, first_name=name)
    outcome = stage(conn, [record, upserted("TX00000002", 1)])
    assert outcome.states == {"applied": 1, "dead_letter": 1}
    assert conn.execute("SELECT count(*) FROM shop.customer").fetchone() == (1,)
    row = conn.execute(
        "SELECT i.id, i.event_id, i.customer_number, i.payload, i.raw, d.reason"
        " FROM sync.inbox AS i JOIN sync.dead_letter AS d ON d.inbox_id = i.id"
    ).fetchone()
    assert row is not None
    inbox_id, event_id, number, payload, raw, reason = row
    assert (event_id, number, payload) == (record["event_id"], "TX00000001", None)
    # exactly what tritonX sent, \u0000 included
    assert json.loads(raw) == record
    assert "customer.first_name holds \\u0000" in reason and name[:5] not in reason
    # a retry cannot apply it as sent
    assert engine.retry_dead_letter(conn, inbox_id) == "dead_letter"
    # anonymising the customer scrubs the kept text too
    stage(conn, [event("customer.anonymized", "TX00000001", 2, reason_code="AVG")])
    assert conn.execute("SELECT raw FROM sync.inbox WHERE id = %s", [inbox_id]).fetchone() == (
        None,
    )


def test_a_lone_surrogate_is_kept_as_sent_and_dead_lettered(conn: psycopg.Connection[Any]) -> None:
    # what json.loads makes of "\ud800": a string UTF-8 cannot encode
    record = upserted("TX00000001", 1, city=json.loads('"Delft\\ud800"'))
    outcome = stage(conn, [record, upserted("TX00000002", 1)])
    assert outcome.states == {"applied": 1, "dead_letter": 1}
    row = conn.execute(
        "SELECT i.raw, d.reason FROM sync.inbox AS i"
        " JOIN sync.dead_letter AS d ON d.inbox_id = i.id"
    ).fetchone()
    assert row is not None
    assert json.loads(row[0]) == record
    assert "customer.city holds" in row[1] and "Delft" not in row[1]


def test_a_nul_in_an_envelope_field_is_not_stripped_into_another_event_id(
    conn: psycopg.Connection[Any],
) -> None:
    record = {**upserted("TX00000001", 1), "event_id": "e-1\x00"}
    outcome = stage(conn, [record, event("customer.upserted", "TX00000002", 1)])
    assert outcome.states == {"dead_letter": 2}
    # a later, real event "e-1" is not taken for a duplicate of the dead letter
    assert stage(conn, [{**upserted("TX00000003", 1), "event_id": "e-1"}]).states == {"applied": 1}


@pytest.mark.parametrize("into", [True, 12345678, ["TX00000002"], None])
def test_a_merge_into_anything_but_a_string_is_a_dead_letter(
    conn: psycopg.Connection[Any], into: Any
) -> None:
    """`into` is a customer number, a string: JSON true is not the number "true"."""
    stage(conn, [upserted("TX00000002", 1)])
    outcome = stage(conn, [event("customer.merged", "TX00000009", 1, into=into)])
    assert outcome.states == {"dead_letter": 1}
    assert dead_letter_reason(conn) == "into is missing or malformed"
    assert conn.execute("SELECT count(*) FROM sync.redirect").fetchone() == (0,)


def test_a_snapshot_number_that_is_a_json_number_is_a_dead_letter(
    conn: psycopg.Connection[Any],
) -> None:
    record = upserted("12345678", 1)
    record["customer"]["customer_number"] = 12345678
    outcome = stage(conn, [record, upserted("TX00000002", 1)])
    assert outcome.states == {"applied": 1, "dead_letter": 1}
    assert "customer.customer_number" in dead_letter_reason(conn)
