"""Extracting inbox columns from change records of any shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from syncctl.loader import RawRecord, inbox_row


def test_well_formed_record_is_typed() -> None:
    record = {
        "seq": 7,
        "event_id": "e-1",
        "type": "customer.upserted",
        "customer_number": "TX00000001",
        "version": 3,
        "occurred_at": "2026-11-20T10:00:00Z",
        "customer": {"customer_number": "TX00000001"},
    }
    row = inbox_row("tritonx", record)
    assert row[:7] == (
        "tritonx",
        7,
        "e-1",
        "customer.upserted",
        "TX00000001",
        3,
        datetime(2026, 11, 20, 10, tzinfo=UTC),
    )
    assert json.loads(row[7]) == record


def test_wrong_types_become_null_and_the_record_is_kept() -> None:
    record = {"seq": "7", "event_id": 12, "version": True, "occurred_at": "yesterday"}
    row = inbox_row("tritonx", record)
    assert row[1:7] == (None, None, None, None, None, None)
    assert json.loads(row[7]) == record


def test_out_of_range_integers_and_naive_timestamps_become_null() -> None:
    row = inbox_row(
        "tritonx", {"version": 2**40, "seq": 2**70, "occurred_at": "2026-11-20T10:00:00"}
    )
    assert (row[1], row[5], row[6]) == (None, None, None)


def test_a_record_that_is_not_an_object_is_kept_whole() -> None:
    row = inbox_row("tritonx", ["x"])
    assert row[:7] == ("tritonx", None, None, None, None, None, None)
    assert json.loads(row[7]) == ["x"]


def test_a_record_with_nul_is_kept_as_its_json_text() -> None:
    record = {"event_id": "a\x00b", "type": "customer.upserted", "customer": {"city": "\x00"}}
    row = inbox_row("tritonx", record)
    # a typed value with U+0000 is none (the record is a dead letter), never another value
    assert row[2] is None and row[3] == "customer.upserted"
    assert isinstance(row[7], RawRecord) and json.loads(row[7]) == record


def test_an_escaped_backslash_u0000_is_not_a_nul() -> None:
    row = inbox_row("tritonx", {"event_id": "e", "note": "\\u0000"})
    assert not isinstance(row[7], RawRecord)
