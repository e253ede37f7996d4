"""Retention: a policy's period expires during the test (time is injected, never slept); the
data only it holds goes, in batches, audited without personal data; a category two policies
share stays while one of them still holds it; runs are idempotent and resumable; --dry-run and
--warn-days list what would happen."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

import psycopg
from click.testing import CliRunner

from syncctl import gdpr
from syncctl.cli.gdpr import purge
from tests.feed import stage, upserted

START = datetime(2026, 1, 1, tzinfo=UTC)


def _customers(conn: psycopg.Connection[Any], count: int) -> list[int]:
    stage(conn, [upserted(f"TX{n:08d}", 1) for n in range(1, count + 1)])
    ids = [int(i) for (i,) in conn.execute("SELECT id FROM shop.customer ORDER BY id").fetchall()]
    conn.execute("UPDATE shop.customer SET created_at = %s, last_login_at = %s", [START, START])
    for cid in ids:
        conn.execute(
            "INSERT INTO shop.orders (customer_id, order_number, placed_at, delivery_name,"
            " contact_email) VALUES (%s, %s, %s, 'Anna Berg', 'anna@example.nl')",
            [cid, f"O-{cid}", START],
        )
        conn.execute(
            "INSERT INTO shop.wishlist (customer_id, sku, note) VALUES (%s, 'W', 'voor Anna')",
            [cid],
        )
    conn.commit()
    return ids


def _policy(
    conn: psycopg.Connection[Any], code: str, retention: str, categories: list[str]
) -> None:
    gdpr.create_policy(
        conn,
        code,
        name=code,
        description=code,
        legal_basis="contract",
        retention=retention,
        retention_from="last_activity",
        categories=categories,
        actor="dpo:test",
    )
    gdpr.activate_policy(conn, code, actor="dpo:test", now=START)


def test_expired_policy_purges_its_data_and_a_shared_category_stays(
    conn: psycopg.Connection[Any],
) -> None:
    first, second = _customers(conn, 2)
    # wishlists: only 'wishes' covers them; orders: 'wishes' and 'bookkeeping' share them
    _policy(conn, "wishes", "30 days", ["shop.wishlist", "shop.orders"])
    _policy(conn, "bookkeeping", "1 year", ["shop.orders"])
    # the second customer logged in later: still held by 'wishes'
    conn.execute(
        "UPDATE shop.customer SET last_login_at = %s WHERE id = %s",
        [START + timedelta(days=40), second],
    )
    conn.commit()

    before = START + timedelta(days=29)
    assert gdpr.purge_plan(conn, now=before) == []
    assert [
        (w.customer_key, w.policy) for w in gdpr.expiry_warnings(conn, now=before, within_days=2)
    ] == [(str(first), "wishes")]

    expired = START + timedelta(days=31)
    plan = gdpr.purge_plan(conn, now=expired)
    assert [(s.policy, s.table, s.action, s.customers) for s in plan] == [
        ("wishes", "shop.wishlist", "delete_rows", 1)
    ]
    assert plan[0].reasons == ("wishes: retention over (last_activity + 30 days)",)

    report = gdpr.purge(conn, now=expired, batch_size=1)
    assert (report.customers, report.counts) == (1, {"shop.wishlist": 1})
    wishlists = conn.execute("SELECT customer_id FROM shop.wishlist ORDER BY 1").fetchall()
    assert wishlists == [(second,)]
    # the orders 'bookkeeping' still holds are untouched
    assert conn.execute(
        "SELECT count(*) FROM shop.orders WHERE delivery_name IS NOT NULL"
    ).fetchone() == (2,)
    audit = conn.execute(
        "SELECT actor, customer_id, counts::text, reason FROM sync.audit"
        " WHERE action = 'gdpr.retention_purge'"
    ).fetchall()
    assert audit == [("retention", first, '{"shop.wishlist": 1}', "released by policies: wishes")]

    # idempotent: a second run finds nothing
    assert gdpr.purge(conn, now=expired).customers == 0

    # a year on, 'bookkeeping' lets go too: orders are scrubbed (kept for the books)
    later = START + timedelta(days=500)
    report = gdpr.purge(conn, now=later)
    assert report.counts == {"shop.orders": 2, "shop.wishlist": 1}
    assert conn.execute(
        "SELECT count(*), count(delivery_name), count(contact_email) FROM shop.orders"
    ).fetchone() == (2, 0, 0)


def test_a_customer_no_policy_holds_is_anonymised_in_batches(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    ids = _customers(conn, 5)
    gdpr.activate_policy(conn, "webshop", actor="dpo:test", now=START)
    # one customer still orders: held
    conn.execute(
        "UPDATE shop.orders SET placed_at = %s WHERE customer_id = %s",
        [START + timedelta(days=700), ids[0]],
    )
    conn.commit()
    expired = START + timedelta(days=800)

    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)
    dry = runner.invoke(purge, ["--dry-run", "--now", expired.isoformat()], obj=settings)
    assert dry.exit_code == 0, dry.output
    assert "webshop" in dry.output and "anonymise" in dry.output and "4 customer(s)" in dry.output
    warned = runner.invoke(purge, ["--warn-days", "60", "--now", expired.isoformat()], obj=settings)
    assert "0 expiry warning(s)" in warned.output

    # a run broken off after one batch resumes: nothing is done twice
    first = conn.execute("SELECT gdpr.purge_batch(%s, 0, 2)", [expired]).fetchone()
    conn.commit()
    assert first is not None
    # the batch examined ids[0] (held) and ids[1] (anonymised)
    assert (first[0]["scanned"], first[0]["customers"]) == (2, 1)
    assert first[0]["last_id"] == ids[1]
    ran = runner.invoke(purge, ["--now", expired.isoformat(), "--batch-size", "2"], obj=settings)
    assert ran.exit_code == 0, ran.output
    assert "purged 3 customer(s) in 3 batch(es)" in ran.output
    anonymised = conn.execute(
        "SELECT customer_id FROM sync.audit WHERE action = 'customer.anonymized'"
        " AND actor = 'retention' ORDER BY 1"
    ).fetchall()
    assert anonymised == [(i,) for i in ids[1:]]
    assert conn.execute(
        "SELECT count(*) FROM sync.outbox WHERE payload ->> 'reason_code' = 'RETENTION'"
    ).fetchone() == (4,)
    assert conn.execute(
        "SELECT count(*) FROM shop.customer WHERE first_name IS NOT NULL"
    ).fetchone() == (1,)
    again = runner.invoke(purge, ["--now", expired.isoformat()], obj=settings)
    assert "purged 0 customer(s)" in again.output
    # the audit of the run holds ids, counts and policy codes only
    for (row,) in conn.execute(
        "SELECT to_jsonb(a)::text FROM sync.audit AS a WHERE actor = 'retention'"
    ):
        assert "Anna" not in row and "example.nl" not in row and "Berg" not in row


def test_consent_withdrawn_releases_the_newsletter(conn: psycopg.Connection[Any]) -> None:
    (cid,) = _customers(conn, 1)
    gdpr.activate_policy(conn, "newsletter", actor="dpo:test", now=START)
    conn.execute(
        "INSERT INTO shop.newsletter_subscription (customer_id, list_name, email)"
        " VALUES (%s, 'weekly', 'anna@example.nl')",
        [cid],
    )
    conn.commit()
    # after tritonX's opt-in (the snapshot's updated_at), within the retention period
    now = START + timedelta(days=400)
    assert gdpr.purge_plan(conn, now=now) == []
    # a decision is never dated ahead of the clock: withdrawn today, before the plan's `now`
    gdpr.record_consent(conn, cid, "newsletter", granted=False)
    plan = gdpr.purge_plan(conn, now=now)
    assert [(s.table, s.action) for s in plan] == [("shop.newsletter_subscription", "delete_rows")]
    assert plan[0].reasons == ("newsletter: consent withdrawn",)
    assert gdpr.purge(conn, now=now).counts == {"shop.newsletter_subscription": 1}


def test_the_daily_job_runs_once_per_slot_and_takes_up_a_broken_off_one(
    conn: psycopg.Connection[Any],
) -> None:
    _customers(conn, 2)
    _policy(conn, "wishes", "30 days", ["shop.wishlist"])
    at = time(2, 30)
    # the slot of a moment is that day's 02:30, or the day before's when earlier
    assert gdpr.daily_slot(at, START + timedelta(days=40, hours=1)) == START + timedelta(
        days=39, hours=2, minutes=30
    )

    day_29 = START + timedelta(days=29, hours=3)
    first = gdpr.run_daily_if_due(conn, at=at, now=day_29)
    assert first is not None and first["purged_customers"] == 0
    assert gdpr.run_daily_if_due(conn, at=at, now=day_29 + timedelta(hours=5)) is None

    # the next day's slot: the wishlists expired in between
    day_31 = START + timedelta(days=31, hours=3)
    second = gdpr.run_daily_if_due(conn, at=at, now=day_31)
    assert second is not None
    assert (second["purged_customers"], second["purge_counts"]) == (2, {"shop.wishlist": 2})

    # a run that stopped half-way (no finished_at) is run again by the next cycle
    broken_slot = START + timedelta(days=32, hours=2, minutes=30)
    conn.execute(
        "INSERT INTO gdpr.job_run (job, slot, started_at) VALUES ('daily', %s, %s)",
        [broken_slot, broken_slot],
    )
    conn.commit()
    assert gdpr.run_daily_if_due(conn, at=at, now=broken_slot + timedelta(hours=1)) is not None
    runs = conn.execute(
        "SELECT slot, attempts, customers_purged, rows_per_table::text, erasures_done"
        " FROM report.gdpr_daily_runs ORDER BY slot"
    ).fetchall()
    assert [(r[1], r[2], r[3], r[4]) for r in runs] == [
        (1, 0, "{}", 0),
        (1, 2, '{"shop.wishlist": 2}', 0),
        (2, 0, "{}", 0),
    ]
    assert [r[0] for r in runs] == [
        START + timedelta(days=d, hours=2, minutes=30) for d in (29, 31, 32)
    ]


def test_the_daemon_hook_survives_a_failing_job_and_logs_no_data(
    conn: psycopg.Connection[Any], caplog: Any
) -> None:
    _customers(conn, 1)
    conn.execute("SET ROLE syncctl_reporting")  # may not touch gdpr: the job fails
    job = gdpr.DailyJob(time(0, 0), retry_seconds=3600)
    with caplog.at_level("ERROR", logger="syncctl.gdpr"):
        assert job(conn) is None
    assert [r.getMessage() for r in caplog.records] == [
        "daily GDPR job failed (SQLSTATE 42501); retrying in 3600 s"
    ]
    conn.execute("RESET ROLE")
    # within the retry period the hook does not try again
    assert job(conn) is None
    assert conn.execute("SELECT count(*) FROM gdpr.job_run").fetchone() == (0,)
