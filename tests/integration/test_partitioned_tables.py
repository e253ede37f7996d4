"""A partitioned table is one table: discovery, coverage, merge, anonymisation, the subject
access export and the residue search see the partitioned parent once and never its partitions,
which inherit the parent's classification (also a partition created later)."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg

from syncctl import gdpr
from tests.feed import event, stage, upserted


def _id(conn: psycopg.Connection[Any], number: str) -> int:
    row = conn.execute(
        "SELECT id FROM shop.customer WHERE customer_number = %s", [number]
    ).fetchone()
    assert row is not None
    return int(row[0])


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


def _visit(conn: psycopg.Connection[Any], customer_id: int, at: str, note: str) -> None:
    conn.execute(
        "INSERT INTO shop.visit (customer_id, at, note) VALUES (%s, %s, %s)",
        [customer_id, at, note],
    )


def test_discovery_and_coverage_see_the_parent_once(conn: psycopg.Connection[Any]) -> None:
    _visits(conn)
    links = [
        t
        for (t,) in conn.execute("SELECT qualified_name FROM sync.customer_links()")
        if t.startswith("shop.visit")
    ]
    assert links == ["shop.visit"]
    tables = [
        t
        for (t,) in conn.execute("SELECT qualified_name FROM sync.customer_tables()")
        if t.startswith("shop.visit")
    ]
    assert tables == ["shop.visit"]
    assert conn.execute("SELECT * FROM sync.coverage_defects()").fetchall() == []

    conn.execute("ALTER TABLE shop.visit ADD COLUMN channel text")
    assert conn.execute(
        "SELECT table_name, column_name, defect FROM sync.coverage_defects()"
    ).fetchall() == [("shop.visit", "channel", "column has no PII strategy")]


def test_merge_and_anonymisation_reach_every_partition(conn: psycopg.Connection[Any]) -> None:
    _visits(conn)
    stage(conn, [upserted("TX00000701", 1), upserted("TX00000702", 1)])
    old, survivor = _id(conn, "TX00000701"), _id(conn, "TX00000702")
    for at in ("2026-01-15", "2026-02-15", "2026-03-15"):
        _visit(conn, old, at, f"note {at}")
    conn.commit()

    outcome = stage(conn, [event("customer.merged", "TX00000701", 2, into="TX00000702")])

    assert outcome.states == {"applied": 1}
    assert conn.execute(
        "SELECT tableoid::regclass::text, customer_id FROM shop.visit ORDER BY at"
    ).fetchall() == [
        ("shop.visit_2026_01", survivor),
        ("shop.visit_2026_02", survivor),
        ("shop.visit_2026_03", survivor),
    ]
    counts = conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'customer.merged'"
    ).fetchone()
    assert counts is not None
    assert {k: v for k, v in counts[0].items() if k.startswith("shop.visit")} == {"shop.visit": 3}

    outcome = stage(conn, [event("customer.anonymized", "TX00000702", 2, reason_code="AVG")])

    assert outcome.states == {"applied": 1}
    assert conn.execute("SELECT at::text, note FROM shop.visit ORDER BY at").fetchall() == [
        ("2026-01-15", None),
        ("2026-02-15", None),
        ("2026-03-15", None),
    ]


def test_export_and_residue_search_read_each_row_once(conn: psycopg.Connection[Any]) -> None:
    _visits(conn)
    planted = f"{secrets.token_hex(8)}@example.nl"
    stage(conn, [upserted("TX00000711", 1)])
    cid = _id(conn, "TX00000711")
    _visit(conn, cid, "2026-01-15", planted)
    _visit(conn, cid, "2026-02-15", "second visit")
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
    conn: psycopg.Connection[Any],
) -> None:
    """Not every schema declares its foreign keys on the parent: a partition with a foreign key
    of its own is a customer-linked table itself, never silently passed over."""
    conn.execute(
        "CREATE TABLE shop.stamp (customer_id bigint NOT NULL, at date NOT NULL)"
        " PARTITION BY RANGE (at)"
    )
    conn.execute(
        "CREATE TABLE shop.stamp_2026 PARTITION OF shop.stamp"
        " FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
    )
    conn.execute(
        "ALTER TABLE shop.stamp_2026 ADD CONSTRAINT stamp_2026_customer"
        " FOREIGN KEY (customer_id) REFERENCES shop.customer (id)"
    )
    linked = {
        r[0] for r in conn.execute("SELECT qualified_name FROM sync.customer_links()").fetchall()
    }
    assert "shop.stamp_2026" in linked
    assert "shop.stamp" not in linked
