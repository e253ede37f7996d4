"""Scenario `retention`: a retention run (`syncctl purge`: gdpr.purge_batch in batches of 500
customers, each its own transaction) over N customers with two orders and two wish-list rows
each, under two active policies that share the orders; half the customers' wish lists have
expired. Timed in customers examined per second. Baselines on a fresh database each with the
same rows: (a) bare set-based SQL deleting the expired wish lists in the same batches (no
policy logic, no audit, no lock); (b) a Python client deciding customer by customer (SELECT,
DELETE, audit row, commit), on a sample."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench.databases import Server
from bench.dataset import Dataset
from bench.report import Direction, Goal, Row, size_label
from bench.statements import settle, statements, timed_batches
from syncctl import gdpr

BATCH = 500
CLIENT_SAMPLE = 2_000
NOW = datetime(2026, 11, 22, tzinfo=UTC)
GOAL_VS_BARE = Goal(Direction.AT_LEAST, 0.25)
GOAL_VS_CLIENT = Goal(Direction.AT_LEAST, 5)


def _populate(dsn: str, customers: int) -> None:
    params = {
        "customers": customers,
        "long_ago": NOW - timedelta(days=400),
        "recently": NOW - timedelta(days=3),
    }
    with psycopg.connect(dsn) as conn:
        for name in ("customers", "orders", "wishlists", "policies"):
            conn.execute(statements()[f"retention_{name}"], params)
    settle(dsn)


def _subject(dsn: str) -> tuple[float, int]:
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        report = gdpr.purge(conn, now=NOW, batch_size=BATCH)
        return time.perf_counter() - started, report.customers


def _bare(dsn: str) -> tuple[float, int]:
    return timed_batches(dsn, "retention_bare_batch", {"limit": BATCH, "now": NOW})


def _client(dsn: str, sample: int) -> float:
    s = statements()
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        for cid in range(1, sample + 1):
            with conn.transaction():
                found: Any = conn.execute(s["retention_client_customer"], {"id": cid}).fetchone()
                last = found[1] or found[0]
                if last + timedelta(days=30) <= NOW:
                    rows = conn.execute(s["retention_client_delete"], {"id": cid}).rowcount
                    conn.execute(s["retention_client_audit"], {"id": cid, "rows": rows})
        return time.perf_counter() - started


def run(server: Server, data: Dataset, log: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    customers = data.size
    label = size_label(customers)
    results: dict[str, float] = {}
    for name in ("subject", "bare", "client"):
        with server.clone() as dsn:
            _populate(dsn, customers)
            if name == "subject":
                seconds, purged = _subject(dsn)
                results[name] = customers / seconds
                log(f"retention {label}: purge {seconds:.2f}s, {purged} customers changed")
                assert purged == customers // 2, purged
            elif name == "bare":
                seconds, purged = _bare(dsn)
                results[name] = customers / seconds
                log(f"retention {label}: bare {seconds:.2f}s, {purged} customers changed")
            else:
                sample = min(CLIENT_SAMPLE, customers)
                seconds = _client(dsn, sample)
                results[name] = sample / seconds
                log(f"retention {label}: client {seconds:.2f}s for {sample}")
    rows = [
        Row(
            "retention purge (customers examined)",
            label,
            results["subject"],
            "cust/s",
            "bare set-based delete",
            results["bare"],
            GOAL_VS_BARE,
        ),
        Row(
            "retention purge (customers examined)",
            label,
            results["subject"],
            "cust/s",
            "row-by-row client",
            results["client"],
            GOAL_VS_CLIENT,
        ),
    ]
    return rows, []
