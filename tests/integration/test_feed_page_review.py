"""The feed's page (sql/31_feed_page.sql) seen by an attacker and by a DBA: a caller cannot
make the apply read a record of its choosing for an inbox row, an erased customer's dead letter
is not written with a retention of zero (not even to the write-ahead log, and not when it is a
record kept as text), and the page lives in the session's memory, made once a session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from syncctl import database
from tests.feed import event, stage, upserted
from tests.integration.test_feed_page import assert_written, inbox, marker
from tests.shops import ShopSchema


def test_a_caller_cannot_give_an_inbox_row_a_record_through_the_page(
    as_role: Any, conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """An inbox row staged without a record is a dead letter. Were the caller able to choose a
    page row's id, it could put a snapshot of its choosing there under the id the inbox's
    sequence gives next: the apply would read it from the page for that row, apply it, and the
    inbox would show no record at all (whatever the retention)."""
    controller = as_role("syncctl_controller")
    controller.execute("SELECT sync.open_page()")
    forged = upserted("TX00000009", 1, email="forged@example.nl")
    typed = [forged["event_id"], forged["type"], "TX00000009", 1, forged["occurred_at"]]
    with controller.transaction():
        (drawn,) = controller.execute("SELECT nextval('sync.inbox_id_seq')").fetchone() or (0,)
        try:
            with controller.transaction():
                controller.execute(
                    "INSERT INTO pg_temp.syncctl_page (id, event_id, event_type,"
                    " customer_number, version, occurred_at, payload)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [drawn + 1, *typed, json.dumps(forged)],
                )
        except psycopg.errors.InsufficientPrivilege:
            pass  # the id is not the caller's to give
        controller.execute(
            "INSERT INTO sync.inbox (event_id, event_type, customer_number, version,"
            " occurred_at) VALUES (%s, %s, %s, %s, %s)",
            typed,
        )
    assert inbox(conn)[forged["event_id"]] == ("dead_letter", None)
    assert shop.key_of(conn, "TX00000009") is None


@pytest.mark.parametrize("made", ["now", "before the rule"])
def test_a_page_id_cannot_be_given(as_role: Any, shop: ShopSchema, made: str) -> None:
    controller = as_role("syncctl_controller")
    controller.execute("SELECT sync.open_page()")
    if made == "before the rule":
        # a page a session made before an upgrade: INSERT on the whole table
        controller.execute("RESET ROLE")
        controller.execute("GRANT INSERT ON pg_temp.syncctl_page TO PUBLIC")
        controller.execute("SET ROLE syncctl_controller")
        controller.execute("SELECT sync.open_page()")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        controller.execute("INSERT INTO pg_temp.syncctl_page (id, event_id) VALUES (1, 'e1')")
    # the records' columns are the caller's to COPY, and the id is drawn for them
    with controller.transaction():
        controller.execute(
            "INSERT INTO pg_temp.syncctl_page (source, seq, event_id, event_type,"
            " customer_number, version, occurred_at, payload, raw)"
            " VALUES ('tritonx', 1, 'e1', 'customer.upserted', 'TX1', 1, now(), '{}', NULL)"
        )
        raise psycopg.Rollback()


@pytest.mark.parametrize("record", ["malformed", "kept as text"])
@pytest.mark.parametrize("erased", ["an earlier page", "the same page"])
def test_with_retention_zero_an_erased_customers_dead_letter_is_never_written(
    conn: psycopg.Connection[Any], shop: ShopSchema, record: str, erased: str
) -> None:
    """A late record of a customer tritonX anonymised is a dead letter that keeps its envelope
    only: its snapshot must not reach the inbox table or the write-ahead log on its way."""
    secret = marker()
    stage(conn, [upserted("TX00000001", 1)], keep_payloads=False)
    anonymised = event("customer.anonymized", "TX00000001", 2)
    if record == "malformed":
        late = upserted("TX00000001", 3, loyalty_note=secret)
        late["occurred_at"] = "yesterday"
    else:
        late = upserted("TX00000001", 3, loyalty_note=secret + "\x00")
    if erased == "an earlier page":
        stage(conn, [anonymised], keep_payloads=False)
        page = [late]
    else:
        page = [anonymised, late]
    stage(conn, page, keep_payloads=False)
    state, payload = inbox(conn)[late["event_id"]]
    # after the anonymisation in its own page, the late record is decided with it (a tombstone)
    assert state == ("dead_letter" if erased == "an earlier page" else "skipped")
    assert payload is None or "customer" not in payload
    (raw,) = conn.execute(
        "SELECT raw FROM sync.inbox WHERE event_id = %s", [late["event_id"]]
    ).fetchone() or ("",)
    conn.commit()
    assert raw is None
    assert_written(conn, secret, False)


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "retention 0"])
def test_a_merge_into_an_erased_customer_keeps_its_envelope_whatever_the_retention(
    conn: psycopg.Connection[Any], shop: ShopSchema, keep: bool
) -> None:
    """A merge into a customer tritonX anonymised is refused (SY004, a dead letter) and keeps
    only its envelope: what else the record holds (a snapshot of the survivor, say) is not
    kept, and with a retention of zero not written either."""
    secret = marker()
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)], keep_payloads=keep)
    stage(conn, [event("customer.anonymized", "TX00000001", 2)], keep_payloads=keep)
    merged = event(
        "customer.merged",
        "TX00000002",
        2,
        into="TX00000001",
        customer={"customer_number": "TX00000001", "loyalty_note": secret},
    )
    assert stage(conn, [merged], keep_payloads=keep).states == {"dead_letter": 1}
    envelope = {
        key: merged[key]
        for key in ("seq", "event_id", "type", "customer_number", "version", "occurred_at", "into")
    }
    assert inbox(conn)[merged["event_id"]] == ("dead_letter", envelope)
    if not keep:
        assert_written(conn, secret, False)


def test_with_retention_zero_a_dead_letter_kept_as_text_keeps_its_text(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    late = upserted("TX00000001", 1, loyalty_note="nul\x00")
    assert stage(conn, [late], keep_payloads=False).states == {"dead_letter": 1}
    (raw, reason) = conn.execute(
        "SELECT i.raw, d.reason FROM sync.inbox AS i JOIN sync.dead_letter AS d"
        " ON d.inbox_id = i.id WHERE i.event_id = %s",
        [late["event_id"]],
    ).fetchone() or ("", "")
    conn.commit()
    assert raw is not None and json.loads(raw) == late
    assert "customer.loyalty_note holds \\u0000" in reason


def test_with_retention_zero_an_applied_events_text_is_never_written(
    as_role: Any, conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """A page row holding both the record and its text (the loader writes one of them) is
    applied from the record; with a retention of zero its text must not be written either."""
    secret = marker()
    record = upserted("TX00000001", 1)
    controller = as_role("syncctl_controller")
    controller.execute("SELECT sync.open_page()")
    with controller.transaction():
        controller.execute(
            "INSERT INTO pg_temp.syncctl_page (seq, event_id, event_type, customer_number,"
            " version, occurred_at, payload, raw) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                record["seq"],
                record["event_id"],
                record["type"],
                "TX00000001",
                1,
                record["occurred_at"],
                json.dumps(record),
                json.dumps({**record, "note": secret}),
            ],
        )
        (summary,) = controller.execute("SELECT sync.stage_page(false, true)").fetchone() or ({},)
    assert summary == {"applied": 1}
    assert inbox(conn)[record["event_id"]] == ("applied", None)
    assert_written(conn, secret, False)


def test_a_page_of_ten_thousand_records_stays_in_the_sessions_memory(
    dsn: str, shop: ShopSchema
) -> None:
    """The daemon's connection asks for temp_buffers = 64MB: a page of 10,000 records of ~1 kB
    is never written to the page's temporary file (which smaller temp_buffers would do)."""
    secret = marker()
    with database.connect(dsn) as c:
        c.execute("SELECT sync.open_page()")
        c.execute(
            "INSERT INTO pg_temp.syncctl_page (event_id, payload)"
            " SELECT 'e' || g, jsonb_build_object('customer', jsonb_build_object("
            "     'note', %s || string_agg(md5(random()::text), '')))"
            " FROM generate_series(1, 10000) AS g, generate_series(1, 30) AS r GROUP BY g",
            [secret],
        )
        path, size, data_directory = c.execute(
            "SELECT pg_relation_filepath('pg_temp.syncctl_page'),"
            " pg_relation_size('pg_temp.syncctl_page'), current_setting('data_directory')"
        ).fetchone() or ("", 0, "")
        file = Path(str(data_directory)) / str(path)
        if not file.is_file():
            pytest.skip("the server's files cannot be read here")
        assert isinstance(size, int) and size > 10_000 * 1_000
        assert secret.encode() not in file.read_bytes()
        c.rollback()


