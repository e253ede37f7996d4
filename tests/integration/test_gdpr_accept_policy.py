"""Acceptance of data policies by docs/gdpr.md alone, on both test schemas: "A category names a
table of `sync.customer_tables()` ... or a classified column of one ...; anything else is
SY082", also a column the PII registry classifies on a table that holds no customer's data (a
staff table classified for the residue search, a shop schema the mapping no longer names)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from syncctl import errors, gdpr
from tests.shops import ShopSchema

COLUMN = {"reference": "shop.customer.email", "boutique": "crm.customer.email"}


def _create(conn: psycopg.Connection[Any], category: str) -> int:
    return gdpr.create_policy(
        conn,
        "staffdata",
        name="Staff",
        description="d",
        legal_basis="contract",
        retention="1 year",
        retention_from="created",
        categories=[category],
        actor="dpo:test",
    )


def test_a_classified_column_of_a_table_without_customer_data_is_no_category(
    shop: ShopSchema, conn: psycopg.Connection[Any]
) -> None:
    conn.execute(
        "CREATE TABLE public.staff (id int PRIMARY KEY, name text);"
        " GRANT SELECT ON public.staff TO syncctl_owner; SET ROLE syncctl_owner;"
        " INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
        " VALUES ('public', 'staff', 'name', 'null'); RESET ROLE"
    )
    conn.commit()
    with pytest.raises(errors.GdprRefusal) as refused:
        _create(conn, "public.staff.name")
    assert refused.value.sqlstate == "SY082" and "public.staff.name" in str(refused.value)
    assert conn.execute("SELECT count(*) FROM gdpr.policy WHERE code = 'staffdata'").fetchone() == (
        0,
    )
    # a classified column of the mapped customer table is one
    assert _create(conn, COLUMN[shop.name]) > 0
