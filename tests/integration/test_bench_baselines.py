"""The benchmark compares like with like: on each test schema (bench.shops), its bare set-based
upsert and its per-event client leave the shop's tables holding what the engine's feed leaves
there for the same events (new customers, then half updates and half new), so a ratio between
them measures the engine's guarantees, not different work."""

from __future__ import annotations

from typing import Any, LiteralString

import psycopg
import pytest

from bench import apply, inbox_copy
from bench.dataset import build
from bench.shops import SHOPS, Shop
from bench.statements import statements

# what the shop's tables hold of each customer, in tritonX number order; and how to empty them
_ROWS: dict[str, tuple[LiteralString, LiteralString]] = {
    "reference": (
        "SELECT customer_number, email, first_name, infix, last_name, gender, birth_date, phone,"
        " mobile, street, house_number, house_number_addition, postcode, city, country_code,"
        " loyalty_card, home_store, customer_group, newsletter_opt_in, blocked"
        " FROM shop.customer ORDER BY customer_number",
        "DELETE FROM shop.customer",
    ),
    "boutique": (
        "SELECT c.tx_ref, c.full_name, c.email, c.sex, c.birthday, c.phone, c.is_blocked,"
        " c.newsletter, c.segment, c.shop_id, a.street, a.zip, a.city, a.country, a.created_by"
        ' FROM crm.customer c JOIN crm."CustomerAddress" a ON a.id = c.address_id'
        " ORDER BY c.tx_ref",
        'DELETE FROM crm.customer; DELETE FROM crm."CustomerAddress"',
    ),
}
EVENTS = 40


def _rows_then_empty(conn: psycopg.Connection[Any], shop: Shop) -> list[tuple[Any, ...]]:
    select, truncate = _ROWS[shop.name]
    rows = conn.execute(select).fetchall()
    conn.execute(truncate)
    conn.commit()
    return rows


@pytest.mark.parametrize("shop", SHOPS.values(), ids=list(SHOPS))
def test_the_baselines_write_what_the_feed_writes(dsn: str, shop: Shop) -> None:
    shop.install(dsn)
    data = build(EVENTS)
    with psycopg.connect(dsn) as conn:
        inbox_copy.prepare(conn)
        conn.execute(statements()["staging_create"])
        conn.commit()
        for run, first in ((data.inserts, 1), (data.mixed, EVENTS + 1)):
            apply._bare_upsert_pages(conn, shop, run, first, 25, with_copy=True)
        bare = _rows_then_empty(conn, shop)
        for run in (data.inserts, data.mixed):
            apply._client_apply(dsn, shop, run.records(0, EVENTS))
        client = _rows_then_empty(conn, shop)
        outcomes = [apply.stage_pages(conn, run, 25).outcomes for run in (data.inserts, data.mixed)]
        subject = _rows_then_empty(conn, shop)
    assert [o["applied"] for o in outcomes] == [EVENTS, EVENTS]
    assert len(subject) == EVENTS + EVENTS // 2
    assert bare == subject
    assert client == subject
