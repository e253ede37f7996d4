"""Every staged event is decided in its page's transaction: applied, skipped with a reason, a
duplicate, or a dead letter; never pending. Every order of an anonymisation, delete or merge
followed by later events of the same customer (and of its old number), in one page and across
pages. An erased customer's data never comes back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.feed import event, stage, upserted
from tests.shops import ShopSchema

X, S, OLD, T = "TX00000010", "TX00000020", "TX00000030", "TX00000040"

FIRST = {
    "anonymise": lambda: event("customer.anonymized", X, 2, reason_code="AVG"),
    "delete": lambda: event("customer.deleted", X, 2),
    # X survives OLD: later events of OLD are about an alias now
    "merge_into": lambda: event("customer.merged", OLD, 2, into=X),
    # X goes into S: X is the old number
    "merge_away": lambda: event("customer.merged", X, 2, into=S),
}

LATER: dict[str, Callable[[], dict[str, Any] | list[dict[str, Any]]]] = {
    "upsert": lambda: upserted(X, 3, email="later@example.nl"),
    "upsert_old": lambda: upserted(OLD, 3, email="later@example.nl"),
    "anonymise": lambda: event("customer.anonymized", X, 3, reason_code="AVG"),
    "delete": lambda: event("customer.deleted", X, 3),
    "merge": lambda: event("customer.merged", X, 3, into=T),
    "upsert_then_anonymise_survivor": lambda: [
        upserted(OLD, 3, email="later@example.nl"),
        event("customer.anonymized", X, 4, reason_code="AVG"),
        upserted(X, 5, email="later@example.nl"),
    ],
}


def _later(name: str) -> list[dict[str, Any]]:
    made = LATER[name]()
    return made if isinstance(made, list) else [made]


@pytest.mark.parametrize("split", ["one page", "two pages"])
@pytest.mark.parametrize("later", LATER)
@pytest.mark.parametrize("first", FIRST)
def test_every_event_is_decided(
    conn: psycopg.Connection[Any], shop: ShopSchema, first: str, later: str, split: str
) -> None:
    stage(conn, [upserted(n, 1) for n in (X, S, OLD, T)])
    records = [FIRST[first](), *_later(later)]
    if split == "one page":
        stage(conn, records)
    else:
        stage(conn, records[:1])
        stage(conn, records[1:])

    undecided = conn.execute(
        "SELECT event_type, customer_number FROM sync.inbox_status WHERE state = 'pending'"
    ).fetchall()
    assert undecided == []
    # one audit row or dead letter per event
    for record in records:
        decided = conn.execute(
            "SELECT (SELECT count(*) FROM sync.audit WHERE event_id = %(e)s)"
            " + (SELECT count(*) FROM sync.dead_letter WHERE event_id = %(e)s)",
            {"e": record["event_id"]},
        ).fetchone()
        assert decided == (1,), record["type"]
    # an erased customer's later snapshot is nowhere
    erased = {n for (n,) in conn.execute("SELECT customer_number FROM sync.tombstone")}
    if erased:
        rows = [shop.read_row(conn, n) for n in erased & set(shop.numbers(conn))]
        assert not any("later@example.nl" in row.values() for row in rows)
        held = conn.execute(
            "SELECT count(*) FROM sync.inbox WHERE payload::text LIKE '%%later@example.nl%%'"
            " AND sync.resolve_customer_number(customer_number)"
            "     IN (SELECT customer_number FROM sync.tombstone)"
        ).fetchone()
        assert held == (0,)


def test_an_upsert_after_an_anonymisation_in_the_same_page_is_skipped(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted(X, 1)])
    outcome = stage(
        conn,
        [event("customer.anonymized", X, 2, reason_code="AVG"), upserted(X, 3, city="Delft")],
    )
    assert outcome.states == {"applied": 1, "skipped": 1}
    audit = conn.execute(
        "SELECT action, outcome, reason FROM sync.audit WHERE customer_number = %s ORDER BY id",
        [X],
    ).fetchall()
    assert audit[-1] == ("customer.upserted", "skipped", "tombstone")
    assert "Delft" not in shop.read_row(conn, X).values()
