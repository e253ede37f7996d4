"""A shop's unique index on the e-mail (as many shops have) must not keep its existing customers
from being adopted: tritonX's new customer with the e-mail of one unlinked local customer cannot
be written next to it, so that customer is adopted on arrival (its key kept), by the feed and by
a dead letter's retry, on both test schemas."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from tests.feed import snapshot, stage, upserted
from tests.shops import ShopSchema


def _unique_email(conn: psycopg.Connection[Any], shop: ShopSchema) -> None:
    table, column = shop.column_of("email")
    conn.execute(
        sql.SQL("CREATE UNIQUE INDEX shop_email_unique ON {} (lower({}))").format(table, column)
    )
    conn.commit()


def _dead_letters(conn: psycopg.Connection[Any]) -> list[str]:
    return [r for (r,) in conn.execute("SELECT reason FROM sync.dead_letter ORDER BY inbox_id")]


def test_the_one_local_customer_with_tritonxs_email_is_adopted_on_arrival(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    _unique_email(conn, shop)
    local = shop.add_customer(
        conn, snapshot("TX00000501", email="Anna.Local@Example.NL"), linked=False,
        shop_values={shop.own_column: "kept"},
    )  # fmt: skip
    shop.place_order(conn, local)
    conn.commit()
    outcome = stage(conn, [upserted("TX00000501", 1, email="anna.local@example.nl")])
    assert outcome.states == {"applied": 1}
    assert _dead_letters(conn) == []
    assert shop.key_of(conn, "TX00000501") == local, "the shop's key was replaced"
    assert shop.own_value(conn, local) == "kept"
    assert shop.orders_of(conn, local) == 1
    assert shop.count_customers(conn) == 1
    assert shop.read_row(conn, "TX00000501") == shop.expected_row(
        snapshot("TX00000501", email="anna.local@example.nl")
    )
    audit = conn.execute(
        "SELECT action, outcome, customer_number FROM sync.audit ORDER BY id"
    ).fetchall()
    assert ("customer.adopted", "applied", "TX00000501") in audit
    assert ("customer.upserted", "applied", "TX00000501") in audit
    # no personal value in the audit
    assert not conn.execute(
        "SELECT count(*) FROM sync.audit WHERE reason ILIKE '%example%'"
    ).fetchone()[0]  # type: ignore[index]
    # later snapshots apply to the adopted row
    stage(conn, [upserted("TX00000501", 2, email="anna.local@example.nl", city="Delft")])
    assert shop.read_row(conn, "TX00000501") == shop.expected_row(
        snapshot("TX00000501", email="anna.local@example.nl", city="Delft")
    )


def test_no_adoption_when_the_email_names_a_linked_customer_too(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    # the index is on the exact e-mail: rows may differ in case only
    table, column = shop.column_of("email")
    conn.execute(sql.SQL("CREATE UNIQUE INDEX shop_email_unique ON {} ({})").format(table, column))
    conn.commit()
    stage(conn, [upserted("TX00000601", 1, email="shared@example.nl")])
    shop.add_customer(conn, snapshot("TX00000602", email="SHARED@example.nl"), linked=False)
    conn.commit()
    # tritonX sends a second customer with the linked one's e-mail: who is it? nobody adopts
    stage(conn, [upserted("TX00000602", 1, email="shared@example.nl")])
    reasons = _dead_letters(conn)
    assert len(reasons) == 1 and "23505" in reasons[0]
    assert "example" not in reasons[0]
    assert shop.key_of(conn, "TX00000602") is None
    assert shop.count_customers(conn) == 2


def test_no_adoption_when_the_email_names_several_local_customers_till_the_shop_fixes_it(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    table, column = shop.column_of("email")
    conn.execute(sql.SQL("CREATE UNIQUE INDEX shop_email_unique ON {} ({})").format(table, column))
    conn.commit()
    first = shop.add_customer(conn, snapshot("TX00000700", email="A@example.nl"), linked=False)
    second = shop.add_customer(conn, snapshot("TX00000701", email="a@example.nl"), linked=False)
    conn.commit()
    stage(conn, [upserted("TX00000709", 1, email="a@example.nl")])
    assert len(_dead_letters(conn)) == 1
    assert shop.key_of(conn, "TX00000709") is None
    assert shop.count_customers(conn) == 2
    # the shop settles its duplicate (the first one's e-mail was a typo): the retry adopts
    conn.execute(
        sql.SQL("UPDATE {} SET {} = 'b@example.nl' WHERE {} = %s").format(
            table, column, sql.Identifier(shop.key_column)
        ),
        [first],
    )
    conn.commit()
    (inbox_id,) = conn.execute("SELECT inbox_id FROM sync.dead_letter").fetchone() or (None,)
    assert conn.execute("SELECT sync.retry_dead_letter(%s)", [inbox_id]).fetchone() == ("applied",)
    conn.commit()
    assert _dead_letters(conn) == []
    assert shop.key_of(conn, "TX00000709") == second
    assert shop.count_customers(conn) == 2


def test_a_customer_tritonx_gives_a_local_customers_email_is_absorbed_into_it(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    _unique_email(conn, shop)
    stage(conn, [upserted("TX00000801", 1, email="first@example.nl")])
    arrived = shop.key_of(conn, "TX00000801")
    shop.place_order(conn, arrived)  # type: ignore[arg-type]
    local = shop.add_customer(
        conn, snapshot("TX00000801", email="Kept@Example.nl"), linked=False,
        shop_values={shop.own_column: "kept"},
    )  # fmt: skip
    shop.place_order(conn, local)
    conn.commit()
    # tritonX now has the local customer's e-mail for TX00000801: that local customer is it
    outcome = stage(conn, [upserted("TX00000801", 2, email="kept@example.nl")])
    assert outcome.states == {"applied": 1}
    assert _dead_letters(conn) == []
    assert shop.key_of(conn, "TX00000801") == local
    assert shop.count_customers(conn) == 1
    assert shop.orders_of(conn, local) == 2, "the absorbed customer's order moved over"
    assert shop.own_value(conn, local) == "kept"
    assert shop.version_of(conn, "TX00000801") == 2
    assert shop.read_row(conn, "TX00000801") == shop.expected_row(
        snapshot("TX00000801", email="kept@example.nl")
    )
    assert conn.execute(
        "SELECT count(*) FROM sync.audit WHERE action = 'customer.adopted'"
    ).fetchone() == (1,)
