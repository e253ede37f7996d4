"""Rows an erased customer's own rows reach (an older delivery address), on linked tables of
other shapes: a table with two customer columns (a gift's buyer and recipient: the row is the
customer's own only when every customer it names is this one), a table linked by a declared
`[[reference]]` (no foreign key to the customer), a partitioned table. For each, the plan
counts what the run changes, per table, and a merge keeps the rows it moves pointing where they
did."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from syncctl import mapping
from tests.feed import event, stage
from tests.integration import test_dry_runs_shared_rows as pagila
from tests.integration.test_dry_runs_shared_rows import _changed
from tests.integration.test_dry_runs_shared_rows import _tables as _pagila_tables
from tests.integration.test_erasure_own_rows import (  # noqa: F401 (a fixture)
    SCRUBBED,
    WAYS,
    _address,
    _customer,
    _feed,
    _moved,
    _person,
    _rent,
    deliveries,
)
from tests.integration.test_erasure_reach_orders import removal_and_anonymisation
from tests.integration.test_erasure_sets import _apply_both_ways_on, clones  # noqa: F401

SHAPES = """
CREATE TABLE public.gift (
    gift_id serial PRIMARY KEY, buyer_id integer REFERENCES public.customer,
    recipient_id integer REFERENCES public.customer,
    address_id integer REFERENCES public.address);
CREATE INDEX ON public.gift (buyer_id);
CREATE INDEX ON public.gift (recipient_id);
CREATE INDEX ON public.gift (address_id);
CREATE TABLE public.note (
    note_id serial PRIMARY KEY, customer_ref integer NOT NULL,
    address_id integer REFERENCES public.address);
CREATE INDEX ON public.note (customer_ref);
CREATE TABLE public.parcel (
    parcel_id serial, sent date NOT NULL DEFAULT CURRENT_DATE,
    customer_id integer NOT NULL REFERENCES public.customer,
    address_id integer REFERENCES public.address,
    PRIMARY KEY (parcel_id, sent)) PARTITION BY RANGE (sent);
