"""The subject access export reads a partitioned table one foreign key further from a linked
table through its parent, also when the foreign key is declared on each partition and not on
the parent (pagila's payment partitions refer to rental so, as its dump writes them): each row
once, under the parent's name, with the one grant on the parent the privileges ask for."""

from __future__ import annotations

from typing import Any

import psycopg

from syncctl import gdpr
from tests.feed import stage, upserted


def test_partitions_with_their_own_foreign_key_are_read_through_the_parent(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        "CREATE TABLE public.shipment (id int, region text, order_id bigint)"
        " PARTITION BY LIST (region)"
    )
    for region in ("north", "south"):
        conn.execute(
            f"CREATE TABLE public.shipment_{region} PARTITION OF public.shipment"
            f" FOR VALUES IN ('{region}')"
        )
        conn.execute(
            f"ALTER TABLE public.shipment_{region}"
            " ADD FOREIGN KEY (order_id) REFERENCES shop.orders (id)"
        )
    conn.execute("GRANT SELECT ON public.shipment TO syncctl_owner")
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)])
    ours = gdpr.resolve_subject(conn, number="TX00000001")[0]
    theirs = gdpr.resolve_subject(conn, number="TX00000002")[0]
    for customer, number in ((ours, "O-1"), (theirs, "O-2")):
        conn.execute(
            "WITH o AS (INSERT INTO shop.orders (customer_id, order_number) VALUES (%s, %s)"
            " RETURNING id)"
            " INSERT INTO public.shipment SELECT s.id, s.region, o.id FROM o,"
            " (VALUES (1, 'north'), (2, 'south')) AS s (id, region)",
            [customer, number],
        )
    conn.commit()

    data = gdpr.subject_data(conn, customer_id=ours)

    shipments = data.tables.get("public.shipment", [])
    assert sorted(row["region"] for row in shipments) == ["north", "south"]
    assert {row["order_id"] for row in shipments} == {data.tables["shop.orders"][0]["id"]}
    assert not [name for name in data.tables if name.startswith("public.shipment_")]
