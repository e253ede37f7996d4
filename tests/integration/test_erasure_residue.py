"""Residue: after anonymisation (from tritonX's feed and from the back-office button) none of
the person's original values is left in any text or JSON column of any table in the database:
shop tables, inbox payloads of earlier deliveries, dead letters, outbox, audit."""

from __future__ import annotations

import random
from typing import Any

import psycopg
from psycopg import sql

from syncctl.loader import read_cursor, stage_page
from syncctl.simulator.state import TritonX
from syncctl.tritonx import ChangePage

CUSTOMERS = 200


def deliver(conn: psycopg.Connection[Any], tritonx: TritonX) -> None:
    while True:
        cursor = read_cursor(conn, "tritonx")
        conn.commit()
        events, next_cursor, more = tritonx.changes(int(cursor or 0), 50)
        stage_page(conn, "tritonx", cursor, ChangePage(events, str(next_cursor), more))
        if not more:
            return


def text_columns(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    return conn.execute(
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE t.table_type = 'BASE TABLE'"
        "   AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
        "   AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')"
    ).fetchall()


def residue(conn: psycopg.Connection[Any], values: list[str]) -> list[str]:
    """Every table.column holding one of `values` anywhere in its text."""
    patterns = [
        "%" + v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for v in values
    ]
    hits = []
    for schema, table, column in text_columns(conn):
        query = sql.SQL("SELECT count(*) FROM {}.{} WHERE {}::text LIKE ANY(%s)").format(
            sql.Identifier(schema), sql.Identifier(table), sql.Identifier(column)
        )
        row = conn.execute(query, [patterns]).fetchone()
        if row and row[0]:
            hits.append(f"{schema}.{table}.{column}: {row[0]}")
    conn.commit()
    return hits


def personal_values(snapshot: dict[str, Any]) -> list[str]:
    values = [snapshot["email"], snapshot["mobile"]]
    values += [snapshot[k] for k in ("phone", "loyalty_card") if snapshot.get(k)]
    return values


def test_anonymised_customers_leave_no_residue(conn: psycopg.Connection[Any]) -> None:
    rng = random.Random(5)
    tritonx = TritonX(customers=CUSTOMERS, seed=17)
    deliver(conn, tritonx)
    ids = dict(conn.execute("SELECT customer_number, id FROM shop.customer"))
    numbers = sorted(ids)
    # copies of personal data in the shop's own tables
    for number in numbers:
        snap = tritonx.customer(number).snapshot  # type: ignore[union-attr]
        assert snap is not None
        cid = ids[number]
        conn.execute(
            "INSERT INTO shop.address (customer_id, recipient_name, street, house_number,"
            " postcode, city) VALUES (%s, %s, %s, %s, %s, %s)",
            [
                cid,
                f"{snap['first_name']} {snap['last_name']}",
                snap["street"],
                snap["house_number"],
                snap["postcode"],
                snap["city"],
            ],
        )
        conn.execute(
            "INSERT INTO shop.orders (customer_id, order_number, total_amount, delivery_name,"
            " delivery_street, delivery_postcode, contact_email, contact_phone)"
            " VALUES (%s, %s, 42.50, %s, %s, %s, %s, %s)",
            [
                cid,
                f"O-{number}",
                f"{snap['first_name']} {snap['last_name']}",
                snap["street"],
                snap["postcode"],
                snap["email"],
                snap["mobile"],
            ],
        )
        conn.execute(
            "INSERT INTO shop.login_identity (customer_id, login_name) VALUES (%s, %s)",
            [cid, snap["email"]],
        )
        conn.execute(
            "INSERT INTO shop.newsletter_subscription (customer_id, list_name, email)"
            " VALUES (%s, 'weekly', %s)",
            [cid, snap["email"]],
        )
        conn.execute(
            "INSERT INTO shop.cart (customer_id, items) VALUES (%s, %s)",
            [cid, psycopg.types.json.Jsonb([{"sku": "x", "gift_note": snap["mobile"]}])],
        )
    conn.commit()
    # later versions, so the inbox holds several deliveries per customer
    for number in rng.sample(numbers, 60):
        tritonx.edit(number, city="Zwolle")
    deliver(conn, tritonx)

    chosen = rng.sample(numbers, 30)
    from_feed, from_backoffice = chosen[:20], chosen[20:]
    originals = {n: personal_values(tritonx.customer(n).snapshot) for n in chosen}  # type: ignore[union-attr, arg-type]
    kept = [n for n in numbers if n not in chosen][:5]
    kept_values = [v for n in kept for v in personal_values(tritonx.customer(n).snapshot)]  # type: ignore[union-attr, arg-type]
    all_values = [v for vs in originals.values() for v in vs]
    assert residue(conn, all_values), "the search finds nothing even before anonymising"

    for number in from_feed:
        tritonx.anonymise(number)
    deliver(conn, tritonx)
    for number in from_backoffice:
        conn.execute(
            "SELECT sync.anonymise_from_backoffice(%s, 'AVG', 'backoffice:test')", [ids[number]]
        )
    conn.commit()
    # the back-office anonymisations come back through the feed: a no-op on the tombstone
    for number in from_backoffice:
        tritonx.anonymise(number)
    deliver(conn, tritonx)

    assert residue(conn, all_values) == []
    assert residue(conn, kept_values), "customers nobody anonymised lost their data"
    totals = conn.execute("SELECT count(*), sum(total_amount) FROM shop.orders").fetchone()
    assert totals == (CUSTOMERS, 42.50 * CUSTOMERS)
    outbox = conn.execute("SELECT count(*) FROM sync.outbox").fetchone()
    assert outbox == (len(from_backoffice),)
