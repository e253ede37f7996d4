"""Acceptance of the subject access export by docs/gdpr.md alone, on both test schemas: "tables
one foreign key further (`shop.order_line` via `shop.orders`)" holds for a foreign key of two
columns too, the only kind a table can have to a partitioned table (its key includes the
partition key: the boutique's orders); the export lists the subject's rows of it once and no
other customer's. The policies in the export carry their retention status whatever the key
type."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from typing import Any, LiteralString

import psycopg

from syncctl import gdpr
from tests.feed import stage, upserted
from tests.shops import ShopSchema

# A shop table hanging off the orders by a two-column foreign key, with a personal free-text
# column; on the reference shop the orders gain the unique key it refers to.
LINES_DDL: dict[str, LiteralString] = {
    "reference": (
        "ALTER TABLE shop.orders ADD CONSTRAINT orders_id_number UNIQUE (id, order_number);"
        " CREATE TABLE shop.shipment (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " order_id bigint NOT NULL, order_number text NOT NULL, gift_note text,"
        " FOREIGN KEY (order_id, order_number) REFERENCES shop.orders (id, order_number));"
        " GRANT SELECT ON shop.shipment TO syncctl_owner"
    ),
    "boutique": (
        "CREATE TABLE sales.shipment (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " order_id bigint NOT NULL, order_placed_at timestamptz NOT NULL, gift_note text,"
        " FOREIGN KEY (order_id, order_placed_at) REFERENCES sales.orders (id, placed_at));"
        " GRANT SELECT ON sales.shipment TO syncctl_owner"
    ),
}
LINE_SQL: dict[str, LiteralString] = {
    "reference": "INSERT INTO shop.shipment (order_id, order_number, gift_note)"
    " SELECT id, order_number, %s FROM shop.orders WHERE id = %s",
    "boutique": "INSERT INTO sales.shipment (order_id, order_placed_at, gift_note)"
    " SELECT id, placed_at, %s FROM sales.orders WHERE id = %s",
}
SHIPMENT = {"reference": "shop.shipment", "boutique": "sales.shipment"}
ORDERS = {"reference": "shop.orders", "boutique": "sales.orders"}


def _note() -> str:
    return f"for {secrets.token_hex(6)}"


def test_rows_one_two_column_foreign_key_further_are_exported_once_and_only_the_subjects(
    shop: ShopSchema, conn: psycopg.Connection[Any], dsn: str
) -> None:
    stage(conn, [upserted("TX00000701", 1), upserted("TX00000702", 1)])
    subject, other = shop.key_of(conn, "TX00000701"), shop.key_of(conn, "TX00000702")
    assert subject is not None and other is not None
    conn.execute(LINES_DDL[shop.name])
    mine = [_note(), _note()]
    theirs = _note()
    # two orders of the subject (one with two shipments), one of the other customer
    first, second = shop.place_order(conn, subject), shop.place_order(conn, subject)
    conn.execute(LINE_SQL[shop.name], [mine[0], first])
    conn.execute(LINE_SQL[shop.name], [mine[1], first])
    conn.execute(LINE_SQL[shop.name], [None, second])
    conn.execute(LINE_SQL[shop.name], [theirs, shop.place_order(conn, other)])
    conn.commit()

    data = gdpr.subject_data(conn, customer_id=str(subject))
    notes = sorted(str(r["gift_note"]) for r in data.tables.get(SHIPMENT[shop.name], []))
    assert notes == sorted([*mine, "None"])

    exported = subprocess.run(
        [sys.executable, "-m", "syncctl", "--dsn", dsn, "export", "TX00000701"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    document = json.loads(exported.stdout)
    assert len(document["tables"][SHIPMENT[shop.name]]) == 3
    assert [n for n in mine if n not in exported.stdout] == []
    assert theirs not in exported.stdout


def test_the_exported_policies_say_whether_they_still_hold_the_data_for_any_key_type(
    shop: ShopSchema, conn: psycopg.Connection[Any]
) -> None:
    stage(conn, [upserted("TX00000711", 1)])
    key = shop.key_of(conn, "TX00000711")
    gdpr.activate_policy(conn, "club", actor="dpo:test")
    conn.execute("SELECT gdpr.record_consent(%s::text, 'club', true)", [str(key)])
    conn.commit()
    (policy,) = gdpr.subject_data(conn, customer_id=str(key)).tables["gdpr.policy"]
    assert policy["code"] == "club" and policy["held"] is True
    assert policy["held_until"] is not None


def test_an_export_needing_a_table_the_owner_cannot_read_is_refused_naming_it(
    shop: ShopSchema, conn: psycopg.Connection[Any], dsn: str
) -> None:
    stage(conn, [upserted("TX00000721", 1)])
    key = shop.key_of(conn, "TX00000721")
    assert key is not None
    conn.execute(LINES_DDL[shop.name])
    conn.execute(f"REVOKE SELECT ON {SHIPMENT[shop.name]} FROM syncctl_owner")
    conn.commit()
    refused = subprocess.run(
        [sys.executable, "-m", "syncctl", "--dsn", dsn, "export", "TX00000721"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and refused.stdout == ""
    assert "shipment" in refused.stderr and "42501" in refused.stderr
    # coverage (and the mapping check) says so beforehand, with the GRANT to run
    defects = conn.execute(
        "SELECT table_name, defect FROM sync.coverage_defects() WHERE kind = 'privilege'"
    ).fetchall()
    conn.commit()
    assert [d for d in defects if "shipment" in d[0]] == [
        (
            SHIPMENT[shop.name],
            f"the owner role syncctl_owner lacks SELECT on the table (it references "
            f"{ORDERS[shop.name]}: the subject access export reads it): "
            f"GRANT SELECT ON TABLE {SHIPMENT[shop.name]} TO syncctl_owner;",
        )
    ], defects
