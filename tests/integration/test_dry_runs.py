"""Dry runs tell the truth: what a merge, anonymisation, delete or retention purge says it would
change, per table, is what the real run then changes, on customers with rows everywhere (shop
tables, inbox payloads, dead letters, outbox). Merge, anonymisation and delete on both test
schemas; the retention purge on the reference shop (the GDPR functions bind to it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from syncctl import engine, gdpr
from tests.feed import event, stage, upserted
from tests.integration.test_gdpr_retention import START, _policy
from tests.shops import CustomerKey, ReferenceShop, ShopSchema

REFERENCE: ShopSchema = ReferenceShop()


def _everywhere(
    conn: psycopg.Connection[Any], number: str, orders: int = 1, shop: ShopSchema = REFERENCE
) -> CustomerKey:
    """A customer with rows in every shop table, an applied inbox payload, a dead letter and an
    outbox row."""
    stage(conn, [upserted(number, 1)])
    cid = shop.key_of(conn, number)
    assert cid is not None
    shop.add_rows_everywhere(conn, cid, orders=orders)
    assert stage(conn, [upserted(number, 2, birth_date="1990-02-30")]).states == {"dead_letter": 1}
    conn.execute(
        "INSERT INTO sync.outbox (customer_number, event_type, payload)"
        " VALUES (%s, 'customer.anonymize_requested', '{}')",
        [number],
    )
    conn.commit()
    return cid


def _table_counts(counts: dict[str, Any]) -> dict[str, int]:
    return {table: int(rows) for table, rows in counts.items() if int(rows)}


def test_merge_dry_run_counts_equal_the_merge(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    _everywhere(conn, "TX00000001", shop=shop)
    _everywhere(conn, "TX00000002", shop=shop)
    planned = engine.merge(conn, "TX00000001", "TX00000002", actor="ops:test", dry_run=True)
    done = engine.merge(conn, "TX00000001", "TX00000002", actor="ops:test")
    assert planned.outcome == "would apply" and done.outcome == "applied"
    assert _table_counts(planned.counts) == _table_counts(done.counts)
    assert shop.key_of(conn, "TX00000001") is None


def test_anonymise_dry_run_counts_equal_the_anonymisation(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    _everywhere(conn, "TX00000001", shop=shop)
    planned = engine.anonymise(
        conn, "TX00000001", reason_code="AVG", actor="ops:test", dry_run=True
    )
    done = engine.anonymise(conn, "TX00000001", reason_code="AVG", actor="ops:test")
    assert planned.counts.get("sync.dead_letter") == 1
    assert _table_counts(planned.counts) == _table_counts(done.counts)


@pytest.mark.parametrize("orders", [0, 1], ids=["without orders", "with orders"])
def test_delete_dry_run_counts_equal_the_delete(
    conn: psycopg.Connection[Any], shop: ShopSchema, orders: int
) -> None:
    _everywhere(conn, "TX00000001", orders=orders, shop=shop)
    planned = {
        table: int(rows)
        for table, _action, rows in conn.execute(
            "SELECT * FROM sync.delete_plan('TX00000001')"
        ).fetchall()
    }
    stage(conn, [event("customer.deleted", "TX00000001", 3)])
    row = conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'customer.deleted'"
        " AND customer_number = 'TX00000001'"
    ).fetchone()
    assert row is not None
    assert planned.get("sync.dead_letter") == 1
    assert _table_counts(planned) == _table_counts(row[0])


def test_purge_dry_run_names_every_table_the_purge_changes_on_the_reference_shop(
    conn: psycopg.Connection[Any],
) -> None:
    first = _everywhere(conn, "TX00000001")
    second = _everywhere(conn, "TX00000002")
    conn.execute("UPDATE shop.customer SET created_at = %s, last_login_at = %s", [START, START])
    conn.execute("UPDATE shop.orders SET placed_at = %s", [START])
    conn.commit()
    # the second customer is released as a whole (anonymised), the first only its wish lists
    _policy(conn, "wishes", "10 days", ["shop.wishlist"])
    _policy(conn, "account", "60 days", ["shop.customer"])
    conn.execute(
        "UPDATE shop.customer SET last_login_at = %s WHERE id = %s",
        [START + timedelta(days=45), first],
    )
    conn.commit()
    now = START + timedelta(days=61)

    plan = gdpr.purge_dry_run(conn, now=now)
    planned: dict[str, int] = {}
    for step in plan.steps:
        planned[step.table] = planned.get(step.table, 0) + step.customers
    done = gdpr.purge(conn, now=now)
    changed: dict[str, int] = {}
    for (counts,) in conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'gdpr.retention_purge'"
    ).fetchall():
        for table, rows in counts.items():
            if int(rows):
                changed[table] = changed.get(table, 0) + 1
    assert second and planned == changed
    # and the rows per table are the run's
    assert {t.table: t.rows for t in plan.tables} == done.counts
    assert {t.table: t.customers for t in plan.tables} == changed
    assert plan.customers == done.customers == 2
