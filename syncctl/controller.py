"""The controller: pulls tritonX's change feed page by page into the inbox until it is caught
up (`pull`), or keeps doing so on an interval until told to stop (`run`). Transient tritonX
failures are retried with exponential backoff and full jitter, never sooner than the
Retry-After tritonX asked for. Logs name sequence numbers, counts and event ids only."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from syncctl.database import error_text
from syncctl.errors import CursorMoved, DatabaseUnavailable, TritonXError, TritonXUnavailable
from syncctl.leadership import Leadership
from syncctl.loader import inbox_rows, read_cursor, stage_page
from syncctl.outbox import deliver_due
from syncctl.refresh import process_refresh_requests, wait_for_requests
from syncctl.tritonx import ChangePage, ChangeSource, TritonXClient

log = logging.getLogger("syncctl.controller")

# The page's transaction rolled back as a whole; staging it again is safe and will succeed.
RETRYABLE_DATABASE_ERRORS = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)


@dataclass
class Backoff:
    """Exponential backoff with full jitter; `delay` honours a server's Retry-After."""

    base: float = 0.5
    cap: float = 60.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry_after: float | None = None) -> float:
        self.attempt += 1
        ceiling = min(self.cap, self.base * 2 ** (self.attempt - 1))
        jittered = self.rng.uniform(0, ceiling)
        return max(jittered, retry_after or 0.0)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class PullReport:
    pages: int = 0
    events: int = 0
    states: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    last_seq: int | None = None
    last_occurred_at: datetime | None = None
    caught_up: bool = False
    feed_last_seq: int | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def lag_seconds(self) -> float | None:
        """How far behind tritonX the last staged event was when the pull ended."""
        if self.last_occurred_at is None:
            return None
        return max(0.0, (datetime.now(UTC) - self.last_occurred_at).total_seconds())

    def merge(self, other: PullReport) -> None:
        self.pages += other.pages
        self.events += other.events
        self.states.update(other.states)
        self.retries += other.retries
        self.last_seq = other.last_seq or self.last_seq
        self.last_occurred_at = other.last_occurred_at or self.last_occurred_at
        # as of the latest pull
        self.caught_up = other.caught_up


class Stopped(Exception):
    """The stop event was set while waiting."""


def _sleep(stop: threading.Event, seconds: float) -> None:
    if stop.wait(seconds):
        raise Stopped()


def pull(
    conn: psycopg.Connection[Any],
    source: ChangeSource,
    *,
    page_size: int = 5000,
    stop: threading.Event | None = None,
    max_attempts: int | None = 8,
    backoff: Backoff | None = None,
    on_page: Callable[[PullReport], None] | None = None,
) -> PullReport:
    """Stage pages until the feed says there is no more (or `stop` is set).

    A transient failure is retried with backoff; after `max_attempts` in a row it is raised
    (None: retry for as long as it takes, as the daemon does)."""
    stop = stop or threading.Event()
    backoff = backoff or Backoff()
    report = PullReport()
    failures = 0
    # While a page is staged, the next one is fetched: the pull takes max(fetch, stage) a page
    # instead of their sum. A prefetched page is used only if the cursor it continues from is
    # the one the database holds; otherwise (a failure, another controller) it is dropped.
    fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tritonx-prefetch")
    prefetched: tuple[str, Future[tuple[ChangePage, list[tuple[Any, ...]]]]] | None = None

    def fetch_ahead(after: str) -> tuple[ChangePage, list[tuple[Any, ...]]]:
        page = source.fetch_changes(after, page_size)
        return page, inbox_rows(source.name, page.changes)

    try:
        while not stop.is_set():
            cursor = read_cursor(conn, source.name)
            conn.commit()  # end the read's transaction; staging opens its own
            try:
                rows: list[tuple[Any, ...]] | None = None
                if prefetched is not None and prefetched[0] == cursor:
                    page, rows = prefetched[1].result()
                else:
                    page = source.fetch_changes(cursor, page_size)
                prefetched = None
                if page.has_more:
                    prefetched = (page.next_cursor, fetcher.submit(fetch_ahead, page.next_cursor))
                outcome = stage_page(conn, source.name, cursor, page, rows)
            except (
                TritonXUnavailable,
                TritonXError,
                CursorMoved,
                *RETRYABLE_DATABASE_ERRORS,
            ) as exc:
                prefetched = None
                failures += 1
                report.retries += 1
                if max_attempts is not None and failures >= max_attempts:
                    raise
                retry_after = exc.retry_after if isinstance(exc, TritonXUnavailable) else None
                delay = backoff.delay(retry_after)
                log.warning("pull retry %d in %.2fs: %s", failures, delay, exc)
                try:
                    _sleep(stop, delay)
                except Stopped:
                    break
                continue
            failures = 0
            backoff.reset()
            report.pages += 1
            report.events += outcome.events
            report.states.update(outcome.states)
            report.last_seq = outcome.last_seq or report.last_seq
            report.last_occurred_at = outcome.last_occurred_at or report.last_occurred_at
            report.feed_last_seq = page.last_seq or report.feed_last_seq
            log.info(
                "page staged: %d events up to seq %s, %s",
                outcome.events,
                outcome.last_seq,
                dict(outcome.states),
            )
            if on_page is not None:
                on_page(report)
            if not page.has_more:
                report.caught_up = True
                break
    finally:
        fetcher.shutdown(wait=False, cancel_futures=True)
    report.finished = time.monotonic()
    return report


