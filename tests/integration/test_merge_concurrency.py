"""Merges while the shop keeps writing. Three shop connections insert orders and favourites for
the old and the surviving customers of groups being merged, while two mergers run: one by hand
(sync.merge_customer for pairs, sync.merge_customers for N-way groups), one through the feed
(customer.merged events staged into the inbox). Bounded, randomised load:
SYNCCTL_CONCURRENCY_SECONDS (20 s by default, at most 60).

What docs/merge-and-anonymise.md ("Lock order and concurrency") promises, and is checked:
- a shop insert either commits before the merge locks the customer, and the merge re-points
  it, or fails with a foreign-key violation (23503) and succeeds when retried with the id
  sync.resolve_customer(number) gives; no other error reaches the shop;
- no deadlock (40P01) when the shop, like the engine, locks several customers in id order (and
  writes their rows in that order)
  (the feed side may retry a page after a deadlock or serialisation failure: counted, and
  with the documented lock order there must be none);
- every insert the shop saw commit is there afterwards, owned by the survivor of the number
  it was meant for, and nothing it saw fail is; no row is orphaned or references a
  merged-away customer once its merge committed."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest

from syncctl.simulator.population import customer_number
from syncctl.simulator.state import TritonX
from tests.feed import event, stage

SECONDS = min(60.0, max(5.0, float(os.environ.get("SYNCCTL_CONCURRENCY_SECONDS", "20"))))
WRITERS = 3
SKUS = tuple(f"sku-{i}" for i in range(6))
# (survivor, olds): pairs merged by hand, pairs merged through the feed, N-way groups by hand
_n = iter(range(1, 1000))
BY_HAND = [(customer_number(next(_n)), [customer_number(next(_n))]) for _ in range(14)]
BY_FEED = [(customer_number(next(_n)), [customer_number(next(_n))]) for _ in range(14)]
N_WAY = [
    (customer_number(next(_n)), [customer_number(next(_n)) for _ in range(2 + i % 2)])
    for i in range(8)
]
GROUPS = BY_HAND + BY_FEED + N_WAY
CUSTOMERS = sum(1 + len(olds) for _, olds in GROUPS)
SURVIVOR = {old: survivor for survivor, olds in GROUPS for old in olds}


@dataclass
class Results:
    """What every thread saw, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    orders: dict[str, str] = field(default_factory=dict)  # committed order -> intended number
    favourites: set[tuple[str, str]] = field(default_factory=set)
    failed_orders: set[str] = field(default_factory=set)  # never committed
    shop_errors: Counter[str] = field(default_factory=Counter)
    merge_errors: Counter[str] = field(default_factory=Counter)
    feed_retries: Counter[str] = field(default_factory=Counter)
    merged_ids: dict[int, str] = field(default_factory=dict)  # old id -> old number
    stale_references: list[str] = field(default_factory=list)
    # the groups the mergers are about to merge: the shop's load concentrates on them
    hot: list[tuple[str, list[str]]] = field(default_factory=list)
    gave_up: int = 0
    moved_before_lock: int = 0


