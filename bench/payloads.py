"""Scenario `payloads`: the daemon's data minimisation (payload_retention.PayloadRetention:
sync.drop_payloads in batches of 10,000, oldest first, each its own transaction) over the 2N
inbox rows of N new customers and N/2 updates plus N/2 new ones applied through the feed, all
received eight days ago, under a 7-day retention. Timed in payloads dropped a second.
Baselines on a fresh database each with the same rows: (a) bare set-based SQL NULLing the
payloads in id batches of the same size (no check that the event was decided or is a dead
letter); (b) a Python client checking and dropping row by row, on a sample."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg

from bench import inbox_copy
from bench.apply import stage_pages
from bench.databases import Server
from bench.dataset import Dataset
from bench.report import Direction, Goal, Row, size_label
from bench.statements import settle, statements, timed_batches
from syncctl.payload_retention import PayloadRetention

BATCH = 10_000
CLIENT_SAMPLE = 2_000
GOAL_VS_BARE = Goal(Direction.AT_LEAST, 0.5)
GOAL_VS_CLIENT = Goal(Direction.AT_LEAST, 5)


@contextmanager
def _populated(server: Server, data: Dataset) -> Iterator[str]:
    with server.clone() as dsn:
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            stage_pages(conn, data.inserts, 10_000)
            stage_pages(conn, data.mixed, 10_000)
            conn.execute(statements()["payloads_age"])
            conn.commit()
        settle(dsn)
        yield dsn


def _subject(dsn: str) -> tuple[float, int]:
    retention = PayloadRetention(timedelta(days=7), batch=BATCH)
    dropped = 0
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        while batch := retention(conn):
            dropped += batch
        return time.perf_counter() - started, dropped


def _bare(dsn: str) -> tuple[float, int]:
    return timed_batches(dsn, "payloads_bare_batch", {"limit": BATCH})


def _client(dsn: str, sample: int) -> tuple[float, int]:
    s = statements()
    dropped = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        candidates = conn.execute(s["payloads_client_candidates"], {"limit": sample}).fetchall()
        for inbox_id, event_id in candidates:
            with conn.transaction():
                params = {"id": inbox_id, "event_id": event_id}
                decided = conn.execute(s["payloads_client_decided"], params).fetchone()
                if decided and decided[0]:
                    conn.execute(s["payloads_client_drop"], params)
                    dropped += 1
        return time.perf_counter() - started, dropped


def run(server: Server, data: Dataset, log: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    label = size_label(data.size)
    rates: dict[str, float] = {}
    for name in ("subject", "bare", "client"):
        with _populated(server, data) as dsn:
            if name == "subject":
                seconds, dropped = _subject(dsn)
                assert dropped == 2 * data.size, dropped
            elif name == "bare":
                seconds, dropped = _bare(dsn)
            else:
                seconds, dropped = _client(dsn, min(CLIENT_SAMPLE, 2 * data.size))
            log(f"payloads {label}: {name} dropped {dropped} in {seconds:.2f}s")
            rates[name] = dropped / seconds
    return [
        Row(
            "payload retention (payloads dropped)",
            label,
            rates["subject"],
            "rows/s",
            "bare set-based update",
            rates["bare"],
            GOAL_VS_BARE,
        ),
        Row(
            "payload retention (payloads dropped)",
            label,
            rates["subject"],
            "rows/s",
            "row-by-row client",
            rates["client"],
            GOAL_VS_CLIENT,
        ),
    ], []
