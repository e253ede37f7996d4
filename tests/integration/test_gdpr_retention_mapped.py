"""Retention on both test schemas (tests.shops.SHOPS): the reference shop (bigint key) and the
boutique (uuid key, orders partitioned by month in schema sales, the group in the shop's own
`segment` column, last activity in `modified_at`). Each policy kind counts from the fact the
mapping's [gdpr] table declares: created, last activity, last order (on the partitioned
orders, a partition made after install included), customer group membership, and consent. A
customer released whole is anonymised through the engine (tombstone, outbound event); runs
page through the customers in key order, each examined once. Time is injected, never slept."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString

import psycopg
import pytest
from psycopg import sql

from syncctl import gdpr
from tests.feed import snapshot
from tests.shops import SHOPS, CustomerKey, ShopSchema
from tests.shops.binding import bind_boutique

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Tables:
    """What a test needs to know of a shop's tables beyond the ShopSchema protocol."""

    customer: str  # 'schema.table', as policy categories name it
    orders: str
    listed: str  # a delete_rows table of the customer's (wishlist, favourites)
    listed_sql: LiteralString  # insert a row of it: (key, sku)
    listed_count_sql: LiteralString  # rows of it for a key
    created: str  # the [gdpr] columns of the customer table
    activity: str
    group: str


TABLES = {
    "reference": Tables(
        customer="shop.customer",
        orders="shop.orders",
        listed="shop.wishlist",
        listed_sql="INSERT INTO shop.wishlist (customer_id, sku, note) VALUES (%s, %s, 'gift')",
        listed_count_sql="SELECT count(*) FROM shop.wishlist WHERE customer_id = %s",
        created="created_at",
        activity="last_login_at",
        group="customer_group",
    ),
    "boutique": Tables(
        customer="crm.customer",
        orders="sales.orders",
        listed="crm.favourite",
        listed_sql="INSERT INTO crm.favourite (customer_uuid, sku) VALUES (%s, %s)",
        listed_count_sql="SELECT count(*) FROM crm.favourite WHERE customer_uuid = %s",
        created="created_at",
        activity="modified_at",
        group="segment",
    ),
}


@pytest.fixture(params=SHOPS, ids=lambda shop: shop.name)
def shop(request: pytest.FixtureRequest, conn: psycopg.Connection[Any]) -> Iterator[ShopSchema]:
    """The test's shop schema, bound to the engine (the boutique installed, classified, mapped)."""
    chosen: ShopSchema = request.param
    if chosen.name == "boutique":
        bind_boutique(conn, chosen, classified=True)
    yield chosen


def _customer(
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
    *,
    at: datetime = START,
    group: str = "retail",
    orders: tuple[datetime, ...] = (),
) -> tuple[CustomerKey, str]:
    """A linked customer created and last active at `at`, with a listed row and `orders` (each
    with a delivery name); its key and the delivery name (a random, personal value)."""
    tables = TABLES[shop.name]
    number = f"TX{secrets.randbelow(10**8):08d}"
    name = f"N{secrets.token_hex(6)}"
    key = shop.add_customer(
        conn,
        snapshot(number, first_name=name),
        shop_values={tables.created: at, tables.activity: at, tables.group: group},
    )
    conn.execute(tables.listed_sql, [key, "SKU-1"])
    for placed in orders:
        order = shop.place_order(conn, key, placed)
        conn.execute(
            sql.SQL("UPDATE {} SET delivery_name = %s WHERE id = %s").format(
                sql.Identifier(*tables.orders.split(".")), sql.Placeholder(), sql.Placeholder()
            ),
            [name, order],
        )
    conn.commit()
    return key, name


def _policy(
    conn: psycopg.Connection[Any],
    code: str,
    *,
    retention: str | None,
    retention_from: str,
    categories: list[str],
    membership: str = "all",
    customer_group: str | None = None,
) -> None:
    gdpr.create_policy(
        conn,
        code,
        name=code,
        description=code,
        legal_basis="contract",
        retention=retention,
        retention_from=retention_from,
        categories=categories,
        membership=membership,
        customer_group=customer_group,
        actor="dpo:test",
    )
    gdpr.activate_policy(conn, code, actor="dpo:test", now=START)


