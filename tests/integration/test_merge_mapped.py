"""Merges on a mapped schema other than the reference shop: the boutique (tests/shops/boutique.sql,
uuid key, the number in its own column, the version in sync.customer_link, orders partitioned by
month, favourites in crm with a unique key, reviews referenced without a foreign key, the address
in a table the customer row points to). A feed merge and the by-hand functions re-point every
linked table, remove the old customer's row, link row and unshared address, keep the refusals
and the redirect, and the dry run counts what the merge does. The refusals (impossible merges)
are in tests/integration/test_merge.py, on both test schemas."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest

from tests.feed import event, stage, upserted
from tests.shops import Boutique
from tests.shops.binding import bind_boutique

SHOP = Boutique()
# what a merged-away customer leaves in every table (_rows_of)
GONE = {"orders": 0, "favourites": 0, "reviews": 0, "customer": 0, "link": 0}


@pytest.fixture
def boutique(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The boutique installed, granted and mapped (as tests/integration/test_boutique_schema.py
    does it), with a merge rule for crm.favourite declared by the owner."""
    bind_boutique(conn, SHOP, merge_rule=True)
    yield conn


def _merged(old: str, survivor: str, version: int = 2) -> dict[str, Any]:
    return event("customer.merged", old, version, into=survivor)


def _customers(conn: psycopg.Connection[Any], *numbers: str) -> list[uuid.UUID]:
    stage(conn, [upserted(number, 1, city=f"City {number[-3:]}") for number in numbers])
    keys = [SHOP.key_of(conn, number) for number in numbers]
    assert all(isinstance(k, uuid.UUID) for k in keys)
    return [k for k in keys if isinstance(k, uuid.UUID)]


def _review(conn: psycopg.Connection[Any], key: uuid.UUID, sku: str) -> None:
    conn.execute(
        'INSERT INTO sales."Review" (customer_ref, sku, rating) VALUES (%s, %s, 4)', [key, sku]
    )


def _rows_of(conn: psycopg.Connection[Any], key: uuid.UUID) -> dict[str, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM sales.orders WHERE customer_uuid = %(k)s),"
        " (SELECT count(*) FROM crm.favourite WHERE customer_uuid = %(k)s),"
        ' (SELECT count(*) FROM sales."Review" WHERE customer_ref = %(k)s),'
        " (SELECT count(*) FROM crm.customer WHERE customer_uuid = %(k)s),"
        " (SELECT count(*) FROM sync.customer_link WHERE customer_key = %(k)s::text)",
        {"k": key},
    ).fetchone()
    assert row is not None
    return dict(zip(("orders", "favourites", "reviews", "customer", "link"), row, strict=True))


def _address_of(conn: psycopg.Connection[Any], key: uuid.UUID) -> int | None:
    row = conn.execute(
        "SELECT address_id FROM crm.customer WHERE customer_uuid = %s", [key]
    ).fetchone()
    assert row is not None
    return None if row[0] is None else int(row[0])


def _address_exists(conn: psycopg.Connection[Any], address: int) -> bool:
    row = conn.execute(
        'SELECT EXISTS (SELECT FROM crm."CustomerAddress" WHERE id = %s)', [address]
    ).fetchone()
    return row == (True,)


def _dead_letters(conn: psycopg.Connection[Any]) -> dict[str, str]:
    return dict(
        conn.execute(
            "SELECT i.customer_number, d.reason FROM sync.dead_letter d"
            " JOIN sync.inbox i ON i.id = d.inbox_id"
        ).fetchall()
    )