def test_the_page_is_made_once_a_session_and_emptied_in_place(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """No catalog rows per page: the page is the same relation, with the same file, page after
    page (ON COMMIT DELETE ROWS empties it in place)."""
    files = set()
    for version in range(1, 6):
        stage(conn, [upserted("TX00000001", version)], keep_payloads=False)
        (relfilenode,) = conn.execute(
            "SELECT relfilenode FROM pg_class WHERE oid = 'pg_temp.syncctl_page'::regclass"
        ).fetchone() or (0,)
        conn.commit()
        files.add(relfilenode)
    assert len(files) == 1


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "retention 0"])
def test_a_page_through_every_apply_path_decides_the_same_whatever_the_retention(
    conn: psycopg.Connection[Any], shop: ShopSchema, keep: bool
) -> None:
    """One page that takes the feed-order fallback (an upsert that only fits after an
    anonymisation frees its e-mail address), bisects a run (the shop refuses one upsert),
    skips an upsert of a customer anonymised earlier in it, and holds a duplicate: read from
    the session's page, it is decided as when every record is kept in the inbox."""
    table, column = shop.column_of("email")
    conn.execute(
        psycopg.sql.SQL("CREATE UNIQUE INDEX review_unique_email ON {} (lower({}))").format(
            table, column
        )
    )
    conn.execute(
        psycopg.sql.SQL(
            "ALTER TABLE {} ADD CONSTRAINT no_refusals CHECK ({} NOT LIKE 'refuse%%')"
        ).format(table, column)
    )
    conn.commit()
    first = [upserted("TX00000001", 1), upserted("TX00000007", 1, email="again@example.nl")]
    assert stage(conn, first, keep_payloads=keep).states == {"applied": 2}
    # built in feed order (each record takes the next seq)
    anonymised = event("customer.anonymized", "TX00000007", 2)
    again = upserted("TX00000008", 1, email="again@example.nl")
    fresh = upserted("TX00000002", 1)
    refused = upserted("TX00000001", 2, email="refuse@example.nl")
    twice = upserted("TX00000003", 1)
    late = upserted("TX00000007", 3)
    last = upserted("TX00000004", 1)
    page = [anonymised, again, fresh, refused, twice, late, twice, last]
    outcome = stage(conn, page, keep_payloads=keep)
    assert outcome.states == {"applied": 5, "dead_letter": 1, "skipped": 1, "duplicate": 1}
    for number in ("TX00000002", "TX00000003", "TX00000004", "TX00000008"):
        assert shop.key_of(conn, number) is not None
    assert inbox(conn)[refused["event_id"]] == ("dead_letter", refused)