def shop_writer(dsn: str, deadline: float, seed: int, results: Results) -> None:
    """The shop: a transaction writes for one customer (the foreign key check locks it), or
    for two of a group, locking them in id order first as the documentation asks."""
    rng = random.Random(seed)
    with psycopg.connect(dsn) as conn:
        conn.execute("SET lock_timeout = '15s'")
        conn.commit()
        n = 0
        while time.monotonic() < deadline:
            with results.lock:
                hot = list(results.hot)
            survivor, olds = rng.choice(hot if hot and rng.random() < 0.8 else GROUPS)
            numbers = rng.sample([survivor, *olds], k=rng.randint(1, 2))
            skus = {number: rng.choice(SKUS) for number in numbers}
            orders = {f"w{seed}-{n}-{k}": number for k, number in enumerate(numbers)}
            n += 1
            for _attempt in range(20):
                try:
                    ids = {
                        number: conn.execute(
                            "SELECT sync.resolve_customer(%s)", [number]
                        ).fetchone()[0]  # type: ignore[index]
                        for number in numbers
                    }
                    if len(numbers) > 1:
                        locked = conn.execute(
                            "SELECT id FROM shop.customer WHERE id = ANY(%s)"
                            " ORDER BY id FOR KEY SHARE",
                            [list(ids.values())],
                        ).fetchall()
                        if len(locked) < len(set(ids.values())):
                            # merged away between the lookup and the lock: look up again
                            conn.rollback()
                            with results.lock:
                                results.moved_before_lock += 1
                            continue
                    # rows in customer id order too: two shop transactions writing the same two
                    # customers' favourites in opposite orders deadlock on the unique index
                    # by themselves, engine or no engine
                    for order_number, number in sorted(orders.items(), key=lambda o: ids[o[1]]):
                        conn.execute(
                            "INSERT INTO shop.orders (customer_id, order_number, total_amount)"
                            " VALUES (%s, %s, 1)",
                            [ids[number], order_number],
                        )
                        if rng.random() < 0.5:
                            time.sleep(rng.uniform(0, 0.02))  # a slow shop transaction
                        conn.execute(
                            "INSERT INTO shop.favourite (customer_id, sku) VALUES (%s, %s)"
                            " ON CONFLICT DO NOTHING",
                            [ids[number], skus[number]],
                        )
                    conn.commit()
                except psycopg.Error as exc:
                    conn.rollback()
                    with results.lock:
                        results.shop_errors[exc.sqlstate or "?"] += 1
                    if exc.sqlstate == "23503":
                        continue  # documented: the customer was merged away; resolve again
                    with results.lock:
                        results.failed_orders |= set(orders)
                    break
                with results.lock:
                    results.orders.update(orders)
                    results.favourites |= {(number, sku) for number, sku in skus.items()}
                break
            else:
                with results.lock:
                    results.gave_up += 1
                    results.failed_orders |= set(orders)


def record_merged(conn: psycopg.Connection[Any], ids: dict[str, int], results: Results) -> None:
    """After a merge committed: nothing may reference the old customers any more."""
    old_ids = list(ids.values())
    row = conn.execute(
        "SELECT (SELECT count(*) FROM shop.orders WHERE customer_id = ANY(%(ids)s))"
        "     + (SELECT count(*) FROM shop.favourite WHERE customer_id = ANY(%(ids)s))"
        "     + (SELECT count(*) FROM shop.customer WHERE id = ANY(%(ids)s))",
        {"ids": old_ids},
    ).fetchone()
    conn.commit()
    with results.lock:
        results.merged_ids.update({i: n for n, i in ids.items()})
        if row != (0,):
            results.stale_references.append(f"{sorted(ids)}: {row}")


def local_ids(conn: psycopg.Connection[Any], numbers: list[str]) -> dict[str, int]:
    ids = dict(
        conn.execute(
            "SELECT customer_number, id FROM shop.customer WHERE customer_number = ANY(%s)",
            [numbers],
        ).fetchall()
    )
    conn.commit()
    return ids


def merger_by_hand(dsn: str, seed: int, results: Results) -> None:
    rng = random.Random(seed)
    work = BY_HAND + N_WAY
    rng.shuffle(work)
    pause = SECONDS / (len(work) + 1)
    with psycopg.connect(dsn) as conn:
        for survivor, olds in work:
            with results.lock:
                results.hot.append((survivor, olds))
            time.sleep(rng.uniform(0.2, 1.8) * pause)
            ids = local_ids(conn, olds)
            try:
                if len(olds) == 1:
                    conn.execute(
                        "SELECT sync.merge_customer(%s, %s, NULL, 'ops:test')", [olds[0], survivor]
                    )
                else:
                    conn.execute(
                        "SELECT sync.merge_customers(%s, %s, 'ops:test')", [olds, survivor]
                    )
                conn.commit()
            except psycopg.Error as exc:
                conn.rollback()
                with results.lock:
                    results.merge_errors[exc.sqlstate or "?"] += 1
                continue
            record_merged(conn, ids, results)
            with results.lock:
                results.hot.remove((survivor, olds))


def merger_by_feed(dsn: str, seed: int, results: Results) -> None:
    rng = random.Random(seed)
    work = list(BY_FEED)
    rng.shuffle(work)
    pause = SECONDS / (len(work) + 1)
    with psycopg.connect(dsn) as conn:
        for survivor, olds in work:
            with results.lock:
                results.hot.append((survivor, olds))
            time.sleep(rng.uniform(0.2, 1.8) * pause)
            ids = local_ids(conn, olds)
            merged = event("customer.merged", olds[0], 2, into=survivor)
            for _attempt in range(10):
                try:
                    stage(conn, [merged])
                    break
                except psycopg.Error as exc:
                    conn.rollback()
                    # documented: the controller pulls a failed page again
                    with results.lock:
                        results.feed_retries[exc.sqlstate or "?"] += 1
            record_merged(conn, ids, results)
            with results.lock:
                results.hot.remove((survivor, olds))


