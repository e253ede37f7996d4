"""The second test schema, "boutique" (tests/shops/boutique.sql): its DDL is re-runnable, has the
features that make it differ from the reference shop on purpose, and the ShopSchema helpers write
rows that read back as the mapping's model says; the population helper fills it the way a shop
looks before syncctl."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest

from syncctl.simulator.population import customer_number
from syncctl.simulator.population import snapshot as simulated
from tests.feed import snapshot, stage, upserted
from tests.shops import Boutique
from tests.shops.populate import populate_boutique

SHOP = Boutique()
TABLES = {
    "crm.customer",
    'crm."CustomerAddress"',
    "crm.favourite",
    "sales.orders",
    'sales."Review"',
}


@pytest.fixture
def boutique(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    SHOP.install(conn)
    conn.commit()
    yield conn


def _tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname IN ('crm', 'sales') AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
    )
    return {name for (name,) in rows}


def test_the_ddl_runs_twice_on_a_database_without_syncctl(
    fresh_database: Callable[[str], str],
) -> None:
    with psycopg.connect(fresh_database("boutique_ddl")) as conn:
        SHOP.install(conn)
        conn.commit()
        key = SHOP.add_customer(conn, snapshot("TX00000001"))
        SHOP.place_order(conn, key)
        conn.commit()
        SHOP.install(conn)
        conn.commit()
        assert _tables(conn) == TABLES
        assert SHOP.key_of(conn, "TX00000001") == key
        assert conn.execute("SELECT count(*) FROM sales.orders").fetchone() == (1,)


def test_orders_are_partitioned_by_month_with_a_default_partition(
    boutique: psycopg.Connection[Any],
) -> None:
    partitions = [
        name
        for (name,) in boutique.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits"
            " WHERE inhparent = 'sales.orders'::regclass ORDER BY 1"
        )
    ]
    assert partitions == [f"sales.orders_2026_{m:02d}" for m in range(1, 13)] + [
        "sales.orders_default"
    ]
    key = SHOP.add_customer(boutique, snapshot("TX00000002"))
    landed = {}
    for at in ("2026-01-01T00:00:00+00:00", "2026-12-31T23:59:59+00:00", "2027-01-01T00:00Z"):
        order = SHOP.place_order(boutique, key, datetime.fromisoformat(at))
        row = boutique.execute(
            "SELECT tableoid::regclass::text FROM sales.orders WHERE id = %s", [order]
        ).fetchone()
        assert row is not None
        landed[at[:10]] = row[0]
    assert landed == {
        "2026-01-01": "sales.orders_2026_01",
        "2026-12-31": "sales.orders_2026_12",
        "2027-01-01": "sales.orders_default",
    }


def test_the_features_that_differ_from_the_reference_shop(
    boutique: psycopg.Connection[Any],
) -> None:
    assert boutique.execute(
        "SELECT to_regclass('crm.\"CustomerAddress\"') IS NOT NULL,"
        " to_regclass('crm.customeraddress') IS NULL"
    ).fetchone() == (True, True)
    # NOT NULL with no default: the key, and the shop's columns no tritonX field fills
    columns = dict(
        boutique.execute(
            "SELECT attname, (attnotnull, atthasdef, attidentity)::text FROM pg_attribute"
            " WHERE attrelid = 'crm.customer'::regclass AND attnum > 0 AND NOT attisdropped"
        ).fetchall()
    )
    for name in ("customer_uuid", "full_name", "segment", "shop_id"):
        assert columns[name] == '(t,f,"")', name
    assert columns["is_blocked"] == columns["newsletter"] == '(t,t,"")'
    # a customer reference without a foreign key, indexed
    assert boutique.execute(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'sales.\"Review\"'::regclass"
        " AND contype = 'f'"
    ).fetchone() == (0,)
    assert boutique.execute(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'sales.\"Review\"'::regclass"
        " AND indkey[0] = (SELECT attnum FROM pg_attribute"
        "  WHERE attrelid = 'sales.\"Review\"'::regclass AND attname = 'customer_ref')"
    ).fetchone() == (1,)
    # a view depends on the customer table
    assert boutique.execute(
        "SELECT EXISTS (SELECT FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid"
        " WHERE d.refobjid = 'crm.customer'::regclass"
        " AND r.ev_class = 'crm.customer_overview'::regclass)"
    ).fetchone() == (True,)


def test_every_foreign_key_has_an_index_leading_with_its_columns(
    boutique: psycopg.Connection[Any],
) -> None:
    foreign_keys = boutique.execute(
        "SELECT f.conrelid::regclass::text, f.conkey::text,"
        " EXISTS (SELECT FROM pg_index i WHERE i.indrelid = f.conrelid"
        "  AND (i.indkey::int2[])[0:cardinality(f.conkey) - 1] = f.conkey)"
        " FROM pg_constraint f JOIN pg_namespace n ON n.oid = f.connamespace"
        " WHERE f.contype = 'f' AND n.nspname IN ('crm', 'sales') AND f.conparentid = 0"
        " ORDER BY 1"
    ).fetchall()
    assert [(table, indexed) for table, _, indexed in foreign_keys] == [
        ("crm.customer", True),
        ("crm.favourite", True),
        ("sales.orders", True),
    ]


def test_the_models_column_lengths_are_the_catalogs(boutique: psycopg.Connection[Any]) -> None:
    lengths = dict(
        boutique.execute(
            "SELECT CASE table_name WHEN 'customer' THEN '' ELSE 'address.' END || column_name,"
            " character_maximum_length FROM information_schema.columns"
            " WHERE table_schema = 'crm' AND table_name IN ('customer', 'CustomerAddress')"
            " AND character_maximum_length IS NOT NULL"
        ).fetchall()
    )
    assert lengths == SHOP.column_lengths


def test_a_customer_added_through_the_helpers_reads_back_as_the_model_says(
    boutique: psycopg.Connection[Any],
) -> None:
    person = snapshot("TX00000003", infix=None, gender="X", newsletter_opt_in=None)
    key = SHOP.add_customer(boutique, person)
    SHOP.add_favourite(boutique, key, "SKU-1")
    SHOP.place_order(boutique, key)
    boutique.commit()
    assert SHOP.key_of(boutique, "TX00000003") == key
    assert SHOP.read_row(boutique, "TX00000003") == SHOP.expected_row(person)
    # the shop's trigger stamps every update
    boutique.execute("UPDATE crm.customer SET notes = 'x' WHERE customer_uuid = %s", [key])
    row = boutique.execute(
        "SELECT modified_at IS NOT NULL, full_name FROM crm.customer_overview"
        " WHERE customer_uuid = %s",
        [key],
    ).fetchone()
    assert row == (True, "Anna Berg")


def test_a_local_customer_has_no_number_and_keeps_the_shops_values(
    boutique: psycopg.Connection[Any],
) -> None:
    key = SHOP.add_customer(
        boutique, snapshot("TX00000004"), linked=False, shop_values={"segment": "staff"}
    )
    assert SHOP.key_of(boutique, "TX00000004") is None
    with pytest.raises(LookupError):
        SHOP.read_row(boutique, "TX00000004")
    assert boutique.execute(
        "SELECT tx_ref, segment, shop_id FROM crm.customer WHERE customer_uuid = %s", [key]
    ).fetchone() == (None, "staff", 1)


def test_the_population_looks_like_a_shop_before_syncctl(
    boutique: psycopg.Connection[Any],
) -> None:
    made = populate_boutique(boutique, 400, seed=3, local_every=20)
    boutique.commit()
    assert len(made.keys) == 400 and len(made.local) == 20
    assert boutique.execute(
        "SELECT count(*), count(tx_ref), count(DISTINCT address_id) FROM crm.customer"
    ).fetchone() == (400, 380, 400)
    # linked customers hold what the mapping gives, except the shop's own create columns
    for i in (1, 2, 3, 19, 21, 399):
        number = customer_number(i)
        row = SHOP.read_row(boutique, number)
        expected = SHOP.expected_row(simulated(3, i))
        for column in SHOP.created_columns:
            row.pop(column)
            expected.pop(column)
        assert row == expected
        assert SHOP.key_of(boutique, number) == made.keys[number]
    assert SHOP.key_of(boutique, customer_number(20)) is None
    partitions = boutique.execute(
        "SELECT count(DISTINCT tableoid), count(*) FROM sales.orders"
    ).fetchone()
    assert partitions == (13, made.orders) and made.orders > 0
    assert boutique.execute("SELECT count(*) FROM crm.favourite").fetchone() == (made.favourites,)
    assert boutique.execute(
        'SELECT count(*) FROM sales."Review" r JOIN crm.customer c'
        " ON c.customer_uuid = r.customer_ref"
    ).fetchone() == (made.reviews,)


def test_a_snapshot_applied_through_the_feed_gives_the_models_row(
    boutique: psycopg.Connection[Any],
) -> None:
    boutique.execute("GRANT USAGE ON SCHEMA crm, sales TO syncctl_owner")
    boutique.execute(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA crm, sales TO syncctl_owner"
    )
    # the check names the one grant still missing: the address key's own sequence
    defects = boutique.execute(
        "SELECT path, problem FROM sync.mapping_defects(%s::jsonb)"
        " WHERE problem NOT LIKE 'warning: %%'",
        [json.dumps(SHOP.mapping)],
    ).fetchall()
    assert defects == [
        (
            "related[0].key_generate",
            'syncctl_owner lacks USAGE: GRANT USAGE ON SEQUENCE crm."CustomerAddress_id_seq"'
            " TO syncctl_owner;",
        )
    ]
    boutique.execute('GRANT USAGE ON SEQUENCE crm."CustomerAddress_id_seq" TO syncctl_owner')
    boutique.execute("SET ROLE syncctl_owner")
    boutique.execute(
        "SELECT sync.install_mapping(%s::jsonb, %s)",
        [json.dumps(SHOP.mapping), "tests/shops/boutique.toml"],
    )
    boutique.execute("RESET ROLE")
    boutique.commit()
    person = snapshot("TX00000005", infix="", gender=None, blocked=None)
    stage(boutique, [upserted("TX00000005", 1, **person)])
    assert SHOP.read_row(boutique, "TX00000005") == SHOP.expected_row(person)
