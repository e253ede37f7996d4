"""`syncctl mapping check` warns of a customer-linked table that looks like what a shop must
keep (orders, invoices, payments: by its name, or by further rows that refer to it without
going along with it) while it is not declared `bookkeeping`: a tritonX delete of a customer
then removes its rows. A warning, never a refusal; one per table; gone once the table is
declared kept for bookkeeping, or declared `delete_rows` (its rows are meant to go). Tables
whose rows go with theirs (ON DELETE CASCADE: cart lines) give none. On both test schemas."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.shops import ShopSchema

TABLES: sql.SQL = sql.SQL(
    "CREATE TABLE public.invoice (id bigint PRIMARY KEY, customer_ref {type} REFERENCES {table});"
    "CREATE TABLE public.loyalty_card (id bigint PRIMARY KEY,"
    " holder {type} REFERENCES {table});"
    "CREATE TABLE public.loyalty_stamp (id bigint PRIMARY KEY,"
    " card_id bigint NOT NULL REFERENCES public.loyalty_card);"
    "CREATE TABLE public.basket (id bigint PRIMARY KEY, owner {type} REFERENCES {table});"
    "CREATE TABLE public.basket_line (id bigint PRIMARY KEY,"
    " basket_id bigint NOT NULL REFERENCES public.basket ON DELETE CASCADE);"
    "GRANT SELECT, UPDATE, DELETE ON public.invoice, public.loyalty_card, public.basket"
    " TO syncctl_owner;"
    "GRANT SELECT ON public.loyalty_stamp, public.basket_line TO syncctl_owner"
)


def _warnings(conn: psycopg.Connection[Any], shop: ShopSchema) -> list[tuple[str, str]]:
    """The check's bookkeeping warnings of the shop's mapping: (path, problem)."""
    rows = conn.execute(
        "SELECT path, problem FROM sync.mapping_defects(%s)"
        " WHERE problem LIKE 'warning: %% not kept for bookkeeping%%'",
        [Jsonb(shop.mapping)],
    ).fetchall()
    return [(str(path), str(problem)) for path, problem in rows]


def _refusals(conn: psycopg.Connection[Any], shop: ShopSchema) -> list[str]:
    rows = conn.execute(
        "SELECT problem FROM sync.mapping_defects(%s) WHERE problem NOT LIKE 'warning: %%'",
        [Jsonb(shop.mapping)],
    ).fetchall()
    return [str(problem) for (problem,) in rows]


def test_a_linked_table_the_shop_must_keep_is_warned_of_until_declared(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    # the shops' orders are declared bookkeeping: nothing to say
    assert _warnings(conn, shop) == []
    conn.execute(TABLES.format(type=sql.SQL(shop.key_type), table=sql.SQL(shop.customer_table)))
    conn.commit()
    warned = _warnings(conn, shop)
    assert [path for path, _ in warned] == ["customer.table", "customer.table"], warned
    invoice, card = (problem for _, problem in warned)
    assert invoice.startswith(
        "warning: public.invoice is linked to the customer and not kept for bookkeeping:"
        " a tritonX delete of a customer removes its rows (its name says orders, invoices or"
        " payments)"
    ), invoice
    assert card.startswith(
        "warning: public.loyalty_card is linked to the customer and not kept for bookkeeping:"
        " a tritonX delete of a customer removes its rows (public.loyalty_stamp refers to"
        " them)"
    ), card
    assert (
        "INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)"
        " VALUES ('public', 'invoice', 'scrub', true)"
    ) in invoice
    assert _refusals(conn, shop) == []

    # declared: kept for bookkeeping, or meant to go
    conn.execute(
        "INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)"
        " VALUES ('public', 'invoice', 'scrub', true),"
        " ('public', 'loyalty_card', 'delete_rows', false)"
    )
    conn.commit()
    assert _warnings(conn, shop) == []

    # the shop's orders no longer declared bookkeeping: warned of by their name
    orders = conn.execute(
        "SELECT n.nspname, c.relname, c.oid::regclass::text FROM pg_catalog.pg_class AS c"
        " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE c.oid = %s::regclass",
        [shop.order_table],
    ).fetchone()
    assert orders is not None
    schema, table, name = orders
    conn.execute(
        "UPDATE sync.anonymise_rule SET bookkeeping = false"
        " WHERE table_schema = %s AND table_name = %s",
        [schema, table],
    )
    conn.commit()
    warned = _warnings(conn, shop)
    assert len(warned) == 1, warned
    assert warned[0][1].startswith(f"warning: {name} is linked to the customer"), warned