def test_two_pages_staged_in_one_transaction_and_an_empty_one(
    as_role: Any, conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    controller = as_role("syncctl_controller")
    controller.execute("SELECT sync.open_page()")
    summaries: list[Any] = []
    with controller.transaction():
        for number in ("TX00000001", "TX00000002", None):
            if number is not None:
                record = upserted(number, 1)
                controller.execute(
                    "INSERT INTO pg_temp.syncctl_page (seq, event_id, event_type,"
                    " customer_number, version, occurred_at, payload)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        record["seq"],
                        record["event_id"],
                        record["type"],
                        number,
                        1,
                        record["occurred_at"],
                        json.dumps(record),
                    ],
                )
            staged = controller.execute("SELECT sync.stage_page(false, true)").fetchone()
            (summary,) = staged or ({},)
            summaries.append(summary)
    assert summaries == [{"applied": 1}, {"applied": 1}, {}]
    assert shop.key_of(conn, "TX00000001") is not None
    assert shop.key_of(conn, "TX00000002") is not None


def test_a_look_alike_page_after_discard_temp_is_refused(as_role: Any, shop: ShopSchema) -> None:
    controller = as_role("syncctl_controller")
    controller.execute("SELECT sync.open_page()")
    controller.execute("DISCARD TEMP")  # drops the owner's page too
    controller.execute("CREATE TEMP VIEW syncctl_page AS SELECT 1::bigint AS id")
    with pytest.raises(psycopg.DatabaseError) as refused:
        controller.execute("SELECT sync.stage_page(false, true)")
    assert refused.value.sqlstate == "SY097"


