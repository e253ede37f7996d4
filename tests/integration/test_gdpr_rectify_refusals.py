"""A refused rectification names the field it refused, never the value: a DBA correcting
several fields at once learns which one to fix. Every way the shop's table can refuse a value
is tried (a value of the wrong type, one too long for its column, a check constraint, a unique
index, a NOT NULL column, a shop trigger's RAISE that quotes the row) on both test schemas;
the error's message and DETAIL name the refused field and leave out the fields that were fine
and every value, and nothing is changed."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.feed import stage, upserted
from tests.shops import CustomerKey, ShopSchema

EXTRA: sql.SQL = sql.SQL(
    "ALTER TABLE {table}"
    " ADD COLUMN rectify_points integer,"
    " ADD COLUMN rectify_code varchar(8),"
    " ADD COLUMN rectify_rank integer CHECK (rectify_rank > 0),"
    " ADD COLUMN rectify_badge text UNIQUE,"
    " ADD COLUMN rectify_since date NOT NULL DEFAULT DATE '2020-01-01',"
    " ADD COLUMN rectify_note text"
)
TRIGGER: sql.SQL = sql.SQL(
    "CREATE FUNCTION public.rectify_note_guard() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN IF NEW.rectify_note LIKE 'forbidden%' THEN"
    " RAISE EXCEPTION 'note % refused', NEW.rectify_note; END IF; RETURN NEW; END $f$;"
    " CREATE TRIGGER rectify_note_guard BEFORE UPDATE ON {table}"
    " FOR EACH ROW EXECUTE FUNCTION public.rectify_note_guard()"
)


@pytest.fixture
def customers(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> Iterator[tuple[CustomerKey, CustomerKey]]:
    """Two customers tritonX created, in a customer table with six more columns of the shop's."""
    table = sql.SQL(shop.customer_table)
    conn.execute(EXTRA.format(table=table))
    conn.execute(TRIGGER.format(table=table))
    stage(conn, [upserted("TX00000401", 1), upserted("TX00000402", 1)])
    first, second = shop.key_of(conn, "TX00000401"), shop.key_of(conn, "TX00000402")
    assert first is not None and second is not None
    conn.commit()
    yield first, second


def _secret(length: int = 12) -> str:
    return "v" + secrets.token_hex(length)[: length - 1]


def _refused(conn: psycopg.Connection[Any], key: CustomerKey, fields: dict[str, Any]) -> str:
    """The message and DETAIL of the refusal of `fields` (raw SQL: what a DBA sees)."""
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("SELECT gdpr.rectify(%s, %s, 'bo:test')", [str(key), Jsonb(fields)])
    conn.rollback()
    diag = refused.value.diag
    return f"{diag.message_primary} | {diag.message_detail or ''} | {diag.message_hint or ''}"


def _row(conn: psycopg.Connection[Any], shop: ShopSchema, key: CustomerKey) -> tuple[Any, ...]:
    query = sql.SQL(
        "SELECT {own}, rectify_points, rectify_code, rectify_rank, rectify_badge,"
        " rectify_since, rectify_note FROM {table} WHERE {key} = %s"
    ).format(
        own=sql.Identifier(shop.own_column),
        table=sql.SQL(shop.customer_table),
        key=sql.Identifier(shop.key_column),
    )
    row = conn.execute(query, [key]).fetchone()
    assert row is not None
    return tuple(row)


def test_a_refused_value_is_named_by_its_field_and_never_quoted(
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
    customers: tuple[CustomerKey, CustomerKey],
) -> None:
    key, other = customers
    badge = _secret()
    conn.execute(
        sql.SQL("UPDATE {} SET rectify_badge = %s WHERE {} = %s").format(
            sql.SQL(shop.customer_table), sql.Identifier(shop.key_column)
        ),
        [badge, other],
    )
    conn.commit()
    before = _row(conn, shop, key)
    rank = -(10**8 + secrets.randbelow(10**8))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"rectify_points": _secret()}, "rectify_points"),
        ({"rectify_code": _secret(30)}, "rectify_code"),
        ({"rectify_rank": rank}, "rectify_rank"),
        ({"rectify_badge": badge}, "rectify_badge"),
        ({"rectify_since": None}, "rectify_since"),
        ({"rectify_note": "forbidden " + _secret()}, "rectify_note"),
    ]
    for refused_fields, field in cases:
        fine = {shop.own_column: _secret(6), "rectify_points": 7}
        fields = {**fine, **refused_fields}
        message = _refused(conn, key, fields)
        assert field in message, (field, message)
        for value in fields.values():
            if value is not None and not isinstance(value, int):
                assert str(value) not in message, (field, message)
        assert str(rank) not in message and str(-rank) not in message
        # the fields that were fine are not named as refused (a shop trigger's refusal names
        # every field of the correction: which one it objected to is the trigger's secret)
        if field not in ("rectify_points", "rectify_note"):
            assert "rectify_points" not in message, message
        assert _row(conn, shop, key) == before


def test_every_misfit_of_one_rectification_is_named(
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
    customers: tuple[CustomerKey, CustomerKey],
) -> None:
    key, _ = customers
    points, code = _secret(), _secret(30)
    message = _refused(
        conn,
        key,
        {shop.own_column: "nl", "rectify_points": points, "rectify_code": code, "rectify_rank": 3},
    )
    assert "rectify_points" in message and "rectify_code" in message, message
    assert "rectify_rank" not in message and shop.own_column not in message, message
    assert points not in message and code not in message


def test_a_not_null_domain_on_another_column_does_not_refuse_a_correction(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """The check whether a value fits its column builds a row of the table holding only that
    value: a column of a NOT NULL domain elsewhere in the row (with a default, so the shop's
    rows are fine) must not refuse every correction, nor a domain CHECK of another column
    rejecting NULL."""
    table = sql.SQL(shop.customer_table)
    conn.execute(
        "CREATE DOMAIN public.tier_name AS text NOT NULL DEFAULT 'basic';"
        "CREATE DOMAIN public.region_code AS text DEFAULT 'nl' CHECK (VALUE IS NOT NULL)"
    )
    conn.execute(
        sql.SQL(
            "ALTER TABLE {} ADD COLUMN rectify_tier public.tier_name,"
            " ADD COLUMN rectify_region public.region_code"
        ).format(table)
    )
    stage(conn, [upserted("TX00000403", 1)])
    key = shop.key_of(conn, "TX00000403")
    assert key is not None
    conn.commit()
    value = _secret(6)
    conn.execute(
        "SELECT gdpr.rectify(%s, %s, 'bo:test')", [str(key), Jsonb({shop.own_column: value})]
    )
    conn.commit()
    assert shop.own_value(conn, key) == value