CREATE TABLE public.parcel_all PARTITION OF public.parcel FOR VALUES FROM (MINVALUE) TO (MAXVALUE);
CREATE INDEX ON public.parcel (customer_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON public.gift, public.note, public.parcel TO syncctl_owner;
"""

TABLES = {
    "gift": ("buyer_id", "address_id"),
    "note": ("customer_ref", "address_id"),
    "parcel": ("customer_id", "address_id"),
}


@pytest.fixture
def shapes(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    conn.execute(pagila.SCHEMA)
    conn.execute(SHAPES)
    conn.execute("SET ROLE syncctl_owner")
    document = mapping.parse(
        pagila.MAPPING.replace(
            "[not_stored]",
            '[[reference]]\nschema = "public"\ntable = "note"\ncolumn = "customer_ref"\n\n'
            "[not_stored]",
        ),
        "shapes.toml",
    ).document
    conn.execute("SELECT sync.install_mapping(%s, 'shapes.toml')", [Jsonb(document)])
    pii = {
        **pagila.PII,
        "gift": dict.fromkeys(
            ["gift_id", "buyer_id", "recipient_id", "address_id"], "not_personal"
        ),
        "note": dict.fromkeys(["note_id", "customer_ref", "address_id"], "not_personal"),
        "parcel": dict.fromkeys(["parcel_id", "sent", "customer_id", "address_id"], "not_personal"),
    }
    pagila.classify(conn, pii)
    yield conn


def _tables(conn: psycopg.Connection[Any]) -> dict[str, dict[Any, tuple[Any, ...]]]:
    return {
        f"public.{t}": {r[0]: r for r in conn.execute(f"SELECT * FROM public.{t}").fetchall()}
        for t in ("address", "customer", "gift", "note", "parcel", "wishlist")
    }


def _row(
    conn: psycopg.Connection[Any],
    table: str,
    key: int,
    address_id: int,
    recipient: int | None = None,
) -> None:
    if table == "gift":
        conn.execute(
            "INSERT INTO public.gift (buyer_id, recipient_id, address_id) VALUES (%s, %s, %s)",
            [key, recipient, address_id],
        )
    else:
        column, _ = TABLES[table]
        conn.execute(
            f"INSERT INTO public.{table} ({column}, address_id) VALUES (%s, %s)",
            [key, address_id],
        )


@pytest.mark.parametrize("table", sorted(TABLES))
def test_an_older_address_only_the_customers_rows_use_is_scrubbed_as_planned(
    shapes: psycopg.Connection[Any], table: str
) -> None:
    conn = shapes
    number = "TX00000301"
    stage(conn, [_person(number)])
    key, home = _customer(conn, number)
    _row(conn, table, key, home)
    if table == "gift":  # to itself
        conn.execute("UPDATE public.gift SET recipient_id = buyer_id")
    conn.commit()
    older = _moved(conn, number)
    planned = {
        t: n
        for t, _, n in conn.execute("SELECT * FROM sync.anonymise_plan(%s)", [number]).fetchall()
    }
    conn.commit()
    before = _tables(conn)

    stage(conn, [event("customer.anonymized", number, 3, reason_code="AVG")])

    assert _address(conn, older) == SCRUBBED
    changed = {t: sum(c.values()) for t, c in _changed(before, _tables(conn)).items()}
    counts = conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'customer.anonymized'"
    ).fetchone()
    assert counts is not None
    public = {t: n for t, n in counts[0].items() if t.startswith("public.")}
    assert public == {t: n for t, n in planned.items() if t.startswith("public.")}
    assert public == changed
    assert public["public.address"] == 2


@pytest.fixture
def boutique(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The boutique shop (uuid keys, orders partitioned by month, reviews linked by a declared
    reference and deleted by an anonymisation) where an order names the address it ships to
    and a review the address it was written from."""
    from tests.shops import SHOPS
    from tests.shops.binding import bind_boutique

    shop = next(s for s in SHOPS if s.name == "boutique")
    bind_boutique(conn, shop, classified=True)
    conn.execute(
        'ALTER TABLE sales.orders ADD COLUMN ship_to bigint REFERENCES crm."CustomerAddress";'
        'ALTER TABLE sales."Review" ADD COLUMN written_at_address bigint'
        ' REFERENCES crm."CustomerAddress";'
        "CREATE INDEX ON sales.orders (ship_to);"
        'CREATE INDEX ON sales."Review" (written_at_address)'
    )
    conn.execute("SET ROLE syncctl_owner")
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
        " VALUES ('sales', 'orders', 'ship_to', 'not_personal'),"
        " ('sales', 'Review', 'written_at_address', 'not_personal')"
    )
    conn.execute("RESET ROLE")
    conn.commit()
    yield conn


def _boutique_customer(conn: psycopg.Connection[Any], number: str) -> tuple[str, int]:
    row = conn.execute(
        "SELECT customer_uuid::text, address_id FROM crm.customer WHERE tx_ref = %s", [number]
    ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def _boutique_move(conn: psycopg.Connection[Any], key: str) -> None:
    conn.execute(
        'WITH a AS (INSERT INTO crm."CustomerAddress" (street, zip, created_by)'
        " VALUES (%s, '1000 AA', 'shop') RETURNING id)"
        " UPDATE crm.customer SET address_id = (SELECT id FROM a) WHERE customer_uuid = %s",
        [f"S{secrets.token_hex(5)}", key],
    )


@pytest.mark.parametrize("order", ["reviewer first", "buyer first"])
def test_boutique_an_older_address_a_removed_reviewer_used_gives_what_one_by_one_gives(
    boutique: psycopg.Connection[Any],
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],  # noqa: F811
    order: str,
) -> None:
    conn = boutique
    numbers = ["TX00000311", "TX00000312"]
    stage(conn, [_person(n) for n in numbers])
    (buyer, home), (reviewer, _) = (_boutique_customer(conn, n) for n in numbers)
    conn.execute(
        "INSERT INTO sales.orders (customer_uuid, order_number, placed_at, ship_to)"
        " VALUES (%s, 'o-1', '2026-05-01', %s)",
        [buyer, home],
    )
    _boutique_move(conn, buyer)
    conn.execute(
        'INSERT INTO sales."Review" (customer_ref, sku, rating, written_at_address)'
        " VALUES (%s, 'sku-1', 5, %s)",
        [reviewer, home],
    )
    conn.commit()
    plan = {
        t: n
        for t, _, n in conn.execute(
            "SELECT * FROM sync.anonymise_plan(%s)", [numbers[0]]
        ).fetchall()
    }
    assert plan["crm.CustomerAddress"] == 1  # its own; the older one a review uses too
    page = removal_and_anonymisation(numbers[1], (numbers[0], 2), order == "reviewer first")

    together, states = _apply_both_ways_on(clones, page)

    assert states == {"applied": 2}
    street = together.execute(
        'SELECT street FROM crm."CustomerAddress" WHERE id = %s', [home]
    ).fetchone()
    # the last of the two to go scrubs it: the buyer's kept orders are an erased customer's
    assert street == (None,)