def test_a_feed_merge_repoints_every_linked_table_and_removes_the_old_customer(
    boutique: psycopg.Connection[Any],
) -> None:
    conn = boutique
    old, survivor = _customers(conn, "TX00000301", "TX00000302")
    months = ("2026-01-15", "2026-04-02", "2026-09-30", "2027-02-01")
    for day in months:
        SHOP.place_order(conn, old, datetime.fromisoformat(f"{day}T12:00:00+00:00"))
    SHOP.place_order(conn, survivor, datetime.fromisoformat("2026-04-03T12:00:00+00:00"))
    for sku in ("SKU-SHARED", "SKU-OLD"):
        SHOP.add_favourite(conn, old, sku)
    SHOP.add_favourite(conn, survivor, "SKU-SHARED")
    _review(conn, old, "SKU-1")
    _review(conn, old, "SKU-2")
    old_address = _address_of(conn, old)
    survivor_address = _address_of(conn, survivor)
    assert old_address is not None and survivor_address is not None
    conn.commit()
    assert _rows_of(conn, old) == {
        "orders": 4,
        "favourites": 2,
        "reviews": 2,
        "customer": 1,
        "link": 1,
    }
    plan = {
        table: (rows, conflicts, rule)
        for table, rows, conflicts, rule in conn.execute(
            "SELECT * FROM sync.merge_plan('TX00000301', 'TX00000302')"
        ).fetchall()
    }
    assert plan == {
        "crm.customer": (1, 0, None),
        "crm.CustomerAddress": (1, 0, None),
        "crm.favourite": (2, 1, "union"),
        "sales.orders": (4, 0, None),
        "sales.Review": (2, 0, None),
    }

    outcome = stage(conn, [_merged("TX00000301", "TX00000302")])

    assert outcome.states == {"applied": 1}
    assert _rows_of(conn, old) == GONE
    assert _rows_of(conn, survivor) == {
        "orders": 5,
        "favourites": 2,
        "reviews": 2,
        "customer": 1,
        "link": 1,
    }
    # each order stays in the partition of its month: the parent re-pointed them
    assert conn.execute(
        "SELECT count(DISTINCT tableoid) FROM sales.orders WHERE customer_uuid = %s", [survivor]
    ).fetchone() == (4,)
    # the survivor keeps its own address; the old customer's, used by nobody else, is gone
    assert _address_of(conn, survivor) == survivor_address
    assert _address_exists(conn, survivor_address)
    assert not _address_exists(conn, old_address)
    audit = conn.execute(
        "SELECT outcome, customer_id, related_number, counts, reason FROM sync.audit"
        " WHERE action = 'customer.merged' AND customer_number = 'TX00000301'"
    ).fetchone()
    assert audit is not None
    assert audit[:3] == ("applied", None, "TX00000302")
    assert audit[3] == {table: rows for table, (rows, _, _) in plan.items()}
    assert "crm.favourite 1" in audit[4]
    # the redirect: the old number stands for the survivor, a late upsert of it is skipped
    assert conn.execute("SELECT sync.resolve_customer_number('TX00000301')").fetchone() == (
        "TX00000302",
    )
    assert stage(conn, [upserted("TX00000301", 9, city="Late")]).states == {"skipped": 1}
    assert conn.execute(
        "SELECT reason FROM sync.audit WHERE customer_number = 'TX00000301' AND version = 9"
    ).fetchone() == ("merged_away",)
    assert SHOP.key_of(conn, "TX00000301") is None
    assert conn.execute("SELECT count(*) FROM crm.customer").fetchone() == (1,)


def test_an_address_someone_else_uses_is_left_and_blanks_are_filled(
    boutique: psycopg.Connection[Any],
) -> None:
    conn = boutique
    old, survivor, other = _customers(conn, "TX00000311", "TX00000312", "TX00000313")
    old_address = _address_of(conn, old)
    assert old_address is not None
    # the shop's own columns: the survivor's value wins, its blank is filled from the old row
    conn.execute(
        "UPDATE crm.customer SET address_id = %s, notes = 'shared' WHERE customer_uuid = %s",
        [old_address, other],
    )
    conn.execute(
        "UPDATE crm.customer SET notes = 'old notes', segment = 'old' WHERE customer_uuid = %s",
        [old],
    )
    conn.commit()

    assert conn.execute("SELECT sync.merge_customer('TX00000311', 'TX00000312')").fetchone() == (
        {
            "outcome": "applied",
            "reason": "merged",
            "counts": {"crm.customer": 1},
        },
    )

    assert _address_exists(conn, old_address)
    assert _address_of(conn, other) == old_address
    assert conn.execute(
        "SELECT notes, segment, tx_ref FROM crm.customer WHERE customer_uuid = %s", [survivor]
    ).fetchone() == ("old notes", "retail", "TX00000312")