def _count(conn: psycopg.Connection[Any], query: LiteralString | sql.Composed, *args: Any) -> int:
    row = conn.execute(query, list(args)).fetchone()
    assert row is not None
    return int(row[0])


def _anonymised(conn: psycopg.Connection[Any], shop: ShopSchema, key: CustomerKey) -> bool:
    """Whether the customer's row was anonymised (the engine's tombstone holds its number)."""
    number = conn.execute("SELECT syncmap.number_of(%s)", [str(key)]).fetchone()
    assert number is not None
    return (
        _count(conn, "SELECT count(*) FROM sync.tombstone WHERE customer_number = %s", number[0])
        == 1
    )


def _delivery_names(conn: psycopg.Connection[Any], shop: ShopSchema, name: str) -> int:
    table = sql.Identifier(*TABLES[shop.name].orders.split("."))
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE delivery_name = %s").format(table), [name]
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_created_policy_anonymises_the_customers_it_releases_in_key_order(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    tables = TABLES[shop.name]
    old = [_customer(conn, shop, at=START) for _ in range(5)]
    young = [_customer(conn, shop, at=START + timedelta(days=300)) for _ in range(2)]
    _policy(
        conn,
        "accounts",
        retention="1 year",
        retention_from="created",
        categories=[tables.customer, tables.listed],
    )
    expired = START + timedelta(days=400)

    plan = {
        (s.policy, s.table, s.action, s.customers): s.reasons
        for s in gdpr.purge_plan(conn, now=expired)
    }
    # the dry run also lists what the anonymisation does to the customer's other tables
    assert plan[("accounts", tables.customer, "anonymise", 5)] == (
        "accounts: retention over (created + 1 year)",
    )
    assert ("accounts", tables.listed, "anonymise: delete_rows", 5) in plan

    assert gdpr.purge_scope(conn) == 7  # the progress bar's length
    # batches of two walk every customer once, in the key's own order
    after: str | None = None
    seen: list[str] = []
    scanned = 0
    while True:
        row = conn.execute(
            "SELECT gdpr.purge_batch(%s, %s::text, 2, 'retention')", [expired, after]
        ).fetchone()
        conn.commit()
        assert row is not None
        if row[0]["last_key"] is None:
            break
        scanned += row[0]["scanned"]
        seen.append(row[0]["last_key"])
        after = row[0]["last_key"]
    assert scanned == 7
    keys = [type(old[0][0])(k) for k in seen]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)

    assert [_anonymised(conn, shop, k) for k, _ in old] == [True] * 5
    # the anonymised rows hold none of the person's values, the others keep theirs
    table = sql.Identifier(*tables.customer.split("."))
    held = sql.SQL("SELECT count(*) FROM {} AS t WHERE t::text LIKE %s").format(table)
    assert [_count(conn, held, f"%{name}%") for _, name in old + young] == [0] * 5 + [1] * 2
    assert [_anonymised(conn, shop, k) for k, _ in young] == [False] * 2
    for key, _ in old:
        assert _count(conn, tables.listed_count_sql, key) == 0
    assert [_count(conn, tables.listed_count_sql, k) for k, _ in young] == [1, 1]
    assert (
        _count(
            conn, "SELECT count(*) FROM sync.outbox WHERE payload ->> 'reason_code' = 'RETENTION'"
        )
        == 5
    )
    # idempotent: nothing is left to do
    assert gdpr.purge_plan(conn, now=expired) == []
    assert gdpr.purge(conn, now=expired).customers == 0