def test_an_address_a_gift_to_another_customer_was_delivered_to_is_scrubbed_by_the_second(
    shapes: psycopg.Connection[Any],
) -> None:
    """A gift names its buyer and its recipient: the row is neither's alone, so the address
    it was delivered to (the recipient's older one) is not reached by the first one's
    anonymisation; the second finds the gift naming only itself and an erased customer and
    scrubs it (docs/merge-and-anonymise.md). Each plan counts what its run changes."""
    conn = shapes
    numbers = ["TX00000321", "TX00000322"]
    stage(conn, [_person(n) for n in numbers])
    (buyer, _), (recipient, home) = (_customer(conn, n) for n in numbers)
    _row(conn, "gift", buyer, home, recipient=recipient)
    conn.commit()
    older = _moved(conn, numbers[1])
    before = _address(conn, older)
    for i, number in enumerate(numbers):
        plan = {
            t: n
            for t, _, n in conn.execute(
                "SELECT * FROM sync.anonymise_plan(%s)", [number]
            ).fetchall()
        }
        assert plan["public.address"] == 1 + i
        conn.commit()
        stage(conn, [event("customer.anonymized", number, 3, reason_code="AVG")])

    assert before != SCRUBBED
    assert _address(conn, older) == SCRUBBED
    counts = conn.execute(
        "SELECT (counts ->> 'public.address')::integer FROM sync.audit"
        " WHERE action = 'customer.anonymized' ORDER BY id"
    ).fetchall()
    assert counts == [(1,), (2,)]


LABELS = {
    # a composite foreign key that includes the address's key
    "composite": (
        "ALTER TABLE public.address ADD UNIQUE (address_id, postal_code);"
        "CREATE TABLE public.label (label_id serial PRIMARY KEY, address_id integer,"
        " postal_code text, FOREIGN KEY (address_id, postal_code)"
        " REFERENCES public.address (address_id, postal_code));"
        "GRANT SELECT ON public.label TO syncctl_owner",
        "INSERT INTO public.label (address_id, postal_code)"
        " SELECT address_id, postal_code FROM public.address WHERE address_id = %s",
    ),
    # a foreign key to a UNIQUE column that is not the key
    "unique column": (
        "ALTER TABLE public.address ADD COLUMN code uuid UNIQUE DEFAULT gen_random_uuid();"
        "CREATE TABLE public.label (label_id serial PRIMARY KEY,"
        " code uuid REFERENCES public.address (code));"
        "GRANT SELECT ON public.label TO syncctl_owner",
        "INSERT INTO public.label (code) SELECT code FROM public.address WHERE address_id = %s",
    ),
}


