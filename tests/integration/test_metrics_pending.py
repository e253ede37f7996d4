"""The metrics' count of staged events not decided (`syncctl_inbox_pending`): each cycle reads
only what was staged since the last and the rows found pending before, as the controller's
role, and still counts every undecided row. A row is only left undecided when the inbox's
trigger was bypassed (here: disabled by the owner while it was staged)."""

from __future__ import annotations

from typing import Any

import psycopg

from syncctl.status import PendingTracker
from tests.feed import stage, upserted


def _bypassing_the_trigger(conn: psycopg.Connection[Any], number: str) -> int:
    conn.execute("ALTER TABLE sync.inbox DISABLE TRIGGER inbox_apply_staged")
    row = conn.execute(
        "INSERT INTO sync.inbox (source, seq, event_id, event_type, customer_number, version,"
        " occurred_at, payload) VALUES ('tritonx', NULL, %s, 'customer.upserted', %s, 1, now(),"
        " jsonb_build_object('customer', jsonb_build_object('customer_number', %s::text)))"
        " RETURNING id",
        [f"ev-bypass-{number}", number, number],
    ).fetchone()
    conn.execute("ALTER TABLE sync.inbox ENABLE TRIGGER inbox_apply_staged")
    conn.commit()
    assert row is not None
    return int(row[0])


def test_every_undecided_row_is_counted_cycle_after_cycle(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    controller = as_role("syncctl_controller")
    tracker = PendingTracker()
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)])
    assert tracker.read(controller) == 0
    first = _bypassing_the_trigger(conn, "TX00000003")
    assert tracker.read(controller) == 1  # staged since the last reading
    stage(conn, [upserted("TX00000004", 1)])
    assert tracker.read(controller) == 1  # found before, still pending
    second = _bypassing_the_trigger(conn, "TX00000005")
    assert tracker.read(controller) == 2
    # a fresh reader (a restarted daemon) reads the whole inbox once and agrees
    assert PendingTracker().read(controller) == 2
    conn.execute("SELECT sync.apply_inbox(%s, %s)", [first, first])
    conn.commit()
    assert tracker.read(controller) == 1
    conn.execute("SELECT sync.apply_inbox(%s, %s)", [second, second])
    conn.commit()
    assert tracker.read(controller) == 0
    # as the status view says
    row = conn.execute("SELECT count(*) FROM sync.inbox_status WHERE state = 'pending'").fetchone()
    assert row == (0,)
