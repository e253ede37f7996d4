"""The feed's page (sql/31_feed_page.sql): the controller COPYs a page into its session's
pg_temp.syncctl_page and sync.stage_page applies it. With a retention of zero
(keep_payloads False) nothing of an applied event's snapshot is written to the database: the
inbox keeps typed columns (and a merge's, anonymisation's or delete's envelope), the write-ahead
log never sees the record; dead letters keep what tritonX sent. A page table that is not the
owner role's own is refused, so a caller's triggers never run as the owner."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest

from syncctl import controller, loader
from syncctl.errors import PageNotStaged
from syncctl.tritonx import ChangePage
from tests.feed import event, stage, upserted
from tests.shops import ShopSchema


def marker() -> str:
    """A value nothing else in the database holds (and that no compression hides)."""
    return "mark" + secrets.token_hex(16)


def inbox(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, Any]]:
    """event id -> (state, payload kept in the inbox)."""
    rows = conn.execute(
        "SELECT i.event_id, s.state, i.payload FROM sync.inbox AS i"
        " JOIN sync.inbox_status AS s ON s.inbox_id = i.id"
    ).fetchall()
    return {event_id: (state, payload) for event_id, state, payload in rows}


def wal_holds(conn: psycopg.Connection[Any], value: str) -> bool | None:
    """Whether any write-ahead log segment of the test server holds `value` (None where the
    files cannot be read: a server named by SYNCCTL_TEST_DSN)."""
    # what was committed is in the segments already (synchronous_commit); a switch makes sure
    # without a checkpoint, which would remove or recycle the segments the value is in (under
    # load: other tests' WAL) and so hide a value that was written
    conn.execute("SELECT pg_catalog.pg_switch_wal()")
    (data_directory,) = conn.execute("SELECT current_setting('data_directory')").fetchone() or ("",)
    conn.commit()
    wal = Path(data_directory) / "pg_wal"
    if not wal.is_dir():
        return None
    needle = value.encode()
    return any(
        needle in segment.read_bytes()
        for segment in wal.iterdir()
        if segment.is_file() and len(segment.name) == 24
    )


def assert_written(conn: psycopg.Connection[Any], value: str, written: bool) -> None:
    """That the write-ahead log holds `value` (written) or not; skips where its files cannot
    be read."""
    found = wal_holds(conn, value)
    if found is None:
        pytest.skip("the server's files cannot be read here")
    assert found is written


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "retention 0"])
def test_with_retention_zero_no_applied_snapshot_is_written(
    conn: psycopg.Connection[Any], shop: ShopSchema, keep: bool
) -> None:
    # a value only the record holds (a field tritonX sends that no column maps): where it is
    # written, the record was
    secret = marker()
    records = [upserted("TX00000001", 1, loyalty_note=secret), upserted("TX00000002", 1)]
    outcome = stage(conn, records, keep_payloads=keep)
    assert outcome.states == {"applied": 2}
    kept = inbox(conn)
    payloads = [payload for _, payload in kept.values()]
    if keep:
        assert all(p is not None and "customer" in p for p in payloads)
    else:
        assert payloads == [None, None]
    assert_written(conn, secret, keep)


def test_with_retention_zero_dead_letters_keep_what_tritonx_sent(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    secret = marker()
    broken = upserted("TX00000003", 1, loyalty_note=secret)
    broken["version"] = "one"  # not an integer: a dead letter
    merged = event("customer.merged", "TX00000002", 2, into="TX00000001")
    first = [upserted("TX00000001", 1), upserted("TX00000002", 1)]
    assert stage(conn, first, keep_payloads=False).states == {"applied": 2}
    outcome = stage(conn, [broken, merged], keep_payloads=False)
    assert outcome.states == {"applied": 1, "dead_letter": 1}
    kept = inbox(conn)
    assert kept[broken["event_id"]] == ("dead_letter", broken)
    # a merge keeps what it is applied from (its envelope), nothing else
    assert kept[merged["event_id"]][1] == {
        key: merged[key]
        for key in ("seq", "event_id", "type", "customer_number", "version", "occurred_at", "into")
    }
    assert kept[first[0]["event_id"]] == ("applied", None)
    # the dead letter is retried from what the inbox kept: it still fails for its version
    (inbox_id,) = conn.execute(
        "SELECT inbox_id FROM sync.dead_letter WHERE event_id = %s", [broken["event_id"]]
    ).fetchone() or (None,)
    conn.commit()
    assert inbox_id is not None


def test_with_retention_zero_an_erased_customers_dead_letter_keeps_its_envelope(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000001", 1)], keep_payloads=False)
    stage(conn, [event("customer.anonymized", "TX00000001", 2)], keep_payloads=False)
    late = upserted("TX00000001", 3, email="not an e-mail address at all")
    late["occurred_at"] = "yesterday"  # malformed: a dead letter of a tombstoned customer
    outcome = stage(conn, [late], keep_payloads=False)
    assert outcome.states == {"dead_letter": 1}
    state, payload = inbox(conn)[late["event_id"]]
    assert state == "dead_letter"
    assert payload is not None and "customer" not in payload


def test_a_dead_letter_staged_with_retention_zero_is_retried_from_the_inbox(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    # the shop refuses the e-mail for now: the event is a dead letter, retried once allowed
    email_table, email = shop.column_of("email")
    conn.execute(
        psycopg.sql.SQL(
            "ALTER TABLE {} ADD CONSTRAINT no_refusals CHECK ({} NOT LIKE 'refuse%%')"
        ).format(email_table, email)
    )
    conn.commit()
    record = upserted("TX00000001", 1, email="refuse@example.nl")
    assert stage(conn, [record], keep_payloads=False).states == {"dead_letter": 1}
    conn.execute(psycopg.sql.SQL("ALTER TABLE {} DROP CONSTRAINT no_refusals").format(email_table))
    (inbox_id,) = conn.execute("SELECT inbox_id FROM sync.dead_letter").fetchone() or (None,)
    (outcome,) = conn.execute("SELECT sync.retry_dead_letter(%s)", [inbox_id]).fetchone() or ("",)
    conn.commit()
    assert outcome == "applied"
    assert shop.key_of(conn, "TX00000001") is not None


def test_a_page_table_of_the_callers_own_is_refused(as_role: Any, shop: ShopSchema) -> None:
    controller = as_role("syncctl_controller")
    # a caller's own table under the page's name, with a trigger that would run as whoever
    # inserts: the owner role, were the engine to write to it
    controller.execute(
        "CREATE TEMP TABLE syncctl_page (id bigint, source text, seq bigint, event_id text,"
        " event_type text, customer_number text, version integer, occurred_at timestamptz,"
        " payload jsonb, raw text)"
    )
    controller.execute("INSERT INTO pg_temp.syncctl_page (id) VALUES (1)")
    with pytest.raises(psycopg.DatabaseError) as refused:
        controller.execute("SELECT sync.stage_page(false, true)")
    assert refused.value.sqlstate == "SY097"
    with pytest.raises(psycopg.DatabaseError):
        controller.execute("SELECT sync.open_page()")


def test_the_controller_cannot_change_the_page_table(as_role: Any, shop: ShopSchema) -> None:
    controller = as_role("syncctl_controller")
    controller.execute("SELECT sync.open_page()")
    for statement in (
        "CREATE RULE r AS ON INSERT TO pg_temp.syncctl_page DO INSTEAD NOTHING",
        "ALTER TABLE pg_temp.syncctl_page ADD COLUMN x int",
        "DROP TABLE pg_temp.syncctl_page",
        # a child's rows would be read (and its triggers run) by every read of the page
        "CREATE TEMP TABLE child () INHERITS (pg_temp.syncctl_page)",
        "CREATE INDEX ON pg_temp.syncctl_page ((payload ->> 'x'))",
        "CREATE STATISTICS s ON seq, version FROM pg_temp.syncctl_page",
        "CREATE TRIGGER t AFTER INSERT ON pg_temp.syncctl_page"
        " EXECUTE FUNCTION pg_catalog.suppress_redundant_updates_trigger()",
        "CREATE POLICY p ON pg_temp.syncctl_page USING (true)",
        "TRUNCATE pg_temp.syncctl_page",
        "SELECT payload FROM pg_temp.syncctl_page",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            controller.execute(statement)


class _OnePage:
    """A change source with one page (what controller.pull asks of tritonX)."""

    name = "tritonx"

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def fetch_changes(self, after: str | None, limit: int) -> ChangePage:
        if after is None:
            return ChangePage(self.records, next_cursor="1", has_more=False)
        return ChangePage([], next_cursor=after, has_more=False)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "retention 0"])
def test_a_pull_with_retention_zero_keeps_no_applied_record(
    conn: psycopg.Connection[Any], shop: ShopSchema, keep: bool
) -> None:
    # `syncctl pull` and `syncctl bootstrap --keep-payloads-days 0` pull this way
    records = [upserted("TX00000001", 1), upserted("TX00000002", 1)]
    report = controller.pull(conn, _OnePage(records), keep_payloads=keep)
    assert report.states == {"applied": 2}
    payloads = [payload for _, payload in inbox(conn).values()]
    assert sorted(payloads, key=str) == (sorted(records, key=str) if keep else [None, None])


def test_a_page_that_lost_rows_before_staging_does_not_move_the_cursor(
    conn: psycopg.Connection[Any], shop: ShopSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the session's page emptied between the COPY and the staging (DISCARD TEMP, say): the
    # events would be lost with the cursor past them; the page is staged again instead
    copy = loader._copy

    def copy_then_lose_one(c: psycopg.Connection[Any], statement: str, rows: Any) -> None:
        copy(c, statement, rows)
        c.execute(
            "DELETE FROM pg_temp.syncctl_page WHERE id = (SELECT max(id) FROM pg_temp.syncctl_page)"
        )

    monkeypatch.setattr(loader, "_copy", copy_then_lose_one)
    before = conn.execute("SELECT position FROM sync.cursor").fetchall()
    conn.commit()
    with pytest.raises(PageNotStaged):
        stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)])
    assert conn.execute("SELECT position FROM sync.cursor").fetchall() == before
    assert conn.execute("SELECT count(*) FROM sync.inbox").fetchone() == (0,)
    conn.commit()
    monkeypatch.undo()
    assert stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)]).states == {
        "applied": 2
    }