@pytest.mark.slow
def test_merges_under_shop_load_lose_nothing_and_never_deadlock(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    tritonx = TritonX(customers=CUSTOMERS, seed=41)
    stage(conn, tritonx.changes(0, CUSTOMERS)[0])
    ids = local_ids(conn, [customer_number(i) for i in range(1, CUSTOMERS + 1)])
    assert len(ids) == CUSTOMERS
    for number, customer_id in ids.items():  # history from before the load
        conn.execute(
            "INSERT INTO shop.orders (customer_id, order_number, total_amount) VALUES (%s, %s, 5)",
            [customer_id, f"seed-{number}"],
        )
        conn.execute(
            "INSERT INTO shop.favourite (customer_id, sku) VALUES (%s, 'sku-0')", [customer_id]
        )
    conn.commit()

    results = Results()
    deadline = time.monotonic() + SECONDS
    threads = [
        threading.Thread(target=shop_writer, args=(dsn, deadline, seed, results))
        for seed in range(WRITERS)
    ]
    threads += [
        threading.Thread(target=merger_by_hand, args=(dsn, 101, results)),
        threading.Thread(target=merger_by_feed, args=(dsn, 202, results)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=SECONDS + 120)
    assert not any(thread.is_alive() for thread in threads), "a thread hangs: a lock wait?"

    # the documented errors only, no deadlock anywhere
    assert set(results.shop_errors) <= {"23503"}, results.shop_errors
    assert results.merge_errors == Counter(), results.merge_errors
    assert results.feed_retries == Counter(), (
        f"pages failed and were retried: {results.feed_retries}"
    )
    assert results.gave_up == 0
    assert len(results.orders) > 100, "the shop load was too thin to prove anything"

    # every merge happened, flat, and nothing referenced an old customer once it committed
    assert results.stale_references == []
    redirects = dict(conn.execute("SELECT old_number, survivor_number FROM sync.redirect"))
    assert redirects == SURVIVOR
    outcomes = Counter(
        r[0]
        for r in conn.execute("SELECT outcome FROM sync.audit WHERE action = 'customer.merged'")
    )
    assert outcomes == Counter({"applied": len(SURVIVOR)})
    assert len(results.merged_ids) == len(SURVIVOR)

    # nothing the shop saw commit is lost, nothing it saw fail is there
    orders = dict(
        conn.execute(
            "SELECT o.order_number, c.customer_number FROM shop.orders AS o"
            " JOIN shop.customer AS c ON c.id = o.customer_id"
        ).fetchall()
    )
    total = conn.execute("SELECT count(*) FROM shop.orders").fetchone()
    assert total == (CUSTOMERS + len(results.orders),), "an order was lost, or orphaned"
    expected = {f"seed-{n}": SURVIVOR.get(n, n) for n in ids} | {
        o: SURVIVOR.get(n, n) for o, n in results.orders.items()
    }
    assert orders == expected
    assert not (results.failed_orders & set(orders))
    favourites = set(
        conn.execute(
            "SELECT c.customer_number, f.sku FROM shop.favourite AS f"
            " JOIN shop.customer AS c ON c.id = f.customer_id"
        ).fetchall()
    )
    wanted = {(SURVIVOR.get(n, n), s) for n, s in results.favourites}
    wanted |= {(SURVIVOR.get(n, n), "sku-0") for n in ids}
    assert favourites == wanted
    orphans = conn.execute(
        "SELECT (SELECT count(*) FROM shop.favourite AS f WHERE NOT EXISTS"
        "        (SELECT FROM shop.customer AS c WHERE c.id = f.customer_id))"
        "     + (SELECT count(*) FROM shop.orders WHERE customer_id = ANY(%(old)s))"
        "     + (SELECT count(*) FROM shop.favourite WHERE customer_id = ANY(%(old)s))",
        {"old": list(results.merged_ids)},
    ).fetchone()
    assert orphans == (0,)
    print(
        f"committed {len(results.orders)} orders; shop errors {dict(results.shop_errors)};"
        f" moved before lock {results.moved_before_lock}"
    )