@pytest.mark.parametrize("label", sorted(LABELS))
@pytest.mark.parametrize("reached", [False, True], ids=["its address", "an older address"])
def test_an_address_a_table_of_the_shop_refers_to_by_another_foreign_key_is_left(
    shapes: psycopg.Connection[Any], label: str, reached: bool
) -> None:
    """A shop table (a label printed for the address) refers to the customer's address by a
    composite foreign key, or by one to another UNIQUE column: the row is not the customer's
    alone. An anonymisation gives the customer a scrubbed copy (or leaves an older address its
    parcels were sent to), a removal leaves it; nothing fails, the plan counts what the run
    does. Before, a composite key was not seen: the row was scrubbed or deleted, the shop's
    foreign key refused, and the event became a dead letter."""
    conn = shapes
    ddl, insert = LABELS[label]
    conn.execute(ddl)
    if label == "unique column":
        conn.execute("SET ROLE syncctl_owner")
        conn.execute(
            "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
            " VALUES ('public', 'address', 'code', 'not_personal')"
        )
        conn.execute("RESET ROLE")
    conn.commit()
    numbers = ["TX00000331", "TX00000332"]  # anonymised (a parcel), removed (none)
    stage(conn, [_person(n) for n in numbers])
    addresses = []
    for number in numbers:
        key, home = _customer(conn, number)
        conn.execute(insert, [home])
        if number == numbers[0]:
            _row(conn, "parcel", key, home)
        else:
            _row(conn, "note", key, home)
        if reached:  # moved: its parcel or note keeps the address
            conn.execute(
                "WITH a AS (INSERT INTO public.address (address, phone) VALUES ('', '')"
                " RETURNING address_id)"
                " UPDATE public.customer SET address_id = (SELECT address_id FROM a)"
                " WHERE customer_id = %s",
                [key],
            )
        addresses.append(home)
    conn.commit()
    plans = [
        {
            t: n
            for t, _, n in conn.execute(f"SELECT * FROM sync.{kind}_plan(%s)", [n]).fetchall()
            if t.startswith("public.")
        }
        for kind, n in zip(("anonymise", "delete"), numbers, strict=True)
    ]
    conn.commit()
    before = [_address(conn, a) for a in addresses]

    stage(
        conn,
        [
            event("customer.anonymized", numbers[0], 3, reason_code="AVG"),
            event("customer.deleted", numbers[1], 3),
        ],
    )

    assert conn.execute("SELECT reason FROM sync.dead_letter").fetchall() == []
    assert [_address(conn, a) for a in addresses] == before
    counts = conn.execute(
        "SELECT counts FROM sync.audit WHERE action IN ('customer.anonymized',"
        " 'customer.deleted') ORDER BY id"
    ).fetchall()
    assert [{t: n for t, n in c.items() if t.startswith("public.")} for (c,) in counts] == plans


@WAYS
def test_an_address_book_row_the_customers_orders_reach_is_counted_once(
    deliveries: psycopg.Connection[Any],  # noqa: F811
    together: bool,
) -> None:
    """The address table is the customer's address book too (address.customer_id, a linked
    table) besides the row the customer points to: its rows are scrubbed as the customer's
    linked rows, the default address and an older one its rentals were delivered to among
    them; each row changes once and counts once."""
    conn = deliveries
    conn.execute("RESET ROLE")
    conn.execute(
        "ALTER TABLE public.address ADD COLUMN customer_id integer REFERENCES public.customer;"
        "CREATE INDEX ON public.address (customer_id)"
    )
    conn.execute("SET ROLE syncctl_owner")
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
        " VALUES ('public', 'address', 'customer_id', 'not_personal')"
    )
    conn.execute("RESET ROLE")
    conn.commit()
    number = "TX00000341"
    stage(conn, [_person(number)])
    key, home = _customer(conn, number)
    _rent(conn, key, home)
    conn.commit()
    older = _moved(conn, number)
    conn.execute(
        "UPDATE public.address SET customer_id = %s WHERE address_id IN (%s, %s)",
        [key, older, _customer(conn, number)[1]],
    )
    conn.commit()
    planned = {
        t: n
        for t, _, n in conn.execute("SELECT * FROM sync.anonymise_plan(%s)", [number]).fetchall()
        if t.startswith("public.")
    }
    conn.commit()
    before = _pagila_tables(conn)

    _feed(conn, together, [event("customer.anonymized", number, 3, reason_code="AVG")])

    assert _address(conn, older) == SCRUBBED
    changed = {t: sum(c.values()) for t, c in _changed(before, _pagila_tables(conn)).items()}
    counts = conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'customer.anonymized'"
    ).fetchone()
    assert counts is not None
    public = {t: n for t, n in counts[0].items() if t.startswith("public.")}
    assert (planned, public) == (changed, changed)
