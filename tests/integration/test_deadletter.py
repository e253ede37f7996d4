"""Dead letters: an impossible event never blocks the batch; it can be inspected without
personal data, retried once its cause is fixed, or discarded (audited). Applied payloads are
dropped after the retention period. On both test schemas."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from syncctl import engine, errors
from syncctl.cli.engine import deadletter
from syncctl.payload_retention import PayloadRetention
from tests.feed import event, snapshot, stage, upserted
from tests.shops import ShopSchema


def _dead_letter_ids(conn: psycopg.Connection[Any]) -> list[int]:
    return [i for (i,) in conn.execute("SELECT inbox_id FROM sync.dead_letter ORDER BY 1")]


def _state(conn: psycopg.Connection[Any], inbox_id: int) -> tuple[str, str | None]:
    row = conn.execute(
        "SELECT state, reason FROM sync.inbox_status WHERE inbox_id = %s", [inbox_id]
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_retry_applies_once_the_cause_is_fixed(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000401", 1)])
    merge = event("customer.merged", "TX00000401", 2, into="TX00000402")
    assert stage(conn, [merge]).states == {"dead_letter": 1}
    (inbox_id,) = _dead_letter_ids(conn)

    assert engine.retry_dead_letter(conn, inbox_id) == "dead_letter"
    letter = engine.dead_letter(conn, inbox_id)
    assert letter.attempts == 2 and "not a local customer" in letter.reason

    stage(conn, [upserted("TX00000402", 1)])
    assert engine.retry_dead_letter(conn, inbox_id) == "applied"
    assert _dead_letter_ids(conn) == []
    assert _state(conn, inbox_id)[0] == "applied"
    assert set(shop.numbers(conn)) == {"TX00000402"}
    # a re-delivery of the now decided event is a duplicate
    assert stage(conn, [merge]).states == {"duplicate": 1}


def test_retry_of_a_fixed_upsert_applies_it(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000411", 1, birth_date="1990-02-30")])
    (inbox_id,) = _dead_letter_ids(conn)
    assert engine.retry_dead_letter(conn, inbox_id) == "dead_letter"
    conn.execute(
        "UPDATE sync.inbox SET payload = jsonb_set(payload, '{customer,birth_date}',"
        " '\"1990-02-28\"') WHERE id = %s",
        [inbox_id],
    )
    conn.commit()
    assert engine.retry_dead_letter(conn, inbox_id) == "applied"
    fixed = snapshot("TX00000411", birth_date="1990-02-28")
    assert shop.read_row(conn, "TX00000411") == shop.expected_row(fixed)


def test_discard_is_audited_and_makes_redeliveries_duplicates(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    merge = event("customer.merged", "TX00000421", 2, into="TX00000421")
    stage(conn, [merge, "not a record"])
    first, second = _dead_letter_ids(conn)
    engine.discard_dead_letter(conn, first, actor="ops:alice")
    engine.discard_dead_letter(conn, second, actor="ops:alice")
    assert _dead_letter_ids(conn) == []
    assert conn.execute(
        "SELECT actor, action, outcome, event_id IS NOT NULL FROM sync.audit"
        " WHERE action <> 'mapping.installed' ORDER BY id"
    ).fetchall() == [
        ("ops:alice", "customer.merged", "discarded", True),
        ("ops:alice", "unknown", "discarded", False),
    ]
    assert _state(conn, first)[0] == "discarded"
    assert _state(conn, second)[0] == "discarded"
    assert stage(conn, [merge]).states == {"duplicate": 1}
    with pytest.raises(errors.DeadLetterNotFound):
        engine.discard_dead_letter(conn, first, actor="ops:alice")


def test_one_impossible_merge_does_not_block_the_batch(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    page = [
        upserted("TX00000431", 1),
        event("customer.merged", "TX00000431", 2, into="TX00000431"),
        upserted("TX00000432", 1),
        event("customer.merged", "TX00000432", 2, into="TX00000499"),
        upserted("TX00000433", 1),
    ]
    assert stage(conn, page).states == {"applied": 3, "dead_letter": 2}
    assert set(shop.numbers(conn)) == {"TX00000431", "TX00000432", "TX00000433"}


def test_deadletter_commands_print_no_personal_data(
    conn: psycopg.Connection[Any], shop: ShopSchema, dsn: str
) -> None:
    stage(conn, [upserted("TX00000441", 1, last_name="Jansen", birth_date="1970-13-01")])
    (inbox_id,) = _dead_letter_ids(conn)
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)

    shown = runner.invoke(deadletter, ["show", str(inbox_id)], obj=settings)
    listed = runner.invoke(deadletter, ["list"], obj=settings)

    assert shown.exit_code == 0, shown.output
    assert listed.exit_code == 0, listed.output
    for output in (shown.output, listed.output):
        assert "TX00000441" in output and "customer.birth_date" in output
        for personal in ("Jansen", "1970-13-01", "example.nl", "Keizersgracht"):
            assert personal not in output
    retried = runner.invoke(deadletter, ["retry", str(inbox_id)], obj=settings)
    assert retried.exit_code == 1 and "still a dead letter (attempt 2)" in retried.output
    discarded = runner.invoke(deadletter, ["discard", str(inbox_id)], obj=settings)
    assert discarded.exit_code == 0, discarded.output
    missing = runner.invoke(deadletter, ["show", str(inbox_id)], obj=settings)
    assert missing.exit_code == 1 and "has no dead letter" in missing.output


def test_a_malformed_id_or_number_is_not_shown_even_with_a_trailing_newline(
    conn: psycopg.Connection[Any], shop: ShopSchema, dsn: str
) -> None:
    # an event id or number that is a name with a line break is no identifier: the database
    # refuses it, and the dead letter commands show neither (the grammar's `$` is the end)
    record = {**upserted("TX00000461", 1), "event_id": "Jansen\n", "customer_number": "Visser\n"}
    stage(conn, [record])
    (letter,) = engine.dead_letters(conn)
    assert (letter.event_id, letter.customer_number) == (None, None)
    listed = CliRunner().invoke(deadletter, ["list"], obj=SimpleNamespace(dsn=dsn))
    shown = CliRunner().invoke(
        deadletter, ["show", str(letter.inbox_id)], obj=SimpleNamespace(dsn=dsn)
    )
    assert listed.exit_code == 0, listed.output
    assert shown.exit_code == 0, shown.output
    for output in (listed.output, shown.output):
        assert "Jansen" not in output and "Visser" not in output
    # both commands mark what is not an identifier the same way
    assert f"{letter.inbox_id}\tcustomer.upserted\t-\t" in listed.output
    assert "event id:        -\n" in shown.output
    assert "customer number: -\n" in shown.output


def test_drop_payloads_keeps_what_a_retry_needs(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000451", 1), upserted("TX00000452", 1, birth_date="x")])
    assert conn.execute("SELECT sync.drop_payloads()").fetchone() == (0,)
    conn.execute("UPDATE sync.inbox SET received_at = now() - interval '8 days'")
    assert conn.execute("SELECT sync.drop_payloads()").fetchone() == (1,)
    conn.commit()
    kept = conn.execute(
        "SELECT customer_number, payload IS NOT NULL FROM sync.inbox ORDER BY id"
    ).fetchall()
    assert kept == [("TX00000451", False), ("TX00000452", True)]
    assert conn.execute(
        "SELECT count(*) FROM sync.audit WHERE action <> 'mapping.installed'"
    ).fetchone() == (1,)


def test_drop_payloads_goes_oldest_first_a_bounded_batch_at_a_time(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted(f"TX0000046{i}", 1) for i in range(5)])
    conn.execute(
        "UPDATE sync.inbox SET received_at = now() - interval '8 days' - id * interval '1 hour'"
    )
    conn.commit()
    retention = PayloadRetention(timedelta(days=7), batch=2)
    assert retention(conn) == 2
    # received longest ago (the highest ids here) first
    dropped = conn.execute(
        "SELECT customer_number FROM sync.inbox WHERE payload IS NULL ORDER BY customer_number"
    ).fetchall()
    assert dropped == [("TX00000463",), ("TX00000464",)]
    assert [retention(conn) for _ in range(3)] == [2, 1, 0]
    assert conn.execute("SELECT count(*) FROM sync.inbox WHERE payload IS NOT NULL").fetchone() == (
        0,
    )
    # a younger one than the retention keeps its payload
    stage(conn, [upserted("TX00000465", 1)])
    assert PayloadRetention(timedelta(days=7))(conn) == 0
