"""The ShopSchema protocol on the reference shop, which today's engine applies to: the helpers
write the reference tables, and the model of its mapping agrees with what the engine writes."""

from __future__ import annotations

import tomllib
from typing import Any

import psycopg

from tests.feed import stage, upserted
from tests.shops import SHOPS, ReferenceShop

REFERENCE = ReferenceShop()


def test_both_schemas_answer_the_protocol() -> None:
    assert [shop.name for shop in SHOPS] == ["reference", "boutique"]
    assert [shop.customer_table for shop in SHOPS] == ['"shop"."customer"', '"crm"."customer"']


def test_the_reference_helpers_write_the_reference_tables(conn: psycopg.Connection[Any]) -> None:
    stage(conn, [upserted("TX00000001", 1)])
    key = REFERENCE.key_of(conn, "TX00000001")
    assert isinstance(key, int)
    order = REFERENCE.place_order(conn, key)
    REFERENCE.add_favourite(conn, key, "SKU-1")
    assert conn.execute(
        "SELECT (SELECT customer_id FROM shop.orders WHERE id = %s),"
        " (SELECT customer_id FROM shop.favourite WHERE sku = 'SKU-1')",
        [order],
    ).fetchone() == (key, key)
    assert REFERENCE.key_of(conn, "TX00000002") is None


def test_the_reference_model_is_what_the_engine_writes(conn: psycopg.Connection[Any]) -> None:
    fields: dict[str, Any] = {"infix": "", "newsletter_opt_in": None, "blocked": None}
    stage(conn, [upserted("TX00000003", 1, **fields)])
    person = upserted("TX00000003", 1, **fields)["customer"]
    assert REFERENCE.read_row(conn, "TX00000003") == REFERENCE.expected_row(person)


def test_the_installed_reference_mapping_is_the_shipped_file(conn: psycopg.Connection[Any]) -> None:
    """The reference shop (syncctl.reference_shop) is bound by syncctl/mappings/reference.toml."""
    with REFERENCE.mapping_path.open("rb") as handle:
        shipped = tomllib.load(handle)
    active = conn.execute("SELECT document FROM sync.mapping_version WHERE active").fetchone()
    assert active == (shipped,)
