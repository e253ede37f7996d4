"""A populated boutique as it looks BEFORE syncctl: customers of the simulator's population (the
same people tritonX serves), each holding what the shop kept of them in its own representation
(the mapping's model), most with the tritonX number in tx_ref, some only local (tx_ref NULL),
with their address, orders spread over the monthly partitions and the default partition,
favourites and reviews. Set-based: one COPY into a staging table, then one INSERT ... SELECT per
table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg

from syncctl.simulator.population import customer_number, snapshot
from tests.shops import Boutique

_KEYS = uuid.UUID("6f1d3c1e-0b7a-4c55-9d1e-5b0e7a1c2d3f")
SEGMENTS = ("retail", "wholesale", "staff")

_STAGE: LiteralString = """
CREATE TEMPORARY TABLE boutique_population (
    n             integer PRIMARY KEY,
    customer_uuid uuid NOT NULL,
    address_id    bigint,
    tx_ref        text,
    full_name     text,
    email         text,
    sex           text,
    birthday      date,
    phone         text,
    is_blocked    smallint,
    newsletter    text,
    segment       text,
    shop_id       integer,
    street        text,
    zip           text,
    city          text,
    country       text
)
"""
_COLUMNS = (
    "tx_ref",
    "full_name",
    "email",
    "sex",
    "birthday",
    "phone",
    "is_blocked",
    "newsletter",
    "address.street",
    "address.zip",
    "address.city",
    "address.country",
)
_FILL: tuple[LiteralString, ...] = (
    # the address ids first: the customer rows point to them
    """
    UPDATE boutique_population
       SET address_id = nextval(pg_get_serial_sequence('crm."CustomerAddress"', 'id'))
    """,
    """
    INSERT INTO crm."CustomerAddress" (id, street, zip, city, country, created_by)
    OVERRIDING SYSTEM VALUE
    SELECT address_id, street, zip, city, country, 'webshop'
      FROM boutique_population ORDER BY n
    """,
    """
    INSERT INTO crm.customer (customer_uuid, tx_ref, full_name, email, sex, birthday, phone,
                              is_blocked, newsletter, segment, shop_id, address_id, notes,
                              created_at)
    SELECT customer_uuid, tx_ref, full_name, email, sex, birthday, phone, is_blocked,
           newsletter, segment, shop_id, address_id,
           CASE WHEN n % 50 = 0 THEN 'prefers pickup' END,
           timestamptz '2024-01-01 00:00+00' + make_interval(hours => n)
      FROM boutique_population ORDER BY n
    """,
    # 0 to 5 orders a customer, from December 2025 to January 2027: every monthly partition of
    # 2026 and the default partition get rows
    """
    INSERT INTO sales.orders (customer_uuid, order_number, placed_at, status, total_amount)
    SELECT p.customer_uuid, 'BQ-' || p.n || '-' || g,
           timestamptz '2025-12-01 00:00+00'
               + make_interval(months => (p.n * 5 + g * 3) % 14, days => (p.n + g) % 28,
                               hours => g),
           CASE WHEN g = 1 THEN 'delivered' ELSE 'placed' END,
           ((p.n * 37 + g * 11) % 50000) / 100.0
      FROM boutique_population p, generate_series(1, p.n % 6) g
    """,
    """
    INSERT INTO crm.favourite (customer_uuid, sku)
    SELECT p.customer_uuid, 'SKU-' || lpad(((p.n * 13 + g * 101) % 997)::text, 4, '0')
      FROM boutique_population p, generate_series(1, p.n % 4) g
    """,
    """
    INSERT INTO sales."Review" (customer_ref, sku, rating, body)
    SELECT customer_uuid, 'SKU-' || lpad((n % 997)::text, 4, '0'), 1 + n % 5, 'fits well'
      FROM boutique_population WHERE n % 10 = 0
    """,
)


@dataclass(frozen=True)
class Population:
    """What `populate_boutique` made, by tritonX number (the test's truth)."""

    keys: dict[str, uuid.UUID]  # every customer's key, linked or not
    local: frozenset[str]  # numbers of the customers the shop has not linked (tx_ref NULL)
    orders: int
    favourites: int
    reviews: int


def customer_key(seed: int, i: int) -> uuid.UUID:
    """The boutique key of customer i of the population `seed` (fixed, so a test knows it)."""
    return uuid.uuid5(_KEYS, f"{seed}:{i}")


def populate_boutique(
    conn: psycopg.Connection[Any], customers: int, *, seed: int = 1, local_every: int = 20
) -> Population:
    """Insert customers 1..`customers` of the simulator's population `seed` as local boutique
    rows; every `local_every`-th has no tritonX number. The schema must be installed; the
    caller commits."""
    shop = Boutique()
    local: set[str] = set()
    conn.execute(_STAGE)
    with conn.cursor().copy(
        "COPY boutique_population (n, customer_uuid, segment, shop_id, "
        "tx_ref, full_name, email, sex, birthday, phone, is_blocked, newsletter, "
        "street, zip, city, country) FROM STDIN"
    ) as copy:
        for i in range(1, customers + 1):
            row = shop.expected_row(snapshot(seed, i))
            if i % local_every == 0:
                row["tx_ref"] = None
                local.add(customer_number(i))
            copy.write_row(
                (i, customer_key(seed, i), SEGMENTS[i % 3], 1 + i % 2, *(row[c] for c in _COLUMNS))
            )
    counts = [conn.execute(statement).rowcount for statement in _FILL]
    conn.execute("DROP TABLE boutique_population")
    return Population(
        keys={customer_number(i): customer_key(seed, i) for i in range(1, customers + 1)},
        local=frozenset(local),
        orders=counts[3],
        favourites=counts[4],
        reviews=counts[5],
    )
