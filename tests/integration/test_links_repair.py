"""Link report and repair: every anomaly counted, and the unambiguous ones fixed, audited,
without personal data in the audit."""

from __future__ import annotations

from typing import Any

import psycopg

from syncctl import links
from tests.feed import stage, upserted


def _number_of_order(conn: psycopg.Connection[Any], order_number: str) -> Any:
    row = conn.execute(
        "SELECT c.customer_number FROM shop.orders o JOIN shop.customer c ON c.id = o.customer_id"
        " WHERE o.order_number = %s",
        [order_number],
    ).fetchone()
    return row[0] if row else None


def _legacy_link(conn: psycopg.Connection[Any], old: str, survivor: str, order: str) -> None:
    """A shop row still linked to a number tritonX merged away (the shop linked it itself,
    before syncctl knew of the merge)."""
    cid = conn.execute(
        "INSERT INTO shop.customer (customer_number, email) VALUES (%s, 'old@x.nl') RETURNING id",
        [old],
    ).fetchone()
    assert cid is not None
    conn.execute(
        "INSERT INTO shop.orders (customer_id, order_number) VALUES (%s, %s)", [cid[0], order]
    )
    conn.execute(
        "INSERT INTO sync.redirect (old_number, survivor_number) VALUES (%s, %s)", [old, survivor]
    )
    conn.commit()


def test_check_counts_every_anomaly(conn: psycopg.Connection[Any]) -> None:
    stage(conn, [upserted("TX00000001", 1, email="a@x.nl")])
    conn.execute("INSERT INTO shop.customer (email) VALUES (' A@X.nl'), ('b@x.nl'), ('B@x.nl')")
    conn.commit()
    _legacy_link(conn, "TX00000002", "TX00000001", "o-1")
    found = dict(links.anomalies(conn))
    assert found["several local customers with one email"] == 2
    assert found["linked to a merged-away number"] == 1
    assert found["local customer without a tritonX number"] == 3


def test_repair_moves_a_merged_away_link_into_its_local_survivor(
    conn: psycopg.Connection[Any],
) -> None:
    stage(conn, [upserted("TX00000001", 1)])
    _legacy_link(conn, "TX00000002", "TX00000001", "o-2")
    plan = links.repair_plan(conn)
    assert plan.merge == [("TX00000002", "TX00000001")]
    assert links.repair(conn, plan, "ops:7").changed == 1
    assert _number_of_order(conn, "o-2") == "TX00000001"
    assert conn.execute(
        "SELECT count(*) FROM shop.customer WHERE customer_number = 'TX00000002'"
    ).fetchone() == (0,)
    assert dict(links.anomalies(conn))["linked to a merged-away number"] == 0
    audit = conn.execute(
        "SELECT actor, action, outcome, customer_number, related_number, reason, counts::text"
        " FROM sync.audit WHERE actor = 'ops:7'"
    ).fetchall()
    assert [a[:5] for a in audit] == [
        ("ops:7", "customer.relinked", "applied", "TX00000002", "TX00000001")
    ]
    assert "@" not in " ".join(str(v) for v in audit[0])
    assert links.repair_plan(conn).merge == [], "repair is not idempotent"


def test_repair_re_points_a_merged_away_link_when_the_survivor_is_not_local(
    conn: psycopg.Connection[Any],
) -> None:
    _legacy_link(conn, "TX00000003", "TX00000004", "o-3")
    assert links.repair(conn, links.repair_plan(conn), "ops:7").changed == 1
    assert _number_of_order(conn, "o-3") == "TX00000004"
    assert conn.execute(
        "SELECT sync.resolve_customer('TX00000003') = sync.resolve_customer('TX00000004')"
    ).fetchone() == (True,)


def test_repair_leaves_a_link_whose_survivor_was_erased_and_says_so(
    conn: psycopg.Connection[Any],
) -> None:
    stage(conn, [upserted("TX00000005", 1)])
    conn.execute(
        "SELECT sync.anonymise_from_backoffice(sync.resolve_customer('TX00000005'), 'AVG', 'bo:1')"
    )
    conn.commit()
    _legacy_link(conn, "TX00000006", "TX00000005", "o-6")
    result = conn.execute("SELECT sync.repair_redirected_link('TX00000006', 'ops:7')").fetchone()
    conn.commit()
    assert result is not None and result[0]["outcome"] == "skipped"
    assert _number_of_order(conn, "o-6") == "TX00000006"


def test_repair_adopts_an_unambiguous_local_customer_and_dry_run_plans_only(
    conn: psycopg.Connection[Any],
) -> None:
    stage(conn, [upserted("TX00000007", 1, email="eva@x.nl")])
    local = conn.execute(
        "INSERT INTO shop.customer (email) VALUES ('EVA@x.nl ') RETURNING id"
    ).fetchone()
    assert local is not None
    conn.execute(
        "INSERT INTO shop.orders (customer_id, order_number) VALUES (%s, 'o-7')", [local[0]]
    )
    conn.commit()
    plan = links.repair_plan(conn)
    assert [(a[0], a[2]) for a in plan.adopt] == [(str(local[0]), "TX00000007")]
    assert _number_of_order(conn, "o-7") is None, "planning changed something"
    assert links.repair(conn, plan, "ops:8").changed == 1
    assert _number_of_order(conn, "o-7") == "TX00000007"
    assert links.repair_plan(conn).adopt == []
