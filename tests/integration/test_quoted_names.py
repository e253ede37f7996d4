"""Table and column names written for a human or a machine read one way only: as PostgreSQL
quotes them (crm."CustomerAddress", sales."Review".body), a plain name as it is (crm.customer,
crm.favourite). Before, they were joined by dots unquoted: crm.CustomerAddress could be the
table "CustomerAddress" or customeraddress, and "web.shop".customer read as web.shop.customer.
On the boutique (tests/shops/boutique.sql): coverage (`syncctl coverage`), the subject access
export, and the policies' categories, which are taken in either form."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import psycopg
from click.testing import CliRunner

from syncctl import engine, gdpr
from syncctl.cli.engine import coverage
from tests.feed import stage, upserted
from tests.shops import Boutique
from tests.shops.binding import bind_boutique

SHOP = Boutique()


def test_coverage_names_tables_and_columns_as_postgresql_quotes_them(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    bind_boutique(conn, SHOP, classified=True)
    conn.execute(
        "DELETE FROM sync.pii_column WHERE table_schema = 'sales' AND table_name = 'Review'"
        " AND column_name = 'body'"
    )
    conn.execute('ALTER TABLE crm."CustomerAddress" ADD COLUMN "Note Text" text')
    conn.execute("ALTER TABLE crm.favourite ADD COLUMN note text")
    conn.commit()
    defects = engine.coverage_defects(conn)
    places = {(d.table, d.column, d.place) for d in defects if d.kind == "unclassified"}
    assert places == {
        ('crm."CustomerAddress"', "Note Text", 'crm."CustomerAddress"."Note Text"'),
        ("crm.favourite", "note", "crm.favourite.note"),
        ('sales."Review"', "body", 'sales."Review".body'),
    }
    result = CliRunner().invoke(coverage, [], obj=SimpleNamespace(dsn=dsn))
    assert result.exit_code != 0
    assert {d.place for d in defects} <= {
        line.split(": ")[0] for line in result.output.splitlines()
    }
    assert 'sales."Review".body: column has no PII strategy' in result.output.splitlines()
    assert "crm.favourite.note: column has no PII strategy" in result.output.splitlines()


def test_the_export_names_its_tables_as_postgresql_quotes_them(
    conn: psycopg.Connection[Any],
) -> None:
    bind_boutique(conn, SHOP, classified=True)
    stage(conn, [upserted("TX00000501", 1)])
    key = SHOP.key_of(conn, "TX00000501")
    assert key is not None
    conn.execute(
        'INSERT INTO sales."Review" (customer_ref, sku, rating) VALUES (%s, %s, 4)',
        [key, "sku-1"],
    )
    conn.commit()
    sources = {
        str(source)
        for (source,) in conn.execute(
            "SELECT DISTINCT source FROM gdpr.subject_data(%s)", [str(key)]
        ).fetchall()
    }
    assert {"crm.customer", 'crm."CustomerAddress"', 'sales."Review"'} <= sources, sources
    assert not {"crm.CustomerAddress", "sales.Review"} & sources


def test_a_category_is_taken_quoted_or_unquoted_and_shown_quoted(
    conn: psycopg.Connection[Any],
) -> None:
    bind_boutique(conn, SHOP, classified=True)
    for code, categories in (
        ("quoted", ['sales."Review"', 'sales."Review".body', '"crm".customer.notes']),
        ("unquoted", ["sales.Review", "crm.customer.notes"]),
    ):
        gdpr.create_policy(
            conn,
            code,
            name=code,
            description="Reviews",
            legal_basis="contract",
            retention="1 year",
            retention_from="created",
            categories=categories,
            actor="dpo:test",
        )
        assert gdpr.policy(conn, code).categories == ["crm.customer.notes", 'sales."Review"']
    stored = conn.execute(
        "SELECT DISTINCT c.table_schema, c.table_name, c.columns FROM gdpr.policy_category AS c"
        " JOIN gdpr.policy AS p ON p.id = c.policy_id"
        " WHERE p.code IN ('quoted', 'unquoted') ORDER BY 1, 2"
    ).fetchall()
    assert stored == [("crm", "customer", ["notes"]), ("sales", "Review", None)]
