"""A partitioned table is one table: discovery, coverage, merge, anonymisation and delete see the
partitioned parent once and never its partitions, which inherit the parent's classification and
are reached through the parent's grants (also a partition created later). On both test schemas:
the reference shop gets a partitioned table of visits; the boutique's orders are partitioned by
month, and the test adds next month's partition after the boutique was bound to the engine, as a
DBA's monthly job would (no classification, no grant of its own). The subject access export and
the residue search are checked on the reference shop only (the GDPR functions bind to it)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from syncctl import gdpr
from tests.feed import event, stage, upserted
from tests.shops import CustomerKey, ReferenceShop, ShopSchema


@dataclass(frozen=True)
class Partitioned:
    """A customer-linked table partitioned by a date, as a test schema has it."""

    table: LiteralString  # the parent, as sync.customer_links() names it
    customer: LiteralString  # its column holding the customer's key
    at: LiteralString  # the partition key
    note: LiteralString  # a personal column, classified 'null'
    insert: LiteralString  # a row: customer key, at, note
    # a day in each of three partitions and the partition it lands in; the last partition was
    # created after the table was classified and granted
    days: tuple[tuple[str, str], ...]

    def rows(self, conn: psycopg.Connection[Any], columns: LiteralString) -> list[Any]:
        """{customer}, {at} and {note} of every row, oldest first."""
        names = {
            "customer": sql.Identifier(self.customer),
            "at": sql.Identifier(self.at),
            "note": sql.Identifier(self.note),
        }
        query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
            sql.SQL(columns).format(**names), sql.SQL(self.table), names["at"]
        )
        return conn.execute(query).fetchall()

    def add(self, conn: psycopg.Connection[Any], key: CustomerKey, note: str) -> None:
        for day, _ in self.days:
            conn.execute(self.insert, [key, day, f"{note} {day}"])


VISITS = Partitioned(
    table="shop.visit",
    customer="customer_id",
    at="at",
    note="note",
    insert="INSERT INTO shop.visit (customer_id, at, note) VALUES (%s, %s, %s)",
    days=(
        ("2026-01-15", "shop.visit_2026_01"),
        ("2026-02-15", "shop.visit_2026_02"),
        ("2026-03-15", "shop.visit_2026_03"),
    ),
)
ORDERS = Partitioned(
    table="sales.orders",
    customer="customer_uuid",
    at="placed_at",
    note="delivery_name",
    insert="INSERT INTO sales.orders (customer_uuid, order_number, placed_at, delivery_name)"
    " VALUES (%s, pg_catalog.gen_random_uuid()::text, %s::date, %s)",
    days=(
        ("2026-01-15", "sales.orders_2026_01"),
        ("2026-02-15", "sales.orders_2026_02"),
        ("2027-01-15", "sales.orders_2027_01"),
    ),
)


def _visits(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE TABLE shop.visit (id bigint GENERATED ALWAYS AS IDENTITY,"
        " customer_id bigint NOT NULL REFERENCES shop.customer (id), at date NOT NULL,"
        " note text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)"
    )
    conn.execute(
        "CREATE TABLE shop.visit_2026_01 PARTITION OF shop.visit"
        " FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')"
    )
    conn.execute(
        "CREATE TABLE shop.visit_2026_02 PARTITION OF shop.visit"
        " FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')"
    )
    conn.execute("CREATE INDEX ON shop.visit (customer_id)")
    # a table the shop adds: the engine works on it as its owner role, which a DBA grants
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON shop.visit TO syncctl_owner")
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
        " VALUES ('shop', 'visit', 'id', 'not_personal'),"
        " ('shop', 'visit', 'customer_id', 'not_personal'),"
        " ('shop', 'visit', 'at', 'keep'),"
        " ('shop', 'visit', 'note', 'null')"
    )
    # the next month's partition, created after the classification
    conn.execute(
        "CREATE TABLE shop.visit_2026_03 PARTITION OF shop.visit"
        " FOR VALUES FROM ('2026-03-01') TO ('2026-04-01')"
    )
    conn.commit()


def _partitioned(conn: psycopg.Connection[Any], shop: ShopSchema) -> Partitioned:
    """The schema's partitioned customer-linked table, its newest partition made after the
    engine was bound to it."""
    if isinstance(shop, ReferenceShop):
        _visits(conn)
        return VISITS
    conn.execute(
        "CREATE TABLE sales.orders_2027_01 PARTITION OF sales.orders"
        " FOR VALUES FROM ('2027-01-01 00:00+00') TO ('2027-02-01 00:00+00')"
    )
    conn.commit()
    return ORDERS


def _key(conn: psycopg.Connection[Any], shop: ShopSchema, number: str) -> CustomerKey:
    key = shop.key_of(conn, number)
    assert key is not None
    return key


def test_discovery_and_coverage_see_the_parent_once(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    part = _partitioned(conn, shop)
    parent = part.table.split(".")[1]
    links = [
        t
        for (t,) in conn.execute("SELECT qualified_name FROM sync.customer_links()")
        if t.split(".")[1].startswith(parent)
    ]
    assert links == [part.table]
    tables = [
        t
        for (t,) in conn.execute("SELECT qualified_name FROM sync.customer_tables()")
        if t.split(".")[1].startswith(parent)
    ]
    assert tables == [part.table]
    assert conn.execute("SELECT * FROM sync.coverage_defects()").fetchall() == []

    conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN channel text").format(sql.SQL(part.table)))
    assert conn.execute(
        "SELECT table_name, column_name, defect FROM sync.coverage_defects()"
    ).fetchall() == [(part.table, "channel", "column has no PII strategy")]


def test_merge_and_anonymisation_reach_every_partition(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    part = _partitioned(conn, shop)
    stage(conn, [upserted("TX00000701", 1), upserted("TX00000702", 1)])
    old, survivor = _key(conn, shop, "TX00000701"), _key(conn, shop, "TX00000702")
    part.add(conn, old, "note")
    conn.commit()
    newest = part.days[-1][1]
    # the newest partition has no grant of its own: the parent's reach it
    assert conn.execute(
        "SELECT has_table_privilege('syncctl_owner', %s, 'UPDATE')", [newest]
    ).fetchone() == (False,)

    outcome = stage(conn, [event("customer.merged", "TX00000701", 2, into="TX00000702")])

    assert outcome.states == {"applied": 1}
    assert part.rows(conn, "tableoid::regclass::text, {customer}") == [
        (partition, survivor) for _, partition in part.days
    ]
    counts = conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'customer.merged'"
    ).fetchone()
    assert counts is not None
    parent = part.table.split(".")[1]
    assert {k: v for k, v in counts[0].items() if k.split(".")[1].startswith(parent)} == {
        part.table: 3
    }

    outcome = stage(conn, [event("customer.anonymized", "TX00000702", 2, reason_code="AVG")])

    assert outcome.states == {"applied": 1}
    assert part.rows(conn, "{at}::date::text, {note}") == [(day, None) for day, _ in part.days]


def test_a_delete_reaches_every_partition(conn: psycopg.Connection[Any], shop: ShopSchema) -> None:
    part = _partitioned(conn, shop)
    stage(conn, [upserted("TX00000721", 1)])
    key = _key(conn, shop, "TX00000721")
    part.add(conn, key, "note")
    conn.commit()
    schema, table = part.table.split(".")
    bookkeeping = conn.execute(
        "SELECT EXISTS (SELECT FROM sync.anonymise_rule WHERE table_schema = %s"
        " AND table_name = %s AND bookkeeping)",
        [schema, table],
    ).fetchone() == (True,)

    outcome = stage(conn, [event("customer.deleted", "TX00000721", 2)])

    assert outcome.states == {"applied": 1}
    kind = conn.execute(
        "SELECT kind FROM sync.tombstone WHERE customer_number = 'TX00000721'"
    ).fetchone()
    if bookkeeping:
        # rows kept for bookkeeping make the delete an anonymisation: every partition scrubbed
        assert kind == ("anonymised",)
        assert part.rows(conn, "{at}::date::text, {note}") == [(day, None) for day, _ in part.days]
    else:
        assert kind == ("deleted",)
        assert part.rows(conn, "{note}") == []
        assert shop.key_of(conn, "TX00000721") is None


def test_export_and_residue_search_read_each_row_once_on_the_reference_shop(
    conn: psycopg.Connection[Any],
) -> None:
    _visits(conn)
    planted = f"{secrets.token_hex(8)}@example.nl"
    stage(conn, [upserted("TX00000711", 1)])
    cid = _key(conn, ReferenceShop(), "TX00000711")
    conn.execute(VISITS.insert, [cid, "2026-01-15", planted])
    conn.execute(VISITS.insert, [cid, "2026-02-15", "second visit"])
    conn.commit()

    data = gdpr.subject_data(conn, number="TX00000711")
    assert sorted(t for t in data.tables if t.startswith("shop.visit")) == ["shop.visit"]
    assert sorted(r["note"] for r in data.tables["shop.visit"]) == [planted, "second visit"]

    hits = conn.execute(
        "SELECT column_name, hits FROM gdpr.residue_search(ARRAY[gdpr._digest(%s)])"
        " WHERE column_name LIKE 'shop.visit%%'",
        [planted],
    ).fetchall()
    assert hits == [("shop.visit.note", 1)]


def test_a_foreign_key_declared_on_one_partition_only_is_that_partitions_own(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """Not every schema declares its foreign keys on the parent: a partition with a foreign key
    of its own is a customer-linked table itself, never silently passed over."""
    customer = shop.mapping["customer"]
    names = {
        "schema": sql.Identifier(customer["schema"]),
        "customer": sql.Identifier(customer["schema"], customer["table"]),
        "key": sql.Identifier(shop.key_column),
        "key_type": sql.SQL(shop.key_type),
    }
    conn.execute(
        sql.SQL(
            "CREATE TABLE {schema}.stamp (customer_ref {key_type} NOT NULL, at date NOT NULL)"
            " PARTITION BY RANGE (at);"
            " CREATE TABLE {schema}.stamp_2026 PARTITION OF {schema}.stamp"
            " FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');"
            " ALTER TABLE {schema}.stamp_2026 ADD CONSTRAINT stamp_2026_customer"
            " FOREIGN KEY (customer_ref) REFERENCES {customer} ({key})"
        ).format(**names)
    )
    linked = {
        r[0] for r in conn.execute("SELECT qualified_name FROM sync.customer_links()").fetchall()
    }
    assert f"{customer['schema']}.stamp_2026" in linked
    assert f"{customer['schema']}.stamp" not in linked
