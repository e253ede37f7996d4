"""Rectification leaves alone what retention counts from: the customer columns the mapping's
[gdpr] table declares (created_column, last_activity_column, group_column) decide how long a
customer's data is kept and under which policy, so correcting one could keep a customer longer
than its policy allows. gdpr.rectify refuses them (SY085, naming the column and why, never the
value), for a customer linked to tritonX and for a local one alike, on both test schemas."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
import pytest
from psycopg import sql

from syncctl import errors, gdpr
from tests.feed import snapshot, stage, upserted
from tests.shops import CustomerKey, ShopSchema

FACTS = ("created_column", "last_activity_column", "group_column")


def _values(conn: psycopg.Connection[Any], shop: ShopSchema, key: CustomerKey) -> tuple[Any, ...]:
    """The customer's [gdpr] columns, as the database holds them."""
    columns = [shop.mapping["gdpr"][fact] for fact in FACTS]
    query = sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(shop.customer_table),
        sql.Identifier(shop.key_column),
    )
    row = conn.execute(query, [key]).fetchone()
    assert row is not None
    return tuple(row)


def test_the_columns_retention_counts_from_are_not_rectified(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000301", 1)])
    linked = shop.key_of(conn, "TX00000301")
    assert linked is not None
    local = shop.add_customer(conn, snapshot("TX00000302"), linked=False)
    conn.commit()
    group = "G" + secrets.token_hex(6)  # a group no policy names: found only if echoed
    later = {
        "created_column": "2099-12-31",
        "last_activity_column": "2099-12-31",
        "group_column": group,
    }
    for key in (linked, local):
        before = _values(conn, shop, key)
        for fact in FACTS:
            column = shop.mapping["gdpr"][fact]
            with pytest.raises(errors.GdprRefusal) as refused:
                gdpr.rectify(conn, str(key), {column: later[fact]}, actor="bo:test")
            message = str(refused.value)
            assert refused.value.sqlstate == "SY085"
            assert f"{column} (retention " in message and f"[gdpr] {fact}" in message, message
            assert "2099" not in message and group not in message
        # refused with a column the webshop may correct: nothing changes
        with pytest.raises(errors.GdprRefusal):
            gdpr.rectify(
                conn,
                str(key),
                {shop.own_column: "nl", shop.mapping["gdpr"]["created_column"]: "2099-12-31"},
                actor="bo:test",
            )
        assert _values(conn, shop, key) == before
        assert gdpr.rectify(conn, str(key), {shop.own_column: "nl"}, actor="bo:test") == [
            shop.own_column
        ]
    audit = conn.execute(
        "SELECT reason FROM sync.audit WHERE action = 'customer.rectified' ORDER BY id"
    ).fetchall()
    assert audit == [(f"fields: {shop.own_column}",)] * 2