def test_an_n_way_merge_happens_in_one_transaction(boutique: psycopg.Connection[Any]) -> None:
    conn = boutique
    a, b, c, survivor = _customers(conn, "TX00000321", "TX00000322", "TX00000323", "TX00000324")
    for key in (a, b, c):
        SHOP.place_order(conn, key, datetime.fromisoformat("2026-06-01T08:00:00+00:00"))
        _review(conn, key, "SKU-9")
    SHOP.add_favourite(conn, a, "SKU-A")
    conn.commit()

    row = conn.execute(
        "SELECT sync.merge_customers(ARRAY['TX00000321', 'TX00000322', 'TX00000323'],"
        " 'TX00000324', 'ops:test')"
    ).fetchone()
    conn.commit()

    assert row is not None
    assert row[0]["merged"] == 3
    assert row[0]["counts"] == {
        "crm.customer": 3,
        "crm.CustomerAddress": 3,
        "crm.favourite": 1,
        "sales.orders": 3,
        "sales.Review": 3,
    }
    assert _rows_of(conn, survivor) == {
        "orders": 3,
        "favourites": 1,
        "reviews": 3,
        "customer": 1,
        "link": 1,
    }
    assert conn.execute("SELECT count(*) FROM crm.customer").fetchone() == (1,)

    # one impossible pair: nothing of the call happens
    d, e = _customers(conn, "TX00000325", "TX00000326")
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT sync.merge_customers(ARRAY['TX00000325', 'TX00000326'], 'TX00000326')")
    assert caught.value.sqlstate == "SY001"
    conn.rollback()
    assert SHOP.key_of(conn, "TX00000325") == d
    assert SHOP.key_of(conn, "TX00000326") == e


def test_an_undeclared_conflict_refuses_the_merge_and_changes_nothing(
    boutique: psycopg.Connection[Any],
) -> None:
    conn = boutique
    old, survivor = _customers(conn, "TX00000341", "TX00000342")
    conn.execute("SET ROLE syncctl_owner")
    conn.execute("DELETE FROM sync.merge_rule WHERE table_schema = 'crm'")
    conn.execute("RESET ROLE")
    SHOP.add_favourite(conn, old, "SKU-X")
    SHOP.add_favourite(conn, survivor, "SKU-X")
    SHOP.place_order(conn, old)
    conn.commit()

    assert stage(conn, [_merged("TX00000341", "TX00000342")]).states == {"dead_letter": 1}

    assert "crm.favourite" in _dead_letters(conn)["TX00000341"]
    assert _rows_of(conn, old) == {
        "orders": 1,
        "favourites": 1,
        "reviews": 0,
        "customer": 1,
        "link": 1,
    }


def test_a_merge_where_the_number_lives_in_the_link_table(
    boutique: psycopg.Connection[Any],
) -> None:
    conn = boutique
    document = json.loads(json.dumps(SHOP.mapping))
    document["customer"]["number"] = "link"
    conn.execute("SET ROLE syncctl_owner")
    conn.execute("SELECT sync.install_mapping(%s::jsonb, 'number-in-link')", [json.dumps(document)])
    conn.execute("RESET ROLE")
    conn.commit()
    stage(conn, [upserted(n, 1) for n in ("TX00000351", "TX00000352")])
    keys = [
        conn.execute("SELECT syncmap.key_of(%s)::uuid", [n]).fetchone()
        for n in ("TX00000351", "TX00000352")
    ]
    assert keys[0] is not None and keys[1] is not None
    old, survivor = keys[0][0], keys[1][0]
    assert conn.execute("SELECT count(tx_ref) FROM crm.customer").fetchone() == (0,)
    SHOP.place_order(conn, old)
    _review(conn, old, "SKU-L")
    conn.commit()

    assert stage(conn, [_merged("TX00000351", "TX00000352")]).states == {"applied": 1}

    assert _rows_of(conn, old) == GONE
    assert _rows_of(conn, survivor)["orders"] == 1
    assert conn.execute("SELECT customer_number FROM sync.customer_link ORDER BY 1").fetchall() == [
        ("TX00000352",)
    ]
    assert conn.execute("SELECT sync.resolve_customer_key('TX00000351')").fetchone() == (
        str(survivor),
    )
    assert stage(conn, [upserted("TX00000351", 5)]).states == {"skipped": 1}
    assert conn.execute("SELECT count(*) FROM crm.customer").fetchone() == (1,)


