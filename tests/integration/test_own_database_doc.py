"""docs/own-database.md stays exact: its mapping, its GRANT statements and its classification,
as printed there, fit a schema with pagila's shape (the tables, keys, sequences, NOT NULL
columns and foreign keys the how-to relies on): `mapping check` finds nothing, the mapping
installs, a snapshot reaches the customer and address tables, coverage is clean."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from syncctl import mapping
from tests.feed import stage, upserted

DOC = Path(__file__).resolve().parents[2] / "docs" / "own-database.md"

# pagila's tables as far as the how-to touches them (pagila-schema.sql, commit 5ba5a57): the
# sequences are not OWNED BY their columns, payment's foreign key is on its partition only.
PAGILA = """
CREATE SEQUENCE public.customer_customer_id_seq;
CREATE SEQUENCE public.address_address_id_seq;
CREATE TABLE public.address (
    address_id integer DEFAULT nextval('public.address_address_id_seq'::regclass) PRIMARY KEY,
    address text NOT NULL, address2 text, district text NOT NULL, city_id integer NOT NULL,
    postal_code text, phone text NOT NULL, last_update timestamptz DEFAULT now() NOT NULL);
CREATE TABLE public.store (store_id integer PRIMARY KEY,
    address_id integer NOT NULL REFERENCES public.address);
CREATE TABLE public.staff (staff_id integer PRIMARY KEY,
    address_id integer NOT NULL REFERENCES public.address);
CREATE TABLE public.customer (
    customer_id integer DEFAULT nextval('public.customer_customer_id_seq'::regclass) PRIMARY KEY,
    store_id integer NOT NULL, first_name text NOT NULL, last_name text NOT NULL, email text,
    address_id integer NOT NULL REFERENCES public.address, activebool boolean DEFAULT true NOT NULL,
    create_date date DEFAULT CURRENT_DATE NOT NULL, last_update timestamptz DEFAULT now(),
    active integer);
CREATE TABLE public.rental (rental_id integer PRIMARY KEY, rental_date timestamptz NOT NULL,
    inventory_id integer NOT NULL, customer_id integer NOT NULL REFERENCES public.customer,
    return_date timestamptz, staff_id integer NOT NULL, last_update timestamptz);
CREATE TABLE public.payment (payment_id integer NOT NULL, customer_id integer NOT NULL,
    staff_id integer NOT NULL, rental_id integer NOT NULL, amount numeric(5,2) NOT NULL,
    payment_date timestamptz NOT NULL, PRIMARY KEY (payment_date, payment_id))
    PARTITION BY RANGE (payment_date);
CREATE TABLE public.payment_p2022_01 PARTITION OF public.payment
    FOR VALUES FROM ('2022-01-01') TO ('2022-02-01');
ALTER TABLE public.payment_p2022_01 ADD FOREIGN KEY (customer_id) REFERENCES public.customer;
CREATE FUNCTION public.last_updated() RETURNS trigger LANGUAGE plpgsql
    AS 'BEGIN NEW.last_update = CURRENT_TIMESTAMP; RETURN NEW; END';
CREATE TRIGGER last_updated BEFORE UPDATE ON public.customer
    FOR EACH ROW EXECUTE FUNCTION public.last_updated();
CREATE TRIGGER last_updated BEFORE UPDATE ON public.rental
    FOR EACH ROW EXECUTE FUNCTION public.last_updated();
"""


def _block(language: str, starting: str) -> str:
    """The doc's fenced block of that language whose text starts so."""
    for body in re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S):
        text = "\n".join(line.strip() for line in str(body).splitlines())
        if text.startswith(starting):
            return text
    raise AssertionError(f"docs/own-database.md has no {language} block starting {starting!r}")


def _defects(conn: psycopg.Connection[Any], document: dict[str, Any]) -> list[Any]:
    return conn.execute(
        "SELECT path, problem FROM sync.mapping_defects(%s)", [Jsonb(document)]
    ).fetchall()


def test_the_how_to_runs_as_written_on_a_schema_shaped_like_pagila(
    conn: psycopg.Connection[Any],
) -> None:
    loaded = mapping.parse(_block("toml", "# pagila"), "pagila.toml")
    conn.execute(PAGILA)
    conn.commit()
    assert _defects(conn, loaded.document)  # privileges first

    conn.execute(_block("sql", "ALTER TABLE public.payment ADD FOREIGN KEY"))
    conn.execute(_block("sql", "GRANT SELECT, INSERT, UPDATE, DELETE"))
    conn.commit()
    # the payments are declared kept for bookkeeping only in step 7: a warning until then
    assert [(path, problem.split(":")[1]) for path, problem in _defects(conn, loaded.document)] == [
        ("customer.table", " public.payment is linked to the customer and not kept for bookkeeping")
    ]

    conn.execute("SET ROLE syncctl_owner")
    conn.execute("SELECT sync.install_mapping(%s, 'pagila.toml')", [Jsonb(loaded.document)])
    conn.execute("RESET ROLE")
    conn.execute("CREATE INDEX ON public.payment (customer_id)")
    conn.execute("CREATE INDEX ON public.rental (customer_id)")
    conn.execute(_block("sql", "SET ROLE syncctl_owner;\nINSERT INTO sync.pii_column"))
    conn.commit()
    assert conn.execute("SELECT * FROM sync.coverage_defects()").fetchall() == []

    record = upserted("TX00000001", 1)
    stage(conn, [record])
    snapshot = record["customer"]
    assert conn.execute(
        "SELECT c.first_name, c.last_name, c.email, c.store_id, a.address, a.postal_code,"
        " a.phone, a.city_id, a.district FROM public.customer AS c"
        " JOIN public.address AS a USING (address_id)"
    ).fetchall() == [
        (
            snapshot["first_name"],
            f"{snapshot['infix']} {snapshot['last_name']}",
            snapshot["email"],
            1,
            f"{snapshot['street']} {snapshot['house_number']} {snapshot['house_number_addition']}",
            snapshot["postcode"],
            snapshot["phone"],
            1,
            "",
        )
    ]
