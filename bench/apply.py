"""Scenario `apply`: staged customer.upserted records applied by the real trigger path (binary
COPY into the session's page, sync.stage_page into sync.inbox, one transaction a page with the
loader's cursor steps; the statement-level trigger validates, dedupes, guards versions, checks
tombstones and redirects and audits), timed from the start of each page's transaction to its
commit. Two runs on the same database: N new customers, then N events of which half update
existing customers with a higher version; once keeping the records in the inbox (a retention
of N days, the daemon's default) and once not (a retention of 0: dead letters only).
Baselines, on a fresh database each, the same rows and the same shop's tables (bench.shops: the
reference shop.customer, or the boutique's crm.customer and its address):
(a) a bare INSERT ... SELECT ... ON CONFLICT DO UPDATE from a staging table (no guard, no
audit; the mapping's transforms inline), in the same pages; also with the COPY into the staging
table included;
(b) a Python client applying one event per transaction (SELECT, then UPDATE or INSERT,
autocommit), on a sample."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench import inbox_copy
from bench.databases import Server
from bench.dataset import ChangeRun, Dataset, InboxRow
from bench.report import Direction, Goal, Row, size_label
from bench.shops import Shop
from bench.statements import settle, statements
from syncctl import queries

PAGE_SIZES = (1_000, 10_000)
CLIENT_SAMPLE = 2_000
GOAL_VS_BARE = Goal(Direction.AT_LEAST, 0.8)
GOAL_VS_CLIENT = Goal(Direction.AT_LEAST, 20)


@dataclass
class Timing:
    events: int
    seconds: float
    outcomes: Counter[str] = field(default_factory=Counter)
    # the write-ahead log the run wrote (the whole server's, measured around the run)
    wal_bytes: int = 0

    @property
    def wal_per_event(self) -> float:
        return self.wal_bytes / self.events

    @property
    def rate(self) -> float:
        return self.events / self.seconds


@dataclass
class RunPair:
    """Timings of the insert run and the mixed (50% update) run of one variant."""

    inserts: Timing
    mixed: Timing


def _pages(rows: Sequence[InboxRow], size: int) -> list[Sequence[InboxRow]]:
    return [rows[k : k + size] for k in range(0, len(rows), size)]


def _wal_position(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    conn.commit()
    return str(row[0]) if row else "0/0"


def _wal_since(conn: psycopg.Connection[Any], start: str) -> int:
    row = conn.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", [start]
    ).fetchone()
    conn.commit()
    return int(row[0]) if row else 0


# ---------------------------------------------------------------------------------------------
# Subject: the trigger path
# ---------------------------------------------------------------------------------------------


def stage_pages(
    conn: psycopg.Connection[Any], run: ChangeRun, page_size: int, keep_payloads: bool = True
) -> Timing:
    """The loader's steps for each page: lock the cursor, COPY into the session's page, stage
    it (sync.stage_page: the inbox trigger applies it), move the cursor."""
    params = {"source": "tritonx"}
    timing = Timing(len(run.rows), 0.0)
    wal_start = _wal_position(conn)
    for page in _pages(run.rows, page_size):
        started = time.perf_counter()
        with conn.transaction():
            queries.run(conn, "cursor_ensure", **params)
            queries.run(conn, "cursor_lock", **params)
            queries.run(conn, "open_page")
            inbox_copy.copy_rows(conn, queries.statement("copy_page"), page)
            summary = queries.one(conn, "stage_page", keep_payloads=keep_payloads, feed=True)
            queries.run(
                conn,
                "cursor_advance",
                **params,
                position=str(page[-1][1]),
                last_seq=page[-1][1],
                last_occurred_at=page[-1][6],
            )
        timing.seconds += time.perf_counter() - started
        if summary and summary[0]:
            timing.outcomes.update(summary[0])
    timing.wal_bytes = _wal_since(conn, wal_start)
    return timing


def subject(server: Server, data: Dataset, page_size: int, keep_payloads: bool) -> RunPair:
    with server.clone() as dsn:
        settle(dsn)
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            inserts = stage_pages(conn, data.inserts, page_size, keep_payloads)
        settle(dsn)
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            mixed = stage_pages(conn, data.mixed, page_size, keep_payloads)
    return RunPair(inserts, mixed)


# ---------------------------------------------------------------------------------------------
# Baseline (a): bare set-based upsert from a staging table
# ---------------------------------------------------------------------------------------------


def _bare_upsert_pages(
    conn: psycopg.Connection[Any],
    shop: Shop,
    run: ChangeRun,
    first_id: int,
    page_size: int,
    with_copy: bool,
) -> Timing:
    s = statements()
    timing = Timing(len(run.rows), 0.0)
    first = first_id
    wal_start = _wal_position(conn)
    for page in _pages(run.rows, page_size):
        started = time.perf_counter()
        with conn.transaction():
            if with_copy:
                inbox_copy.copy_rows(conn, s["staging_copy"], page)
            conn.execute(
                shop.statement("bare_upsert"), {"first": first, "last": first + len(page) - 1}
            )
        timing.seconds += time.perf_counter() - started
        first += len(page)
    timing.wal_bytes = _wal_since(conn, wal_start)
    return timing


def bare_upsert(server: Server, data: Dataset, page_size: int, with_copy: bool) -> RunPair:
    with server.clone() as dsn:
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            conn.execute(statements()["staging_create"])
            if not with_copy:  # stage everything up front, untimed
                inbox_copy.copy_rows(conn, statements()["staging_copy"], data.inserts.rows)
                inbox_copy.copy_rows(conn, statements()["staging_copy"], data.mixed.rows)
            conn.commit()
        settle(dsn)
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            inserts = _bare_upsert_pages(conn, server.shop, data.inserts, 1, page_size, with_copy)
        settle(dsn)
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            mixed = _bare_upsert_pages(
                conn, server.shop, data.mixed, data.size + 1, page_size, with_copy
            )
    return RunPair(inserts, mixed)


# ---------------------------------------------------------------------------------------------
# Baseline (b): a per-event client, one transaction an event
# ---------------------------------------------------------------------------------------------


def _client_params(record: dict[str, Any]) -> dict[str, Any]:
    customer = dict(record["customer"])
    if customer.get("birth_date"):
        customer["birth_date"] = date.fromisoformat(customer["birth_date"])
    customer["updated_at"] = datetime.fromisoformat(customer["updated_at"])
    customer["version"] = record["version"]
    return customer


def _client_apply(dsn: str, shop: Shop, records: list[dict[str, Any]]) -> Timing:
    select, update, insert = (
        shop.statement(f"client_{name}") for name in ("select", "update", "insert")
    )
    params = [_client_params(record) for record in records]  # decoded before the clock starts
    timing = Timing(len(records), 0.0)
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        started = time.perf_counter()
        for event in params:
            # the shop's key as "id", its version or NULL, and what else the update needs
            found = conn.execute(select, event).fetchone()
            if found is None:
                conn.execute(insert, event)
                timing.outcomes["created"] += 1
            elif found["version"] is None or found["version"] < event["version"]:
                conn.execute(update, {**event, **found})
                timing.outcomes["updated"] += 1
            else:
                timing.outcomes["stale"] += 1
        timing.seconds = time.perf_counter() - started
    return timing


def per_event_client(server: Server, data: Dataset, sample: int) -> RunPair:
    with server.clone() as dsn:
        settle(dsn)
        inserts = _client_apply(dsn, server.shop, data.inserts.records(0, sample))
    with server.clone() as dsn:
        with psycopg.connect(dsn) as conn:  # the customers the mixed run updates, untimed
            inbox_copy.prepare(conn)
            conn.execute(statements()["staging_create"])
            inbox_copy.copy_rows(conn, statements()["staging_copy"], data.inserts.rows)
            conn.execute(server.shop.statement("bare_upsert"), {"first": 1, "last": data.size})
            conn.execute("DROP TABLE public.staged_inbox")
            conn.commit()
        settle(dsn)
        mixed = _client_apply(dsn, server.shop, data.mixed.records(0, sample))
    return RunPair(inserts, mixed)


# ---------------------------------------------------------------------------------------------
# The scenario
# ---------------------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    rows: list[Row]
    # microseconds per event of the subject's insert run at the largest page size, for scaling
    cost_per_event_us: float


def _check(label: str, timing: Timing, expected: int) -> str:
    applied = timing.outcomes.get("applied", 0)
    return "" if applied == expected else f"{label}: only {applied} of {expected} applied"


def run(server: Server, data: Dataset, log: Callable[[str], None]) -> ApplyResult:
    size = size_label(data.size)
    where = f"apply {server.shop.name} {size}"
    page_sizes = [p for p in PAGE_SIZES if p < data.size] + [
        p for p in PAGE_SIZES if p >= data.size
    ][:1]
    rows: list[Row] = []
    log(f"{where}: per-event client on {min(CLIENT_SAMPLE, data.size)} events")
    client = per_event_client(server, data, min(CLIENT_SAMPLE, data.size))
    cost = 0.0
    for page_size in page_sizes:
        log(f"{where}: trigger path, pages of {page_size}")
        mine = subject(server, data, page_size, keep_payloads=True)
        log(f"{where}: trigger path, retention 0, pages of {page_size}")
        lean = subject(server, data, page_size, keep_payloads=False)
        for label, timing, expected in (
            ("inserts", mine.inserts, data.size),
            ("mixed", mine.mixed, data.size),
            ("inserts, retention 0", lean.inserts, data.size),
            ("mixed, retention 0", lean.mixed, data.size),
        ):
            problem = _check(label, timing, expected)
            if problem:
                log(f"WARNING {where}: {problem} ({dict(timing.outcomes)})")
        log(f"{where}: bare upsert baseline, pages of {page_size}")
        bare = bare_upsert(server, data, page_size, with_copy=False)
        bare_copy = bare_upsert(server, data, page_size, with_copy=True)
        for kind, timing, lean_timing, base, base_copy, client_timing in (
            ("new", mine.inserts, lean.inserts, bare.inserts, bare_copy.inserts, client.inserts),
            ("50% upd", mine.mixed, lean.mixed, bare.mixed, bare_copy.mixed, client.mixed),
        ):
            name = f"apply {kind}, pages {size_label(page_size)}"
            lean_name = f"{name}, retention 0"
            client_label = f"b: per-event client, {client_timing.events} ev"
            rows += [
                Row(name, size, timing.rate, "ev/s", "a: bare upsert", base.rate, GOAL_VS_BARE),
                Row(name, size, timing.rate, "ev/s", "a': COPY+bare upsert", base_copy.rate),
                Row(
                    name,
                    size,
                    timing.rate,
                    "ev/s",
                    client_label,
                    client_timing.rate,
                    GOAL_VS_CLIENT,
                ),
                Row(
                    lean_name,
                    size,
                    lean_timing.rate,
                    "ev/s",
                    "a: bare upsert",
                    base.rate,
                    GOAL_VS_BARE,
                ),
                Row(
                    lean_name,
                    size,
                    lean_timing.rate,
                    "ev/s",
                    client_label,
                    client_timing.rate,
                    GOAL_VS_CLIENT,
                ),
                # what keeping the records costs: the payloads kept against none kept
                Row(name, size, timing.rate, "ev/s", "c: retention 0", lean_timing.rate),
                # and what each writes (the bare upsert's WAL: the customer rows alone)
                Row(
                    f"WAL {kind}, pages {size_label(page_size)}",
                    size,
                    timing.wal_per_event,
                    "B/ev",
                    "c: retention 0",
                    lean_timing.wal_per_event,
                ),
                Row(
                    f"WAL {kind}, pages {size_label(page_size)}, retention 0",
                    size,
                    lean_timing.wal_per_event,
                    "B/ev",
                    "a: bare upsert",
                    base.wal_per_event,
                ),
            ]
        cost = mine.inserts.seconds / data.size * 1e6
    return ApplyResult(rows, cost)
