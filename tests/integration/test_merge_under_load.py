"""Merges while the shop keeps writing: other connections insert orders and favourites for
both the old and the surviving customer of pairs being merged. Bounded, randomised load
(SYNCCTL_CONCURRENCY_SECONDS, 20 s by default; up to 60 for a longer soak). The documented
contract (docs/merge-and-anonymise.md, "Lock order and concurrency"): a shop insert either
commits before the merge and is re-pointed, or fails with a foreign-key violation (23503) and
succeeds when retried with the number resolved again; no deadlock; nothing committed is lost."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from typing import Any

import psycopg

from syncctl.simulator.population import customer_number
from syncctl.simulator.state import TritonX
from tests.feed import stage

CUSTOMERS = 60
PAIRS = [(customer_number(i), customer_number(i + 1)) for i in range(1, CUSTOMERS, 2)]


def shop_writer(
    dsn: str, deadline: float, seed: int, committed: list[str], errors: Counter[str]
) -> None:
    rng = random.Random(seed)
    with psycopg.connect(dsn) as conn:
        n = 0
        while time.monotonic() < deadline:
            number = rng.choice(rng.choice(PAIRS))
            order_number = f"w{seed}-{n}"
            n += 1
            for _attempt in range(5):
                try:
                    row = conn.execute("SELECT sync.resolve_customer(%s)", [number]).fetchone()
                    assert row is not None and row[0] is not None
                    conn.execute(
                        "INSERT INTO shop.orders (customer_id, order_number, total_amount)"
                        " VALUES (%s, %s, 1)",
                        [row[0], order_number],
                    )
                    conn.execute(
                        "INSERT INTO shop.favourite (customer_id, sku) VALUES (%s, %s)"
                        " ON CONFLICT DO NOTHING",
                        [row[0], f"sku-{rng.randint(1, 4)}"],
                    )
                    conn.commit()
                    committed.append(order_number)
                    break
                except psycopg.Error as exc:
                    conn.rollback()
                    errors[exc.sqlstate or "?"] += 1
                    if exc.sqlstate != "23503":
                        break


def test_merges_under_shop_load_lose_nothing_and_never_deadlock(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    tritonx = TritonX(customers=CUSTOMERS, seed=3)
    stage(conn, tritonx.changes(0, CUSTOMERS)[0])
    seconds = float(os.environ.get("SYNCCTL_CONCURRENCY_SECONDS", "20"))
    deadline = time.monotonic() + seconds
    committed: list[str] = []
    errors: Counter[str] = Counter()
    writers = [
        threading.Thread(target=shop_writer, args=(dsn, deadline, s, committed, errors))
        for s in range(3)
    ]
    for writer in writers:
        writer.start()
    rng = random.Random(11)
    merged = 0
    pairs = list(PAIRS)
    rng.shuffle(pairs)
    pause = seconds / (len(pairs) + 1)
    for old, survivor in pairs:
        time.sleep(rng.uniform(0, 2 * pause))
        conn.execute("SELECT sync.merge_customer(%s, %s)", [old, survivor])
        conn.commit()
        merged += 1
    for writer in writers:
        writer.join()

    assert merged == len(PAIRS)
    assert len(committed) > 50, "the shop load was too thin to prove anything"
    assert set(errors) <= {"23503"}, errors
    present = {r[0] for r in conn.execute("SELECT order_number FROM shop.orders")}
    assert set(committed) <= present, "a committed shop insert was lost"
    olds = [old for old, _ in PAIRS]
    stranded = conn.execute(
        "SELECT count(*) FROM shop.orders o JOIN shop.customer c ON c.id = o.customer_id"
        " WHERE c.customer_number = ANY(%s)",
        [olds],
    ).fetchone()
    assert stranded == (0,)
    remaining = conn.execute(
        "SELECT count(*) FROM shop.customer WHERE customer_number = ANY(%s)", [olds]
    ).fetchone()
    assert remaining == (0,)
    favourites_of_olds = conn.execute(
        "SELECT count(*) FROM shop.favourite f LEFT JOIN shop.customer c ON c.id = f.customer_id"
        " WHERE c.id IS NULL"
    ).fetchone()
    assert favourites_of_olds == (0,)