def run(
    connect: Callable[[bool], psycopg.Connection[Any]],
    client: TritonXClient,
    *,
    poll_interval: float = 5.0,
    page_size: int = 5000,
    stop: threading.Event,
    on_pull: Callable[[PullReport], None] | None = None,
    on_refresh_latency: Callable[[float], None] | None = None,
    on_cycle: Callable[[psycopg.Connection[Any]], None] | None = None,
) -> PullReport:
    """The daemon loop, while this process is the leader: answer refresh requests (woken by
    NOTIFY), deliver the outbox, pull until caught up, then wait `poll_interval` (answering
    refreshes as they come), again, until `stop`. A standby waits for the leader's lock.

    A lost database connection or a tritonX outage never ends the loop; it backs off."""
    total = PullReport()
    backoff = Backoff()
    conn: psycopg.Connection[Any] | None = None
    listener: psycopg.Connection[Any] | None = None
    leadership: Leadership | None = None
    standby_logged = False

    def refresh() -> None:
        assert conn is not None
        process_refresh_requests(conn, client, on_latency=on_refresh_latency)

    while not stop.is_set():
        try:
            if listener is None or listener.closed:
                listener = connect(True)
                listener.execute("LISTEN syncctl_refresh")
                leadership = Leadership(listener)
            assert leadership is not None
            if not leadership.try_acquire():
                if not standby_logged:
                    log.info("standing by: another controller is the leader")
                    standby_logged = True
                stop.wait(1.0)
                continue
            if standby_logged:
                log.info("this controller is the leader now")
                standby_logged = False
            if conn is None or conn.closed:
                conn = connect(False)
            refresh()
            deliver_due(conn, client)
            report = pull(
                conn, client, page_size=page_size, stop=stop, max_attempts=None, backoff=backoff
            )
            total.merge(report)
            if on_pull is not None:
                on_pull(report)
            if on_cycle is not None:
                on_cycle(conn)
            deadline = time.monotonic() + poll_interval
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if wait_for_requests(listener, min(0.5, left)):
                    refresh()
            continue
        except (psycopg.Error, DatabaseUnavailable) as exc:
            # the primary message names the object (a table the role may not read, say);
            # error_text drops the ones that quote a value
            log.error(
                "database error, reconnecting: %s: %s",
                type(exc).__name__,
                error_text(exc) if isinstance(exc, psycopg.Error) else exc,
            )
            for connection in (conn, listener):
                if connection is not None:
                    connection.close()
            conn = listener = None
            leadership = None
        stop.wait(backoff.delay())
    if leadership is not None:
        leadership.release()
    for connection in (conn, listener):
        if connection is not None:
            connection.close()
    total.finished = time.monotonic()
    return total
