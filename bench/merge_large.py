"""Scenario `merge-large`: single customer.merged events of a customer with 1,000 orders and 200
favourites (50 of them also the survivor's: the reference shop's `union` rule resolves them),
each alone in a page through the real trigger path (`apply.stage_pages`), timed from the
page's transaction start to its commit. The 99th percentile of 100 such merges is the figure;
the goal is absolute (< 50 ms), not a ratio: a merge's cost is its rows, and the baseline is
the same merge's plain SQL (re-point the orders and favourites, delete the clashing ones and the
old customer) in one transaction per merge, on the same rows of a fresh clone."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench import inbox_copy
from bench.apply import stage_pages
from bench.databases import Server
from bench.dataset import ChangeRun, Dataset, customer_number, merges
from bench.report import Direction, Goal, Row, size_label
from bench.statements import settle

MERGES = 100
ORDERS = 1_000
FAVOURITES = 200
SHARED = 50  # favourites the survivor has too
GOAL = Goal(Direction.AT_MOST, 50, absolute=True, unit="ms")


def _pairs(size: int) -> list[tuple[int, int]]:
    step = max(1, size // (2 * MERGES))
    return [(2 * k * step, 2 * k * step + 1) for k in range(MERGES) if 2 * k * step + 1 < size]


def _prepare(dsn: str, data: Dataset, pairs: list[tuple[int, int]]) -> None:
    olds = [customer_number(o) for o, _ in pairs]
    survivors = [customer_number(s) for _, s in pairs]
    with psycopg.connect(dsn) as conn:
        inbox_copy.prepare(conn)
        stage_pages(conn, data.inserts, 10_000)
        conn.execute(
            "INSERT INTO shop.orders (customer_id, order_number)"
            " SELECT c.id, 'big-' || c.id || '-' || g FROM shop.customer AS c,"
            " generate_series(1, %s::integer) AS g WHERE c.customer_number = ANY (%s)",
            [ORDERS, olds],
        )
        conn.execute(
            "INSERT INTO shop.favourite (customer_id, sku)"
            " SELECT c.id, 'SKU-' || g FROM shop.customer AS c,"
            " generate_series(1, %s::integer) AS g WHERE c.customer_number = ANY (%s)",
            [FAVOURITES, olds],
        )
        conn.execute(
            "INSERT INTO shop.favourite (customer_id, sku)"
            " SELECT c.id, 'SKU-' || g FROM shop.customer AS c,"
            " generate_series(%s::integer, %s::integer) AS g WHERE c.customer_number = ANY (%s)",
            [FAVOURITES - SHARED + 1, FAVOURITES + SHARED, survivors],
        )
        conn.commit()
    settle(dsn)


def _subject(server: Server, data: Dataset, pairs: list[tuple[int, int]]) -> list[float]:
    run = merges(pairs, 2 * data.size + 1)
    with server.clone() as dsn:
        _prepare(dsn, data, pairs)
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            times = []
            for row in run.rows:
                timing = stage_pages(conn, ChangeRun([row], 0), 1)
                assert timing.outcomes.get("applied") == 1, timing.outcomes
                times.append(timing.seconds * 1000)
    return times


_PLAIN = (
    "DELETE FROM shop.favourite AS o WHERE o.customer_id = %(old)s AND EXISTS"
    " (SELECT FROM shop.favourite AS s WHERE s.customer_id = %(survivor)s AND s.sku = o.sku)",
    "UPDATE shop.favourite SET customer_id = %(survivor)s WHERE customer_id = %(old)s",
    "UPDATE shop.orders SET customer_id = %(survivor)s WHERE customer_id = %(old)s",
    "DELETE FROM shop.customer WHERE id = %(old)s",
)


def _baseline(server: Server, data: Dataset, pairs: list[tuple[int, int]]) -> list[float]:
    with server.clone() as dsn:
        _prepare(dsn, data, pairs)
        with psycopg.connect(dsn) as conn:
            ids: dict[str, Any] = dict(
                conn.execute("SELECT customer_number, id FROM shop.customer").fetchall()
            )
            conn.commit()
            times = []
            for old, survivor in pairs:
                params = {
                    "old": ids[customer_number(old)],
                    "survivor": ids[customer_number(survivor)],
                }
                started = time.perf_counter()
                with conn.transaction():
                    for statement in _PLAIN:
                        conn.execute(statement, params)
                times.append((time.perf_counter() - started) * 1000)
    return times


def _p99(times: list[float]) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[98]


def run(server: Server, data: Dataset, log: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    size = size_label(data.size)
    pairs = _pairs(data.size)
    log(f"merge-large {size}: {len(pairs)} merges of {ORDERS} orders and {FAVOURITES} favourites")
    mine = _subject(server, data, pairs)
    log(f"merge-large {size}: the same merges as plain SQL")
    base = _baseline(server, data, pairs)
    row = Row(
        f"merge of {ORDERS:,} orders + {FAVOURITES} favourites, p99",
        size,
        _p99(mine),
        "ms",
        f"plain SQL of the same merge, p99 (median {statistics.median(base):.1f} ms)",
        _p99(base),
        GOAL,
    )
    note = (
        f"merge-large {size}: feed merge median {statistics.median(mine):.1f} ms, p99 "
        f"{_p99(mine):.1f} ms, max {max(mine):.1f} ms over {len(mine)}; plain SQL median "
        f"{statistics.median(base):.1f} ms, p99 {_p99(base):.1f} ms"
    )
    return [row], [note]