def test_a_last_order_policy_counts_from_the_newest_order_in_any_partition(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    tables = TABLES[shop.name]
    if shop.name == "boutique":
        # a month partitioned after the engine was bound: one table with its parent
        conn.execute(
            "CREATE TABLE sales.orders_2027_03 PARTITION OF sales.orders"
            " FOR VALUES FROM ('2027-03-01 00:00Z') TO ('2027-04-01 00:00Z')"
        )
        conn.commit()
    recent = START + timedelta(days=430)  # 2027-03-07: in the new partition
    gone, gone_name = _customer(conn, shop, orders=(START + timedelta(days=14),))
    kept, kept_name = _customer(conn, shop, orders=(START + timedelta(days=14), recent))
    _policy(
        conn,
        "orders",
        retention="1 year",
        retention_from="last_order",
        categories=[tables.orders, tables.listed],
    )

    now = START + timedelta(days=600)
    plan = gdpr.purge_plan(conn, now=now)
    assert {(s.table, s.action, s.customers) for s in plan} == {
        (tables.orders, "scrub", 1),
        (tables.listed, "delete_rows", 1),
    }
    report = gdpr.purge(conn, now=now, batch_size=1)
    assert report.customers == 1
    assert report.counts == {tables.orders: 1, tables.listed: 1}
    assert _delivery_names(conn, shop, gone_name) == 0
    assert _count(conn, tables.listed_count_sql, gone) == 0
    assert _delivery_names(conn, shop, kept_name) == 2
    assert _count(conn, tables.listed_count_sql, kept) == 1

    # a year after the newest order the other customer's go too, the new partition's row
    # included; orders are kept for the books, scrubbed
    later = recent + timedelta(days=400)
    assert gdpr.purge(conn, now=later).counts == {tables.orders: 2, tables.listed: 1}
    assert _delivery_names(conn, shop, kept_name) == 0
    assert _count(conn, tables.listed_count_sql, kept) == 0
    assert not _anonymised(conn, shop, kept)


def test_a_customer_group_policy_releases_only_its_group(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    tables = TABLES[shop.name]
    employee, _ = _customer(conn, shop, group="employee")
    customer, _ = _customer(conn, shop, group="retail")
    _policy(
        conn,
        "staff",
        retention="3 months",
        retention_from="last_activity",
        categories=[tables.customer],
        membership="customer_group",
        customer_group="employee",
    )
    warned = gdpr.expiry_warnings(conn, now=START + timedelta(days=80), within_days=30)
    assert [(w.customer_key, w.policy) for w in warned] == [(str(employee), "staff")]
    assert warned[0].customer_number is not None

    now = START + timedelta(days=120)
    report = gdpr.purge(conn, now=now)
    assert report.customers == 1
    assert _anonymised(conn, shop, employee) and not _anonymised(conn, shop, customer)
    audit = conn.execute(
        "SELECT customer_number, customer_key, reason, counts::text FROM sync.audit"
        " WHERE action = 'gdpr.retention_purge'"
    ).fetchall()
    number = conn.execute("SELECT syncmap.number_of(%s)", [str(employee)]).fetchone()
    assert number is not None
    assert [(n, k, r) for n, k, r, _ in audit] == [
        (number[0], str(employee), "released by policies: staff")
    ]


def test_a_withdrawn_consent_releases_a_consent_policy(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    tables = TABLES[shop.name]
    withdrawn, _ = _customer(conn, shop)
    granted, _ = _customer(conn, shop)
    _policy(
        conn,
        "wishes",
        retention="2 years",
        retention_from="last_activity",
        categories=[tables.listed],
        membership="consent",
    )
    for key in (withdrawn, granted):
        conn.execute(
            "SELECT gdpr.record_consent(%s::text, 'wishes', true, 'webshop', 'webshop')",
            [str(key)],
        )
    conn.commit()
    now = START + timedelta(days=400)
    assert gdpr.purge_plan(conn, now=now) == []
    conn.execute(
        "SELECT gdpr.record_consent(%s::text, 'wishes', false, 'webshop', 'webshop')",
        [str(withdrawn)],
    )
    conn.commit()
    plan = gdpr.purge_plan(conn, now=now)
    assert [(s.table, s.action, s.customers) for s in plan] == [(tables.listed, "delete_rows", 1)]
    assert plan[0].reasons == ("wishes: consent withdrawn",)
    assert gdpr.purge(conn, now=now).counts == {tables.listed: 1}
    assert _count(conn, tables.listed_count_sql, withdrawn) == 0
    assert _count(conn, tables.listed_count_sql, granted) == 1
    status = conn.execute(
        "SELECT policy_code, holds, reason FROM gdpr.retention_status_of(%s, %s)",
        [str(withdrawn), now],
    ).fetchall()
    assert status == [("wishes", False, "consent withdrawn")]