def test_without_temporary_tables_the_feed_says_which_grant_it_needs(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """The page is a temporary table the owner role makes: a database where TEMPORARY was
    revoked from PUBLIC (a common hardening step) stops every apply. The error names the
    grant that lets it go on."""
    database_name = conn.info.dbname
    conn.execute(
        psycopg.sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(
            psycopg.sql.Identifier(database_name)
        )
    )
    conn.commit()
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        stage(conn, [upserted("TX00000001", 1)])
    conn.rollback()
    hint = refused.value.diag.message_hint or ""
    assert hint.startswith("GRANT TEMPORARY ON DATABASE")
    conn.execute(hint)
    conn.commit()
    assert stage(conn, [upserted("TX00000001", 1)]).states == {"applied": 1}


def test_old_clients_and_retries_in_a_session_without_a_page(
    as_role: Any, conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """A direct INSERT into sync.inbox (an old client) bisects its run as before; a retry in a
    fresh session makes the page inside its attempt, which a refusal rolls back with it: the
    next retry in that session makes it again and applies."""
    table, column = shop.column_of("email")
    refuse = psycopg.sql.SQL(
        "ALTER TABLE {} ADD CONSTRAINT no_refusals CHECK ({} NOT LIKE 'refuse%%')"
    ).format(table, column)
    conn.execute(refuse)
    conn.commit()
    records = [
        upserted("TX00000001", 1),
        upserted("TX00000002", 1, email="refuse@example.nl"),
        upserted("TX00000003", 1),
    ]
    old_client = as_role("syncctl_controller")
    # one statement for the three: one apply, whose run is bisected down to the refused one
    old_client.execute(
        "INSERT INTO sync.inbox (seq, event_id, event_type, customer_number, version,"
        " occurred_at, payload) VALUES " + ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * 3),
        [
            value
            for r in records
            for value in (
                r["seq"],
                r["event_id"],
                r["type"],
                r["customer_number"],
                r["version"],
                r["occurred_at"],
                json.dumps(r),
            )
        ],
    )
    states = {event_id: state for event_id, (state, _) in inbox(conn).items()}
    assert [states[r["event_id"]] for r in records] == ["applied", "dead_letter", "applied"]
    (inbox_id,) = conn.execute("SELECT inbox_id FROM sync.dead_letter").fetchone() or (0,)
    conn.commit()
    retrier = as_role("syncctl_controller")
    with retrier.transaction():
        (first,) = retrier.execute("SELECT sync.retry_dead_letter(%s)", [inbox_id]).fetchone() or (
            "",
        )
        assert first == "dead_letter"
    conn.execute(psycopg.sql.SQL("ALTER TABLE {} DROP CONSTRAINT no_refusals").format(table))
    conn.commit()
    (second,) = retrier.execute("SELECT sync.retry_dead_letter(%s)", [inbox_id]).fetchone() or ("",)
    assert second == "applied"
    assert shop.key_of(conn, "TX00000002") is not None


def test_a_long_lived_session_never_holds_back_freezing(
    dsn: str, conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """Autovacuum cannot vacuum another session's temporary table, and emptying the page at
    commit keeps its relfrozenxid: a daemon's page as old as its session would hold back the
    database's datfrozenxid (towards a wraparound shutdown). Once older than
    vacuum_freeze_min_age (at least 10,000 transactions), an empty page is made anew."""
    page_age = "SELECT age(relfrozenxid) FROM pg_class WHERE oid = 'pg_temp.syncctl_page'::regclass"
    conn.execute("SET vacuum_freeze_min_age = 0")
    stage(conn, [upserted("TX00000001", 1)], keep_payloads=False)
    with psycopg.connect(dsn, autocommit=True) as other:
        # 12,000 transaction ids: a write in a subtransaction takes one
        other.execute("CREATE TEMP TABLE burn (x integer)")
        other.execute(
            "DO $$ BEGIN FOR i IN 1..12000 LOOP BEGIN INSERT INTO burn VALUES (i);"
            " EXCEPTION WHEN OTHERS THEN NULL; END; END LOOP; END $$"
        )
    (aged,) = conn.execute(page_age).fetchone() or (0,)
    conn.commit()
    assert aged > 12000
    assert stage(conn, [upserted("TX00000001", 2)], keep_payloads=False).states == {"applied": 1}
    (age,) = conn.execute(page_age).fetchone() or (0,)
    conn.commit()
    assert age < 10000


def test_a_caller_cannot_hang_its_own_table_under_the_page(as_role: Any, shop: ShopSchema) -> None:
    """Every read of the page would read a child's rows (and a child's triggers would run)."""
    controller = as_role("syncctl_controller")
    controller.execute("SELECT sync.open_page()")
    controller.execute(
        "CREATE TEMP TABLE mine (id bigint NOT NULL, source text NOT NULL, seq bigint,"
        " event_id text, event_type text, customer_number text, version integer,"
        " occurred_at timestamptz, payload jsonb, raw text)"
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        controller.execute("ALTER TABLE pg_temp.mine INHERIT pg_temp.syncctl_page")
