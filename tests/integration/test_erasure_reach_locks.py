"""An erasure and a shop transaction that uses the row it reaches (an older delivery address),
at the same time. The compiled erasure locks the reached rows (FOR UPDATE) before it decides;
the shop's foreign key check locks the row it refers to (FOR KEY SHARE). Whichever comes
first, the other waits, and the erasure decides on what the shop committed:
- the shop first (an order of another customer delivered there): the erasure waits for it,
  then sees the order and leaves the row untouched;
- the erasure first: the shop's order waits, then refers to the scrubbed row (an anonymised
  customer's), or fails with a foreign-key violation when the removed customer's row is gone.
Waiting is seen in pg_locks, never by timing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from syncctl import engine
from tests.feed import stage
from tests.integration.test_erasure_own_rows import (  # noqa: F401 (a fixture)
    SCRUBBED,
    _address,
    _customer,
    _moved,
    _person,
    _rent,
    _wish,
    deliveries,
)


def _waiting(conn: psycopg.Connection[Any], pid: int) -> bool:
    """Whether backend pid waits for a lock (polled by the caller until it does)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = %s AND NOT granted)", [pid]
    ).fetchone()
    conn.commit()
    return bool(row and row[0])


def _until_waiting(conn: psycopg.Connection[Any], pid: int, thread: threading.Thread) -> None:
    while not _waiting(conn, pid):
        assert thread.is_alive(), "the other session finished without waiting"
        thread.join(0.05)


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _setup(conn: psycopg.Connection[Any]) -> tuple[str, int, int]:
    """A renter who moved (its rental keeps the older address) and a neighbour: the renter's
    number, the older address and the neighbour's key."""
    numbers = ["TX00000401", "TX00000402"]
    stage(conn, [_person(n) for n in numbers])
    key, home = _customer(conn, numbers[0])
    _rent(conn, key, home)
    conn.commit()
    older = _moved(conn, numbers[0])
    conn.commit()
    return numbers[0], older, _customer(conn, numbers[1])[0]


def test_a_shop_order_to_the_address_committed_while_the_erasure_waits_keeps_it(
    deliveries: psycopg.Connection[Any],  # noqa: F811
    dsn: str,
) -> None:
    conn = deliveries
    number, older, neighbour = _setup(conn)
    before = _address(conn, older)
    with psycopg.connect(dsn) as shop, psycopg.connect(dsn) as eraser:
        _rent(shop, neighbour, older)  # not committed: holds the row FOR KEY SHARE
        pid = eraser.info.backend_pid
        thread, errors = _in_thread(
            lambda: engine.anonymise(eraser, number, reason_code="AVG", actor="ops:test")
        )
        _until_waiting(conn, pid, thread)
        shop.commit()
        thread.join()
        assert errors == []

    assert _address(conn, older) == before
    counts = conn.execute(
        "SELECT (counts ->> 'public.address')::integer FROM sync.audit"
        " WHERE action = 'customer.anonymized'"
    ).fetchall()
    assert counts == [(1,)]  # its current address only


@pytest.mark.parametrize("erasure", ["anonymise", "remove"])
def test_a_shop_order_to_the_address_while_the_erasure_holds_it_waits(
    deliveries: psycopg.Connection[Any],  # noqa: F811
    dsn: str,
    erasure: str,
) -> None:
    conn = deliveries
    number, older, neighbour = _setup(conn)
    if erasure == "remove":  # a wish instead of a rental: the customer is removed
        row = conn.execute("SELECT syncmap.key_of(%s)::integer", [number]).fetchone()
        assert row is not None
        conn.execute("DELETE FROM public.rental WHERE customer_id = %s", [row[0]])
        _wish(conn, row[0], older)
        conn.commit()
    with psycopg.connect(dsn) as shop, psycopg.connect(dsn) as eraser:
        # the erasure, not committed: it holds the older address
        if erasure == "anonymise":
            eraser.execute("SELECT sync.anonymise_customer(%s, 'AVG', 'ops:test')", [number])
        else:
            # the compiled removal the feed's delete runs (sync._anonymise_numbers)
            eraser.execute("SELECT syncmap.erase_customer(syncmap.key_of(%s), true)", [number])
        pid = shop.info.backend_pid

        def order() -> None:
            _rent(shop, neighbour, older)
            shop.commit()

        thread, errors = _in_thread(order)
        _until_waiting(conn, pid, thread)
        eraser.commit()
        thread.join()

    if erasure == "anonymise":
        assert errors == []
        assert _address(conn, older) == SCRUBBED
    else:
        assert [type(e) for e in errors] == [psycopg.errors.ForeignKeyViolation]
        assert _address(conn, older) is None
