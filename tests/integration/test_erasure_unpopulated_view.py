"""A materialized view created WITH NO DATA (pagila's rental_by_category is one, as a dump
restores many) cannot be read until it is refreshed. The erasure's residue search passes over it
and names it in the proof's tables not searched, instead of failing every request with a bare
SQLSTATE 55000."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from syncctl import gdpr
from tests.feed import stage, upserted

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_an_unpopulated_materialized_view_is_named_not_searched(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        "CREATE MATERIALIZED VIEW public.rental_report AS"
        " SELECT 'a text column'::text AS body WITH NO DATA"
    )
    conn.execute("GRANT SELECT ON public.rental_report TO syncctl_owner")
    stage(conn, [upserted("TX00000001", 1)])
    cid = gdpr.resolve_subject(conn, number="TX00000001")[0]
    conn.commit()
    request = gdpr.receive_erasure(conn, cid, actor="bo:test", now=NOW)
    gdpr.verify_erasure(conn, request, actor="bo:test", now=NOW)
    gdpr.schedule_erasure(conn, request, actor="bo:test", grace_days=0, now=NOW)

    proof = gdpr.execute_erasure(conn, request, actor="bo:test", now=NOW)

    assert proof.state == "done", proof
    assert "public.rental_report" in proof.tables_not_searched

    # refreshed, it is searched like any table
    conn.execute("REFRESH MATERIALIZED VIEW public.rental_report")
    conn.commit()
    assert "public.rental_report" not in gdpr_unsearched(conn)


def gdpr_unsearched(conn: psycopg.Connection[Any]) -> list[str]:
    row = conn.execute("SELECT gdpr.unsearched_tables()").fetchone()
    assert row is not None
    return list(row[0])
