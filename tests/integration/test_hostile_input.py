"""Hostile strings in every field of the feed and of the SQL API are stored as given or refused
with a clear reason; nothing is executed, nothing else changes."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from syncctl.loader import stage_records
from tests.contract import documented_fields
from tests.feed import event, snapshot, stage, upserted

HOSTILE = [
    "Robert'); DROP TABLE shop.customer; --",
    '"; DELETE FROM sync.audit; --',
    "%s %(x)s {0} $1 \\x00 \\\\",
    "\u202eevil\u200b\ufeff\U0001f600 Ærø ß Çé",
    "x" * 10_000,
]
FIELDS = documented_fields()
TEXT_FIELDS = [
    "email",
    "first_name",
    "infix",
    "last_name",
    "gender",
    "phone",
    "mobile",
    "street",
    "house_number_addition",
    "postcode",
    "city",
    "country_code",
    "loyalty_card",
    "home_store",
    "customer_group",
]


@pytest.mark.parametrize("value", HOSTILE, ids=["quote", "dquote", "format", "unicode", "10kB"])
def test_hostile_strings_in_every_snapshot_field_are_stored_as_given(
    conn: psycopg.Connection[Any], value: str
) -> None:
    # as much of the value as the contract allows in each field (longer is a dead letter:
    # tests/integration/test_snapshot_contract.py)
    fields = {field: value[: FIELDS[field][1]] for field in TEXT_FIELDS}
    outcome = stage(conn, [upserted("TX00000001", 1, **fields)])
    assert outcome.states == {"applied": 1}
    cur = conn.execute("SELECT " + ", ".join(TEXT_FIELDS) + " FROM shop.customer")
    assert cur.fetchall() == [tuple(fields[field] for field in TEXT_FIELDS)]
    assert conn.execute(
        "SELECT count(*) FROM sync.audit WHERE action <> 'mapping.installed'"
    ).fetchone() == (1,)


@pytest.mark.parametrize("value", HOSTILE, ids=["quote", "dquote", "format", "unicode", "10kB"])
def test_hostile_envelope_fields_are_dead_lettered_with_a_clean_reason(
    conn: psycopg.Connection[Any], value: str
) -> None:
    records = [
        event("customer.upserted", value, 1, customer=snapshot(value)),
        {**upserted("TX00000002", 1), "event_id": value},
        {**upserted("TX00000003", 1), "type": value},
        event("customer.merged", "TX00000004", 2, into=value),
        {**upserted("TX00000005", 1), "seq": value},
    ]
    outcome = stage(conn, records)
    assert outcome.states == {"dead_letter": 5}
    reasons = [r[0] for r in conn.execute("SELECT reason FROM sync.dead_letter")]
    assert all(value not in reason for reason in reasons)
    assert conn.execute("SELECT count(*) FROM shop.customer").fetchone() == (0,)


def test_a_seq_that_is_not_a_whole_number_is_a_dead_letter(conn: psycopg.Connection[Any]) -> None:
    # a feed's record carries its position: any other seq, or none, is a dead letter
    bad = [None, "7", -1, 1.5, 10**19, True, [7]]
    records = [{**upserted(f"TX0000001{k}", 1), "seq": value} for k, value in enumerate(bad)]
    no_seq = upserted("TX00000020", 1)
    del no_seq["seq"]
    outcome = stage(conn, [*records, no_seq, upserted("TX00000021", 1)])
    assert outcome.states == {"dead_letter": len(bad) + 1, "applied": 1}
    reasons = {r for (r,) in conn.execute("SELECT reason FROM sync.dead_letter")}
    assert reasons == {
        "seq is not a whole number of at most 18 digits",
        "seq is missing: a feed's record carries its position",
    }
    assert conn.execute("SELECT count(*) FROM shop.customer").fetchone() == (1,)


def test_a_record_staged_outside_the_feed_needs_no_seq(conn: psycopg.Connection[Any]) -> None:
    # a login-time refresh's record has no position in the feed: it applies without one
    no_seq = upserted("TX00000022", 1)
    del no_seq["seq"]
    outcome = stage_records(conn, "tritonx-refresh", [no_seq])
    assert outcome.states == {"applied": 1}
    # and the next feed page is held to the rule again
    feed_no_seq = upserted("TX00000023", 1)
    del feed_no_seq["seq"]
    assert stage(conn, [feed_no_seq]).states == {"dead_letter": 1}


@pytest.mark.parametrize("value", HOSTILE, ids=["quote", "dquote", "format", "unicode", "10kB"])
def test_hostile_strings_through_the_sql_api(conn: psycopg.Connection[Any], value: str) -> None:
    stage(conn, [upserted("TX00000005", 1)])
    typed = value
    if len(value.encode()) > 320:  # longer than any e-mail: refused before anything is done
        with pytest.raises(psycopg.Error) as too_long:
            conn.execute("SELECT status FROM sync.login('TX00000006', %s)", [value])
        assert too_long.value.sqlstate == "SY025"
        assert value not in str(too_long.value)
        conn.rollback()
        typed = value[:320]
    status = conn.execute("SELECT status FROM sync.login(%s, %s)", [value, typed]).fetchone()
    assert status == ("invalid",)
    status = conn.execute("SELECT status FROM sync.login('TX00000006', %s)", [typed]).fetchone()
    assert status == ("created",)
    conn.commit()
    if len(value.encode()) > 32:  # no customer number is longer: refused before any look-up
        with pytest.raises(psycopg.Error) as too_long:
            conn.execute("SELECT sync.resolve_customer_number(%s)", [value])
        assert too_long.value.sqlstate == "SY025"
        assert value not in str(too_long.value)
        conn.rollback()
    else:
        found = conn.execute("SELECT sync.resolve_customer_number(%s)", [value]).fetchone()
        assert found == (value,)
    cid = conn.execute("SELECT sync.resolve_customer('TX00000005')").fetchone()
    assert cid is not None
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("SELECT sync.anonymise_from_backoffice(%s, %s, 'bo:1')", [cid[0], value])
    assert refused.value.sqlstate == "SY023"
    assert value not in str(refused.value)
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM shop.customer").fetchone() == (2,)