def test_a_related_row_that_references_the_customer_itself_moves_to_the_survivor(
    boutique: psycopg.Connection[Any],
) -> None:
    conn = boutique
    # an address book: every address belongs to a customer, the customer row points to one
    conn.execute(
        'ALTER TABLE crm."CustomerAddress" ADD COLUMN owner_uuid uuid REFERENCES crm.customer'
    )
    conn.execute('CREATE INDEX ON crm."CustomerAddress" (owner_uuid)')
    old, survivor = _customers(conn, "TX00000361", "TX00000362")
    old_address = _address_of(conn, old)
    conn.execute(
        'UPDATE crm."CustomerAddress" SET owner_uuid = %s WHERE id = %s', [old, old_address]
    )
    conn.commit()
    plan = {
        table: rows
        for table, rows, _, _ in conn.execute(
            "SELECT * FROM sync.merge_plan('TX00000361', 'TX00000362')"
        ).fetchall()
    }

    result = conn.execute("SELECT sync.merge_customer('TX00000361', 'TX00000362')").fetchone()

    assert result is not None
    assert result[0]["counts"] == plan == {"crm.customer": 1, "crm.CustomerAddress": 1}
    assert conn.execute(
        'SELECT owner_uuid FROM crm."CustomerAddress" WHERE id = %s', [old_address]
    ).fetchone() == (survivor,)


def _wait_until_blocked(conn: psycopg.Connection[Any], pid: int, thread: threading.Thread) -> None:
    """Until backend `pid` waits for a lock, or `thread` ended without waiting."""
    while thread.is_alive() and conn.execute(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
    ).fetchone() != ("Lock",):
        conn.execute("SELECT pg_sleep(0.01)")


def test_a_shop_insert_racing_a_merge_is_repointed_or_fails_retryably(
    boutique: psycopg.Connection[Any], dsn: str
) -> None:
    conn = boutique
    conn.autocommit = True
    old, survivor = _customers(conn, "TX00000371", "TX00000372")
    with psycopg.connect(dsn) as shop, psycopg.connect(dsn) as merger:
        merger_pid = merger.info.backend_pid
        # the shop's order commits first: the merge waits for it, then re-points it
        early = SHOP.place_order(shop, old)
        done: list[Any] = []
        waiting = threading.Thread(
            target=lambda: done.append(
                merger.execute("SELECT sync.merge_customer('TX00000371', 'TX00000372')").fetchone()
            )
        )
        waiting.start()
        _wait_until_blocked(conn, merger_pid, waiting)
        shop.commit()
        waiting.join()
        assert done and done[0][0]["counts"]["sales.orders"] == 1
        # the merge holds the customers: the shop's insert waits, then fails with 23503 ...
        failed: list[str | None] = []

        def insert() -> None:
            try:
                SHOP.place_order(shop, old)
            except psycopg.Error as error:
                failed.append(error.sqlstate)
            shop.rollback()

        racing = threading.Thread(target=insert)
        racing.start()
        _wait_until_blocked(conn, shop.info.backend_pid, racing)
        merger.commit()
        racing.join()
        assert failed == ["23503"]
        # ... and succeeds retried with the key the old number stands for now
        row = shop.execute("SELECT sync.resolve_customer_key('TX00000371')::uuid").fetchone()
        assert row == (survivor,)
        late = SHOP.place_order(shop, row[0])
        shop.commit()
    owners = dict(
        conn.execute(
            "SELECT id, customer_uuid FROM sales.orders WHERE id = ANY(%s)", [[early, late]]
        ).fetchall()
    )
    assert owners == {early: survivor, late: survivor}
