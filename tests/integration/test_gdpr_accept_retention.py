"""Acceptance of retention by docs/gdpr.md alone, on both test schemas: "the dry run counts what
the run does", per table, for a customer released whole whose dead letters are decided as
skipped: one that failed on a value, and one whose envelope's number is missing while its
snapshot names the customer. After the run nothing of the person is left in the inbox."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from syncctl import gdpr
from tests.feed import stage, upserted
from tests.shops import ShopSchema

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CUSTOMER_TABLE = {"reference": "shop.customer", "boutique": "crm.customer"}


def test_the_dry_run_counts_the_dead_letters_the_run_decides(
    shop: ShopSchema, conn: psycopg.Connection[Any]
) -> None:
    email = f"{secrets.token_hex(6)}@example.nl"
    stage(conn, [upserted("TX00000901", 1, email=email)])
    missing = upserted("TX00000901", 2, email=email)
    del missing["customer_number"]
    bad_value = upserted("TX00000901", 3, email=email, birth_date="1990-02-30")
    assert stage(conn, [missing, bad_value]).states == {"dead_letter": 2}
    conn.execute(
        sql.SQL("UPDATE {} SET created_at = '2020-01-01'").format(sql.SQL(shop.customer_table))
    )
    conn.commit()
    gdpr.create_policy(
        conn,
        "accept",
        name="Accept",
        description="the customer record for a year",
        legal_basis="contract",
        retention="1 year",
        retention_from="created",
        categories=[CUSTOMER_TABLE[shop.name]],
        actor="dpo:test",
    )
    gdpr.activate_policy(conn, "accept", actor="dpo:test")

    plan = gdpr.purge_dry_run(conn, now=NOW)
    planned = {t.table: t.rows for t in plan.tables}
    assert planned["sync.dead_letter"] == 2
    report = gdpr.purge(conn, now=NOW)
    assert report.counts == planned
    assert conn.execute("SELECT count(*) FROM sync.dead_letter").fetchone() == (0,)
    held = conn.execute(
        "SELECT count(*) FROM sync.inbox WHERE payload::text LIKE %s", [f"%{email}%"]
    )
    assert held.fetchone() == (0,)
