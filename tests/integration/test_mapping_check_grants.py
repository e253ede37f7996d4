"""`syncctl mapping check` names every privilege the engine will need, on a schema shaped like
the public sample shops (a rental shop): integer keys made by a column DEFAULT nextval(...) of a
sequence the column does not own, an address table the customer row points to and that other
tables (stores) point to as well, and payments partitioned by month whose foreign key to the
customer is declared on each partition rather than on the parent. A DBA who runs exactly the
GRANT statements `check` prints has a feed that applies: nothing is left to be found by a
dead letter."""

from __future__ import annotations

import re
import secrets
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.feed import stage, upserted
from tests.truth import SNAPSHOT_FIELDS

SCHEMA = """
CREATE SCHEMA rent;
CREATE SEQUENCE rent.address_seq;
CREATE SEQUENCE rent.member_seq;
CREATE TABLE rent.address (
    address_id  integer DEFAULT nextval('rent.address_seq'::regclass) PRIMARY KEY,
    address     text NOT NULL,
    postal_code text
);
CREATE TABLE rent.store (
    store_id    integer PRIMARY KEY,
    address_id  integer NOT NULL REFERENCES rent.address (address_id)
);
CREATE TABLE rent.member (
    member_id   integer DEFAULT nextval('rent.member_seq'::regclass) PRIMARY KEY,
    email       text,
    address_id  integer NOT NULL REFERENCES rent.address (address_id),
    store_id    integer NOT NULL
);
CREATE TABLE rent.payment (
    payment_id  integer NOT NULL,
    member_id   integer NOT NULL,
    paid_at     timestamptz NOT NULL,
    PRIMARY KEY (paid_at, payment_id)
) PARTITION BY RANGE (paid_at);
CREATE TABLE rent.payment_2026_01 PARTITION OF rent.payment
    FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
ALTER TABLE rent.payment_2026_01
    ADD FOREIGN KEY (member_id) REFERENCES rent.member (member_id);
"""

USED = ("email", "street", "house_number", "postcode")

MAPPING: dict[str, Any] = {
    "format": 1,
    "customer": {
        "schema": "rent",
        "table": "member",
        "key": "member_id",
        "key_generate": "default",
        "number": "link",
        "version": "link",
        "columns": {"email": "email"},
        "create": {"store_id": 1},
    },
    "related": [
        {
            "name": "address",
            "schema": "rent",
            "table": "address",
            "key": "address_id",
            "key_generate": "default",
            "via": {"customer_column": "address_id"},
            "on_anonymise": "scrub_or_detach",
            "columns": {
                "address": {"join": ["street", "house_number"], "null_as": ""},
                "postal_code": "postcode",
            },
        }
    ],
    "not_stored": {
        "fields": [
            f
            for f in dict.fromkeys([*SNAPSHOT_FIELDS, "updated_at"])
            if f not in ("customer_number", *USED)
        ]
    },
}

GRANT = re.compile(r"(GRANT [A-Z, ]+ ON (?:TABLE|SEQUENCE|SCHEMA) .+ TO .+;)$")


@pytest.fixture
def owner(conn: psycopg.Connection[Any]) -> str:
    conn.execute(SCHEMA)
    # the payments are kept for bookkeeping (else the check warns of them): the partition
    # with a foreign key of its own is the table the engine sees
    conn.execute(
        "INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)"
        " VALUES ('rent', 'payment_2026_01', 'scrub', true)"
    )
    conn.commit()
    row = conn.execute("SELECT sync.role_name('owner')").fetchone()
    assert row is not None
    return str(row[0])


def _defects(conn: psycopg.Connection[Any]) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT path, problem FROM sync.mapping_defects(%s)", [Jsonb(MAPPING)]
    ).fetchall()
    return {(path, problem) for path, problem in rows}


def _grant_what_check_asks(conn: psycopg.Connection[Any]) -> set[tuple[str, str]]:
    """Run every GRANT statement `check` prints, as a DBA would; the defects it reported."""
    defects = _defects(conn)
    for _path, problem in sorted(defects):
        found = GRANT.search(problem)
        assert found is not None, problem
        conn.execute(found.group(1))  # the statement check printed, as printed
    conn.commit()
    return defects


def test_the_sequence_behind_a_default_key_needs_usage(
    conn: psycopg.Connection[Any], owner: str
) -> None:
    """DEFAULT nextval('...') of a sequence the column does not own (as pg_dump writes a
    sequence made by hand): the generated write calls it as the owner role."""
    defects = _defects(conn)
    assert (
        "customer.key_generate",
        f"{owner} lacks USAGE: GRANT USAGE ON SEQUENCE rent.member_seq TO {owner};",
    ) in defects
    assert (
        "related[0].key_generate",
        f"{owner} lacks USAGE: GRANT USAGE ON SEQUENCE rent.address_seq TO {owner};",
    ) in defects


def test_a_table_that_points_to_a_related_row_needs_select(
    conn: psycopg.Connection[Any], owner: str
) -> None:
    """The write asks whether another table refers to the customer's address before changing
    it in place (a store's address is copied, never changed), so it reads those tables."""
    assert (
        "related[0].table",
        f"{owner} lacks SELECT on rent.store (it references the related table rent.address):"
        f" GRANT SELECT ON TABLE rent.store TO {owner};",
    ) in _defects(conn)


def test_a_partition_with_a_foreign_key_of_its_own_needs_the_privileges_too(
    conn: psycopg.Connection[Any], owner: str
) -> None:
    """The parent has no foreign key, the partition has one of its own: the engine sees the
    partition as a linked table; check names it, and says how one grant on the parent does."""
    defects = _defects(conn)
    assert any(
        path == "customer.table"
        and problem.startswith(f"{owner} lacks UPDATE on rent.payment_2026_01 (")
        and "declare the foreign key on rent.payment" in problem
        and problem.endswith(f"GRANT UPDATE ON TABLE rent.payment_2026_01 TO {owner};")
        for path, problem in defects
    ), sorted(defects)


def test_granting_what_check_lists_is_enough_for_the_feed(
    conn: psycopg.Connection[Any], owner: str
) -> None:
    _grant_what_check_asks(conn)
    assert _defects(conn) == set()
    conn.execute(f'SET ROLE "{owner}"')
    conn.execute("SELECT sync.install_mapping(%s, 'rent.toml')", [Jsonb(MAPPING)])
    conn.execute("RESET ROLE")
    conn.execute("INSERT INTO rent.address (address_id, address) VALUES (900, 'the store')")
    conn.execute("INSERT INTO rent.store VALUES (1, 900)")
    conn.commit()
    number = "TR" + secrets.token_hex(6).upper()
    records = [upserted(number, 1), upserted(number, 2, email=f"{secrets.token_hex(5)}@x.nl")]
    stage(conn, records[:1])
    stage(conn, records[1:])
    states = conn.execute(
        "SELECT state, reason FROM sync.inbox_status WHERE customer_number = %s ORDER BY inbox_id",
        [number],
    ).fetchall()
    assert states == [("applied", "created"), ("applied", "updated")]
    assert conn.execute(
        "SELECT m.email, a.address FROM rent.member AS m"
        " JOIN rent.address AS a ON a.address_id = m.address_id"
        " JOIN sync.customer_link AS l ON l.customer_key = m.member_id::text"
        " WHERE l.customer_number = %s",
        [number],
    ).fetchone() == (records[1]["customer"]["email"], "Keizersgracht 12")
