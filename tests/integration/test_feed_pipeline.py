"""The feed's pipeline: the worker fetches, decodes and types page n+1 while the database
applies page n, on a real database. Pages are applied in feed order, each exactly once; a fetch
that fails while the page before it applies costs that page nothing and is retried from the
cursor the database holds; a controller stopped with a fetch in flight returns, and its process
exits, without waiting for tritonX."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

import psycopg

from syncctl import controller, queries
from syncctl.errors import TritonXUnavailable
from syncctl.loader import read_cursor
from syncctl.tritonx import ChangePage
from tests.feed import upserted

SOURCE = "pipeline-test"
CUSTOMERS = 40
PAGES = 4


def _pages() -> list[list[dict[str, Any]]]:
    """Page k holds version k of every customer: applied out of order, some would be stale."""
    return [
        [upserted(f"TX7{n:07d}", version) for n in range(1, CUSTOMERS + 1)]
        for version in range(1, PAGES + 1)
    ]


class Pages:
    """A change source of fixed pages (cursor: the number of pages served). It records the
    cursor of every fetch; `on_fetch` runs in the worker thread before a fetch answers."""

    name = SOURCE

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.asked: list[str | None] = []
        self.on_fetch: Any = None

    def fetch_changes(self, after: str | None, limit: int) -> ChangePage:
        self.asked.append(after)
        if self.on_fetch is not None:
            self.on_fetch(after)
        k = int(after or 0)
        return ChangePage(list(self.pages[k]), str(k + 1), k + 1 < len(self.pages))

    def close(self) -> None:
        pass


class HeldCursor:
    """A second session holding the source's cursor row (FOR UPDATE): the controller's staging
    of a page waits until `release`. The controller's session gets a lock_timeout, so a
    controller that fetched the next page only after staging this one fails instead of
    waiting for ever."""

    def __init__(self, dsn: str, conn: psycopg.Connection[Any]) -> None:
        queries.run(conn, "cursor_ensure", source=SOURCE)
        conn.commit()
        conn.execute("SET lock_timeout = '60s'")
        conn.commit()
        self.session = psycopg.connect(dsn)
        queries.one(self.session, "cursor_lock", source=SOURCE)
        self.released_by: str | None = None

    def release(self, after: str | None) -> None:
        if self.released_by is None:
            self.released_by = after
            self.session.rollback()

    def close(self) -> None:
        self.session.close()


def _versions(conn: psycopg.Connection[Any]) -> dict[int, int]:
    rows = conn.execute(
        "SELECT c.tritonx_version, count(*) FROM shop.customer c"
        " WHERE c.customer_number LIKE 'TX7%' GROUP BY c.tritonx_version"
    ).fetchall()
    return {version: count for version, count in rows}


def test_the_next_page_is_fetched_while_one_applies_and_pages_apply_in_order(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    source = Pages(_pages())
    held = HeldCursor(dsn, conn)
    # the first page's staging waits for the cursor row; only a fetch of the second page
    # lets it go
    source.on_fetch = lambda after: held.release(after) if after == "1" else None
    try:
        report = controller.pull(conn, source, page_size=CUSTOMERS)
    finally:
        held.close()
    assert held.released_by == "1"
    assert source.asked == [None, "1", "2", "3"]
    assert report.states == {"applied": CUSTOMERS * PAGES} and report.caught_up
    assert _versions(conn) == {PAGES: CUSTOMERS}
    assert read_cursor(conn, SOURCE) == str(PAGES)


def test_a_fetch_failing_while_the_page_before_it_applies_costs_that_page_nothing(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    source = Pages(_pages())
    held = HeldCursor(dsn, conn)
    failed: list[str | None] = []

    def fail_once_while_held(after: str | None) -> None:
        if after == "1" and not failed:
            failed.append(after)
            held.release(after)
            raise TritonXUnavailable("tritonX at test answered 503 to GET /changes")

    source.on_fetch = fail_once_while_held
    try:
        report = controller.pull(
            conn, source, page_size=CUSTOMERS, backoff=controller.Backoff(base=0.001, cap=0.01)
        )
    finally:
        held.close()
    # the first page applied and moved the cursor; the second was asked again from there
    assert failed == ["1"] and source.asked == [None, "1", "1", "2", "3"]
    assert report.retries == 1 and report.caught_up
    assert report.states == {"applied": CUSTOMERS * PAGES}
    assert _versions(conn) == {PAGES: CUSTOMERS}


# run as a script by the test below: a controller stopped with a fetch that never answers
def _stop_with_a_fetch_in_flight(dsn: str) -> None:
    source = Pages(_pages())
    never = threading.Event()
    source.on_fetch = lambda after: never.wait() if after == "1" else None
    stop = threading.Event()
    with psycopg.connect(dsn) as conn:
        report = controller.pull(conn, source, stop=stop, on_page=lambda _: stop.set())
    print(json.dumps({"pages": report.pages, "asked": source.asked}), flush=True)


def test_a_controller_stopped_mid_pipeline_returns_and_exits_without_waiting_for_tritonx(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    script = (
        "import sys; from tests.integration.test_feed_pipeline import "
        "_stop_with_a_fetch_in_flight as run; run(sys.argv[1])"
    )
    # the fetch of the second page never answers: a process that waited for it would never end
    done = subprocess.run(
        [sys.executable, "-c", script, dsn], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"pages": 1, "asked": [None, "1"]}
    assert read_cursor(conn, SOURCE) == "1"
    assert _versions(conn) == {1: CUSTOMERS}
