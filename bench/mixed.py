"""Scenario `mixed`: feed pages in which 1% of the events are merges, 1% anonymisations and 1%
deletes (the rest version-2 upserts), against pages of upserts only, in the same run. Both start
from a fresh clone holding the N customers of the insert run (applied untimed through the same
path) with one order each, so a merge re-points an order, an anonymisation scrubs one and a
delete anonymises (the order is bookkeeping); both then
apply N events of the same customers in the same order, through the real trigger path in pages
(`apply.stage_pages`), timed from each page's transaction start to its commit. Three runs of
each, alternating, on a fresh clone each; the medians are compared (the host is shared)."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import psycopg

from bench import inbox_copy
from bench.apply import Timing, stage_pages
from bench.databases import Server
from bench.dataset import ChangeRun, Dataset, feed_mix
from bench.report import Direction, Goal, Row, size_label
from bench.statements import settle

PAGE_SIZES = (1_000, 5_000)
EVERY = 100  # one merge, one anonymisation and one delete in every 100 events
GOAL = Goal(Direction.AT_LEAST, 0.5)
REPEATS = 3


def _timed(server: Server, data: Dataset, run: ChangeRun, page_size: int) -> Timing:
    with server.clone() as dsn:
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            stage_pages(conn, data.inserts, 10_000)
            conn.execute(
                "INSERT INTO shop.orders (customer_id, order_number)"
                " SELECT c.id, 'bench-' || c.id FROM shop.customer AS c"
            )
            conn.commit()
        settle(dsn)
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            return stage_pages(conn, run, page_size)


def run(server: Server, data: Dataset, log: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    size = size_label(data.size)
    upserts = feed_mix(data.size)
    mixed = feed_mix(data.size, merge_every=EVERY, anonymise_every=EVERY, delete_every=EVERY)
    rows: list[Row] = []
    notes: list[str] = []
    for page_size in PAGE_SIZES:
        if page_size > data.size:
            continue
        bases: list[Timing] = []
        mines: list[Timing] = []
        for attempt in range(1, REPEATS + 1):
            log(f"mixed {size}: upsert-only pages of {page_size} ({attempt}/{REPEATS})")
            bases.append(_timed(server, data, upserts, page_size))
            log(f"mixed {size}: 1% merges, anonymisations, deletes, pages of {page_size}")
            mines.append(_timed(server, data, mixed, page_size))
        rows.append(
            Row(
                f"apply 1% merge + 1% anonymise + 1% delete, pages {size_label(page_size)}",
                size,
                statistics.median(t.rate for t in mines),
                "ev/s",
                f"upsert-only pages, medians of {REPEATS}",
                statistics.median(t.rate for t in bases),
                GOAL,
            )
        )
        notes.append(
            f"mixed {size}, pages {size_label(page_size)}: "
            f"{' '.join(f'{t.rate:,.0f}' for t in mines)} ev/s against upsert-only "
            f"{' '.join(f'{t.rate:,.0f}' for t in bases)}; outcomes {dict(mines[0].outcomes)}"
        )
    return rows, notes
