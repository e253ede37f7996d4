"""Scenarios `pull` and `memory`: the whole path, tritonX simulator -> HTTP -> controller ->
binary COPY -> inbox trigger -> applied, for a population of N customers (N version-1
upserts), in pages of 1,000 (the baselines' pages) and of 5,000 (`syncctl pull`'s default).
The controller runs in a child process (bench.pull_process), the simulator in another
(bench.simulated_tritonx, serving pre-encoded events); the child reports its rate and its
peak RSS (VmHWM). Baseline: the same records (fetched from the simulator beforehand, untimed)
turned into inbox rows and binary-COPYed from Python into a trigger-less copy of the inbox, in
the same pages and commits — what landing the rows costs without applying them. Also printed,
as ceilings: the rate the simulator serves at, and the controller's pipeline with the apply
taken out (`land-only`: fetched, decoded and typed in the worker, COPYed into the trigger-less
copy): what the pull would reach if the apply cost nothing. On each
test schema (bench.shops) the controller's feed writes that schema's tables; the baseline lands
the same rows in the inbox's shape whatever the schema, and is measured again in each schema's
pass, so every ratio has a baseline from the same moment."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from bench.databases import Server
from bench.dataset import SEED, Dataset
from bench.report import Direction, Goal, Row, size_label
from bench.statements import settle, statements
from syncctl.loader import INBOX_TYPES, inbox_row
from syncctl.tritonx import TritonXClient

PAGE_SIZE = 1_000
DEFAULT_PAGE_SIZE = 5_000  # syncctl pull's and run's --page-size
GOAL_VS_COPY = Goal(Direction.AT_LEAST, 0.3)
GOAL_RATE = Goal(Direction.AT_LEAST, 20_000, absolute=True, unit="ev/s")
GOAL_RSS = Goal(Direction.AT_MOST, 150, absolute=True, unit="MiB")


@contextmanager
def simulator(customers: int) -> Iterator[tuple[str, str]]:
    token = secrets.token_hex(16)
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.simulated_tritonx", str(customers), str(SEED), token],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the simulator did not start: {url!r}")
        yield url, token
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _fetch_all(url: str, token: str) -> tuple[list[Any], float]:
    client = TritonXClient(url, token)
    records: list[Any] = []
    cursor: str | None = None
    started = time.perf_counter()
    while True:
        page = client.fetch_changes(cursor, PAGE_SIZE)
        records.extend(page.changes)
        cursor = page.next_cursor
        if not page.has_more:
            break
    seconds = time.perf_counter() - started
    client.close()
    return records, seconds


def _copy_baseline(server: Server, records: list[Any]) -> float:
    s = statements()
    with server.clone() as dsn:
        with psycopg.connect(dsn) as conn:
            conn.execute(s["staging_create"])
            conn.commit()
        settle(dsn)
        with psycopg.connect(dsn) as conn:
            started = time.perf_counter()
            for k in range(0, len(records), PAGE_SIZE):
                with conn.transaction(), conn.cursor().copy(s["staging_copy"]) as copy:
                    copy.set_types(INBOX_TYPES)
                    for record in records[k : k + PAGE_SIZE]:
                        copy.write_row(inbox_row("tritonx", record))
            return len(records) / (time.perf_counter() - started)


def _pull_child(
    server: Server, url: str, token: str, page_size: int, *, land_only: bool = False
) -> dict[str, Any]:
    with server.clone() as dsn:
        if land_only:
            with psycopg.connect(dsn) as conn:
                conn.execute(statements()["staging_create"])
        settle(dsn)
        done = subprocess.run(
            [sys.executable, "-m", "bench.pull_process", dsn, url, token, str(page_size)]
            + (["land-only"] if land_only else []),
            check=True,
            capture_output=True,
            text=True,
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@dataclass(frozen=True)
class Measured:
    pulls: dict[int, dict[str, Any]]  # by page size: the child's report
    land_only: dict[str, Any]
    copy_rate: float
    serve_rate: float


_cache: dict[tuple[str, int], Measured] = {}


def _measure(server: Server, data: Dataset, log: Callable[[str], None]) -> Measured:
    key = (server.shop.name, data.size)
    where = f"pull {server.shop.name} {size_label(data.size)}"
    if key not in _cache:
        with simulator(data.size) as (url, token):
            log(f"{where}: fetching the feed once (baseline's rows)")
            records, fetch_seconds = _fetch_all(url, token)
            log(f"{where}: COPY baseline")
            copy_rate = _copy_baseline(server, records)
            del records
            log(f"{where}: the controller's pipeline without the apply, in a child process")
            land_only = _pull_child(server, url, token, PAGE_SIZE, land_only=True)
            pulls = {}
            for page_size in (PAGE_SIZE, DEFAULT_PAGE_SIZE):
                log(f"{where}: controller pulling in a child process, pages of {page_size:,}")
                pulls[page_size] = _pull_child(server, url, token, page_size)
        _cache[key] = Measured(pulls, land_only, copy_rate, data.size / fetch_seconds)
    return _cache[key]


def _rate(child: dict[str, Any]) -> float:
    return float(child["events"]) / float(child["seconds"])


def run(server: Server, data: Dataset, log: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    measured = _measure(server, data, log)
    size = size_label(data.size)
    rows: list[Row] = []
    for page_size, child in measured.pulls.items():
        name = f"pull end-to-end, pages {size_label(page_size)}"
        rate = _rate(child)
        note = "" if child["states"].get("applied") == data.size else f"states {child['states']}"
        if page_size == PAGE_SIZE:
            rows.append(
                Row(
                    name,
                    size,
                    rate,
                    "ev/s",
                    "COPY BINARY from Python",
                    measured.copy_rate,
                    GOAL_VS_COPY,
                    note,
                )
            )
        rows.append(Row(name, size, rate, "ev/s", "absolute", None, GOAL_RATE, note))
    rows.append(
        Row(
            f"pull without the apply (land only), pages {size_label(PAGE_SIZE)}",
            size,
            _rate(measured.land_only),
            "ev/s",
            "COPY BINARY from Python",
            measured.copy_rate,
            None,
            "ceiling, info",
        )
    )
    rows.append(
        Row(
            "simulator feed alone (fetch+decode)",
            size,
            measured.serve_rate,
            "ev/s",
            "ceiling, info",
        )
    )
    return rows, []


def memory(
    server: Server, data: Dataset, log: Callable[[str], None]
) -> tuple[list[Row], list[str]]:
    measured = _measure(server, data, log)
    return [
        Row(
            f"controller peak RSS while pulling, pages {size_label(page_size)}",
            size_label(data.size),
            child["rss_peak_mib"],
            "MiB",
            f"after imports: {child['rss_idle_mib']:.0f} MiB (VmHWM)",
            None,
            GOAL_RSS,
        )
        for page_size, child in measured.pulls.items()
    ], []
