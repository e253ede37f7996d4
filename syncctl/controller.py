"""The controller: pulls tritonX's change feed page by page into the inbox until it is caught
up (`pull`), or runs the daemon (`run`). While it is the leader, the daemon gives each part its
turn in a loop: the change feed, refresh requests (woken by NOTIFY), outbox delivery and the
per-cycle jobs (payload retention, the daily GDPR job, metrics). Every part has its own error
handling and its own backoff: a failing, stalled or refused feed, or a bug in one part, holds
up none of the others and ends nothing. The feed is fetched in a worker thread, one bounded
attempt at a time, and remembers when to try again instead of sleeping in a retry loop; the
worker fetches, decodes and types page n+1 while the database applies page n (all database
work stays on the caller's connection, in feed order), and a fetch still in flight when the
controller stops holds up neither its return nor the process's exit.
Transient tritonX failures are retried with exponential backoff and full jitter, never sooner
than the Retry-After tritonX asked for; a refusal (TritonXRefused: a refused token, a 4xx, a URL
that is not one) only slowly. Logs name sequence numbers, counts, event ids and error classes
only."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from syncctl import queries
from syncctl.database import error_text
from syncctl.errors import (
    CursorMoved,
    DatabaseUnavailable,
    PageNotStaged,
    SyncctlError,
    TritonXProtocolError,
    TritonXRefused,
    TritonXUnavailable,
)
from syncctl.leadership import Leadership
from syncctl.loader import PageOutcome, inbox_rows, read_cursor, stage_page
from syncctl.outbox import deliver_due
from syncctl.refresh import process_refresh_requests, wait_for_requests
from syncctl.tritonx import ChangePage, ChangeSource, TritonXClient

log = logging.getLogger("syncctl.controller")

# The page's transaction rolled back as a whole; staging it again is safe and will succeed.
RETRYABLE_DATABASE_ERRORS = (
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)
# SIGTERM/SIGINT: how long the step in hand may take before its statement is cancelled
STOP_GRACE_SECONDS = 10.0
# A refused feed is asked again this often: a token or a URL is fixed by a person.
REFUSED_RETRY_SECONDS = 300.0
# A page whose apply exceeds the session's statement_timeout is staged again at half the size
# (down to one record); after this many full pages applied without a time-out the size doubles,
# up to the configured one. A size that times out again as soon as it was grown into doubles the
# run the next try waits for (up to GROW_AFTER_PAGES_MAX); a grown size that fits resets it.
GROW_AFTER_PAGES = 10
GROW_AFTER_PAGES_MAX = 160
# The feed's state while one record alone exceeds the statement_timeout (it may wait for a lock)
TIMED_OUT_ALONE = "statement_timeout at page size 1"


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
    # the feed's page size in use (lowered under a statement_timeout); None: not known here
    page_size: int | None = None

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
        self.page_size = other.page_size or self.page_size
        # as of the latest pull
        self.caught_up = other.caught_up

    def add(self, staged: StagedPage) -> None:
        """Count one staged page."""
        outcome = staged.outcome
        self.pages += 1
        self.events += outcome.events
        self.states.update(outcome.states)
        self.last_seq = outcome.last_seq or self.last_seq
        self.last_occurred_at = outcome.last_occurred_at or self.last_occurred_at
        self.feed_last_seq = staged.page.last_seq or self.feed_last_seq
        self.caught_up = not staged.page.has_more
        # an empty page (caught up, every poll interval) only at debug level
        log.log(
            logging.INFO if outcome.events else logging.DEBUG,
            "page staged: %d events up to seq %s, %s",
            outcome.events,
            outcome.last_seq,
            dict(outcome.states),
        )


def describe(exc: BaseException) -> str:
    """An error for a log line: syncctl's own messages (they name hosts, statuses, numbers and
    ids only), a database error's class and SQLSTATE (with its primary message when it is a
    privilege or a missing object, which names the object, never a value), anything else by
    class and the place it was raised, never its message (a library or a bug may quote a
    value)."""
    if isinstance(exc, SyncctlError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, psycopg.Error):
        if (exc.sqlstate or "").startswith("42"):
            return f"{type(exc).__name__}: {error_text(exc)}"
        return f"{type(exc).__name__} (SQLSTATE {exc.sqlstate or '-'})"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{where}"


def feed_state(exc: BaseException) -> str:
    """What a failure says about the feed, as status, logs and pg_stat_activity show it."""
    if isinstance(exc, TritonXRefused):
        return exc.state
    if isinstance(exc, TritonXUnavailable):
        return "unavailable"
    if isinstance(exc, TritonXProtocolError):
        return "not the contract"
    return "failing"


@dataclass
class StagedPage:
    page: ChangePage
    outcome: PageOutcome


T = TypeVar("T")


class Worker:
    """One daemon thread that runs what is submitted, one job after another. Daemon, unlike a
    ThreadPoolExecutor's: a job still running when its owner stops (a fetch from a stalled
    tritonX, up to the client's timeout) delays neither the owner nor the process's exit. Only
    for work that may be abandoned half-way: the feed's worker fetches and decodes, and never
    touches the database."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None]
        self._jobs = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        if self._closed:
            future.cancel()
        else:
            self._jobs.put((future, job))
        return future

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            future, job = item
            if self._closed:
                future.cancel()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = job()
            except BaseException as exc:  # the future holds it for whoever asks
                future.set_exception(exc)
            else:
                future.set_result(result)

    def close(self) -> None:
        """Cancel what has not started; what runs is abandoned (the thread ends after it)."""
        self._closed = True
        self._jobs.put(None)


class Feed:
    """The change feed as one part of a cycle. `step` makes one bounded attempt: it stages the
    page the worker thread fetched, when it has come, and starts the next fetch when one is due
    (at once while tritonX has more; `poll_interval` after catching up; after the backoff once
    it failed; `refused_retry` after a refusal). A fetch that hangs holds up nothing but the
    feed. Staging runs on the caller's connection and thread.

    A page cancelled by the session's statement_timeout is staged again at once at half the
    size (`page_size` is the size in use, down to 1); GROW_AFTER_PAGES full pages later it
    doubles again, up to `configured_page_size` (a size that fails again as soon as it was grown
    into waits twice as many pages the next time). A cancel while `stop` is set is the
    controller's own (the stop's grace), not a time-out: the size stays."""

    def __init__(
        self,
        source: ChangeSource,
        *,
        page_size: int = 5000,
        poll_interval: float = 5.0,
        backoff: Backoff | None = None,
        refused_retry: float = REFUSED_RETRY_SECONDS,
        keep_payloads: bool = True,
        stop: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.keep_payloads = keep_payloads
        self.configured_page_size = page_size
        self.page_size = page_size
        self.timed_out = False
        self._full_pages = 0
        # full pages at a lowered size before it is doubled; True while a grown size is tried
        self._grow_after = GROW_AFTER_PAGES
        self._probing = False
        self._rewind = False
        self._stop = stop or threading.Event()
        self.poll_interval = poll_interval
        self.backoff = backoff or Backoff()
        self.refused_retry = refused_retry
        self.state = "starting"
        self.not_before = 0.0
        self.retry_in = 0.0
        self._worker = Worker("tritonx-feed")
        self._fetch: tuple[str | None, Future[tuple[ChangePage, list[tuple[Any, ...]]]]] | None
        self._fetch = None

    def _fetch_page(
        self, after: str | None, rewind: bool = False
    ) -> tuple[ChangePage, list[tuple[Any, ...]]]:
        """Fetch, decode and type one page (in the worker thread). The decoded records are let
        go once their inbox rows exist: the controller holds each page once, not twice.
        `rewind`: the pages from `after` on come in another size than they were asked in (a
        client that checks where next cursors lead is told so)."""
        rewound = getattr(self.source, "rewind", None)
        if rewind and rewound is not None:
            rewound(after)
        page = self.source.fetch_changes(after, self.page_size)
        rows = inbox_rows(self.source.name, page.changes)
        return replace(page, changes=[]), rows

    @property
    def fetching(self) -> bool:
        """A fetch is in flight."""
        return self._fetch is not None and not self._fetch[1].done()

    @property
    def due_in(self) -> float:
        """Seconds until `step` has something to do (0: now)."""
        if self._fetch is not None:
            return float("inf") if self.fetching else 0.0
        return max(0.0, self.not_before - time.monotonic())

    def step(self, conn: psycopg.Connection[Any]) -> StagedPage | None:
        """Stage the fetched page if it has come (None when nothing was staged). A failure is
        raised after it has set the feed's state and the time of its next attempt."""
        if self._fetch is None:
            if time.monotonic() < self.not_before:
                return None
            cursor = read_cursor(conn, self.source.name)
            conn.commit()  # end the read's transaction; staging opens its own
            rewind, self._rewind = self._rewind, False
            self._fetch = (cursor, self._worker.submit(lambda: self._fetch_page(cursor, rewind)))
        after, future = self._fetch
        if not future.done():
            return None
        self._fetch = None
        try:
            page, rows = future.result()
            if page.has_more:
                # the next page is fetched while this one is staged: the feed takes
                # max(fetch, stage) a page instead of their sum
                following = page.next_cursor
                self._fetch = (following, self._worker.submit(lambda: self._fetch_page(following)))
            outcome = stage_page(
                conn, self.source.name, after, page, rows, keep_payloads=self.keep_payloads
            )
        except Exception as exc:
            # a page fetched ahead may not follow the cursor the database holds: read it again
            self._fetch = None
            timeout_ms = self._statement_timeout(conn, exc)
            self.timed_out = timeout_ms is not None
            if timeout_ms is not None and self.page_size > 1:
                self._lower_page_size(timeout_ms)
                return None
            self._failed(exc)
            raise
        self.timed_out = False
        self.backoff.reset()
        self._grow_page_size(outcome.events)
        if page.has_more:
            self._set_state("catching up")
        else:
            self._set_state("caught up")
            self.not_before = time.monotonic() + self.poll_interval
        return StagedPage(page, outcome)

    def _statement_timeout(self, conn: psycopg.Connection[Any], exc: Exception) -> int | None:
        """The session's statement_timeout in ms when it cancelled the page: a cancel
        (SQLSTATE 57014) while the session has one, and not the controller's own on a stop.
        None otherwise."""
        if not isinstance(exc, psycopg.errors.QueryCanceled) or self._stop.is_set():
            return None
        if conn.closed or conn.broken:
            return None
        try:
            conn.rollback()
            row = queries.one(conn, "statement_timeout_ms")
            conn.rollback()
        except psycopg.Error:
            return None
        return int(row[0]) if row and row[0] else None

    def _lower_page_size(self, timeout_ms: int) -> None:
        """Stage the page again at once, half as large (the time-out's own wait was the
        pause). A size just grown into that failed again is tried half as often."""
        if self._probing:
            self._grow_after = min(GROW_AFTER_PAGES_MAX, self._grow_after * 2)
            self._probing = False
        self.page_size = max(1, self.page_size // 2)
        self._full_pages = 0
        self._rewind = True
        self.not_before = 0.0
        log.warning(
            "page apply exceeded statement_timeout (%d ms); page size lowered to %d",
            timeout_ms,
            self.page_size,
        )

    def _grow_page_size(self, events: int) -> None:
        """Count a full page at a lowered size; double the size after a run of them."""
        if self.page_size >= self.configured_page_size or events < self.page_size:
            return
        if self._probing:
            # the size grown into fits: the next step is tried as soon as the first was
            self._probing = False
            self._grow_after = GROW_AFTER_PAGES
        self._full_pages += 1
        if self._full_pages >= self._grow_after:
            self.page_size = min(self.configured_page_size, self.page_size * 2)
            self._full_pages = 0
            self._probing = True
            log.info("page size raised to %d", self.page_size)

    def _failed(self, exc: Exception) -> None:
        state = feed_state(exc) if not isinstance(exc, CursorMoved) else self.state
        if self.timed_out:
            state = TIMED_OUT_ALONE
        if isinstance(exc, TritonXRefused):
            delay = self.refused_retry
        else:
            delay = self.backoff.delay(
                exc.retry_after if isinstance(exc, TritonXUnavailable) else None
            )
        self.not_before = time.monotonic() + delay
        self.retry_in = delay
        self._set_state(state)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            log.info("change feed: %s", state)
        self.state = state

    def wait(self, stop: threading.Event, seconds: float) -> None:
        """Up to `seconds`: until the fetch in flight has come, or the next one is due."""
        if self._fetch is not None:
            wait_for_future([self._fetch[1]], timeout=seconds)
        else:
            stop.wait(min(seconds, max(0.0, self.not_before - time.monotonic())))

    def close(self) -> None:
        self._worker.close()


def pull(
    conn: psycopg.Connection[Any],
    source: ChangeSource,
    *,
    page_size: int = 5000,
    stop: threading.Event | None = None,
    max_attempts: int | None = 8,
    backoff: Backoff | None = None,
    on_page: Callable[[PullReport], None] | None = None,
    keep_payloads: bool = True,
) -> PullReport:
    """Stage pages until the feed says there is no more (or `stop` is set).

    A transient failure is retried with backoff; after `max_attempts` in a row it is raised
    (None: retry for as long as it takes). A refusal (TritonXRefused) is raised at once.
    `keep_payloads` False: the inbox keeps the records of dead letters only."""
    stop = stop or threading.Event()
    feed = Feed(
        source,
        page_size=page_size,
        poll_interval=0.0,
        backoff=backoff,
        keep_payloads=keep_payloads,
        stop=stop,
    )
    report = PullReport()
    failures = 0
    work = _StopGrace(stop, STOP_GRACE_SECONDS)
    work.connection = conn
    try:
        while not stop.is_set():
            try:
                staged = feed.step(conn)
            except (
                TritonXUnavailable,
                TritonXProtocolError,
                CursorMoved,
                PageNotStaged,
                psycopg.errors.QueryCanceled,
                *RETRYABLE_DATABASE_ERRORS,
            ) as exc:
                # a cancel is retried when the statement_timeout cancelled one record alone
                if isinstance(exc, psycopg.errors.QueryCanceled) and not feed.timed_out:
                    if not stop.is_set():
                        raise
                    conn.rollback()  # cancelled after the stop's grace: the page comes again
                    break
                failures += 1
                report.retries += 1
                if max_attempts is not None and failures >= max_attempts:
                    raise
                reason = f"{feed.state}: {describe(exc)}" if feed.timed_out else exc
                log.warning("pull retry %d in %.2fs: %s", failures, feed.retry_in, reason)
                continue
            if staged is None:
                feed.wait(stop, 0.5)
                continue
            failures = 0
            report.add(staged)
            report.page_size = feed.page_size
            if on_page is not None:
                on_page(report)
            if report.caught_up:
                break
    finally:
        work.finished.set()
        feed.close()
    report.finished = time.monotonic()
    return report


@dataclass
class Part:
    """One part of the daemon's cycle, run every `every` seconds (or sooner when asked),
    isolated: an exception ends this attempt only; it is logged (see `describe`) and the part
    waits out a backoff of its own. A lost database connection is raised as
    DatabaseUnavailable, for the daemon to connect again."""

    name: str
    action: Callable[[psycopg.Connection[Any]], object]
    every: float
    backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=300.0))
    next_at: float = 0.0
    failing: bool = False

    def __call__(self, conn: psycopg.Connection[Any], *, asked: bool = False) -> None:
        now = time.monotonic()
        if now < self.next_at and (self.failing or not asked):
            return
        try:
            self.action(conn)
        except Exception as exc:
            recover(conn, exc)
            delay = self.backoff.delay()
            self.next_at = now + delay
            self.failing = True
            log.error("%s failed: %s; next attempt in %.1f s", self.name, describe(exc), delay)
            return
        if self.failing:
            log.info("%s works again", self.name)
        self.backoff.reset()
        self.failing = False
        self.next_at = now + self.every


def recover(conn: psycopg.Connection[Any], exc: Exception) -> None:
    """After a part failed: end its transaction, or raise when the connection is gone."""
    if conn.closed or conn.broken:
        raise connection_lost(exc) from exc
    conn.rollback()


def connection_lost(exc: BaseException) -> DatabaseUnavailable:
    """The error a lost connection is logged as: what was lost, and the server's SQLSTATE
    when it said why (57P01: terminated by an administrator or a shutdown)."""
    code = exc.sqlstate if isinstance(exc, psycopg.Error) else None
    return DatabaseUnavailable(
        "the database connection was lost" + (f" (SQLSTATE {code})" if code else "")
    )


def _lost(exc: Exception, *connections: psycopg.Connection[Any] | None) -> Exception:
    """`exc` as a lost connection when it broke one of the daemon's connections."""
    if isinstance(exc, psycopg.Error) and any(
        c is not None and (c.closed or c.broken) for c in connections
    ):
        return connection_lost(exc)
    return exc


def run(
    connect: Callable[[bool], psycopg.Connection[Any]],
    client: TritonXClient,
    *,
    poll_interval: float = 5.0,
    page_size: int = 5000,
    stop: threading.Event,
    on_pull: Callable[[PullReport], None] | None = None,
    on_refresh_latency: Callable[[float], None] | None = None,
    every_cycle: Sequence[tuple[str, Callable[[psycopg.Connection[Any]], object]]] = (),
    refused_retry: float = REFUSED_RETRY_SECONDS,
    keep_payloads: bool = True,
    on_state: Callable[[bool, bool], None] | None = None,
) -> PullReport:
    """The daemon loop, while this process is the leader: stage the feed's pages as they come
    (`on_pull` sees each), answer refresh requests when NOTIFY wakes it (and every
    `poll_interval`), deliver the outbox and run `every_cycle`'s jobs every `poll_interval`,
    until `stop`. A standby waits for the leader's lock. `keep_payloads` False: the inbox
    keeps the records of dead letters only (loader.stage_page). `on_state(connected, leading)`
    hears whenever the daemon connects to the database, loses it, leads or stands by.

    Nothing ends the loop but `stop`: a failing part backs off on its own, a lost database
    connection is opened again after a backoff."""
    total = PullReport()
    backoff = Backoff()
    feed = Feed(
        client,
        page_size=page_size,
        poll_interval=poll_interval,
        refused_retry=refused_retry,
        keep_payloads=keep_payloads,
        stop=stop,
    )
    parts = [
        Part(
            "refresh",
            lambda c: process_refresh_requests(
                c, client, on_latency=on_refresh_latency, keep_payloads=keep_payloads
            ),
            poll_interval,
        ),
        Part("outbox delivery", lambda c: deliver_due(c, client), poll_interval),
        *(Part(name, action, poll_interval) for name, action in every_cycle),
    ]
    refresh = parts[0]
    work = _StopGrace(stop, STOP_GRACE_SECONDS)
    conn: psycopg.Connection[Any] | None = None
    listener: psycopg.Connection[Any] | None = None
    leadership: Leadership | None = None
    standby_logged = False
    shown_state = ""
    reconnecting = False
    state: tuple[bool, bool] | None = None

    def tell(connected: bool, leading: bool) -> None:
        nonlocal state
        if on_state is not None and state != (connected, leading):
            on_state(connected, leading)
        state = (connected, leading)

    while not stop.is_set():
        try:
            if listener is None or listener.closed:
                listener = connect(True)
                queries.run(listener, "listen_refresh")
                leadership = Leadership(listener)
                shown_state = ""
                if reconnecting:
                    log.info("connected to the database again")
                    reconnecting = False
            assert leadership is not None
            leading = leadership.try_acquire()
            tell(True, leading)
            if not leading:
                if not standby_logged:
                    log.info("standing by: another controller is the leader")
                    standby_logged = True
                stop.wait(1.0)
                continue
            if standby_logged:
                log.info("this controller is the leader now")
                standby_logged = False
            if conn is None or conn.closed:
                conn = work.connection = connect(False)
                # named after the leadership session: `syncctl status` shows its lock waits
                queries.run(conn, "name_work_session", leader=listener.info.backend_pid)
                conn.commit()
            _feed_turn(feed, conn, total, on_pull)
            if feed.state != shown_state:
                # pg_stat_activity and `syncctl status` show the leader's feed state
                queries.run(listener, "show_feed_state", state=feed.state)
                shown_state = feed.state
            for part in parts:
                part(conn)
            if _idle(listener, feed, stop, 0.5):
                refresh(conn, asked=True)
            backoff.reset()
            continue
        except Exception as exc:
            # a lost connection, or a failure outside the parts (leadership, LISTEN)
            log.error("%s; connecting again", describe(_lost(exc, conn, listener)))
            reconnecting = True
            tell(False, False)
            for connection in (conn, listener):
                if connection is not None:
                    connection.close()
            conn = listener = None
            leadership = None
        stop.wait(backoff.delay())
    work.finished.set()
    feed.close()
    if leadership is not None:
        leadership.release()
    for connection in (conn, listener):
        if connection is not None:
            connection.close()
    total.finished = time.monotonic()
    return total


class _StopGrace:
    """After `stop` is set the loop finishes the step in hand; a statement still running
    `grace` seconds later (a page waiting for a lock a DBA holds on the customer table) is
    cancelled, so the daemon stops well within a service manager's stop timeout. The statement's
    transaction rolls back with its cursor: nothing is half-applied, the page comes again."""

    def __init__(self, stop: threading.Event, grace: float) -> None:
        self.connection: psycopg.Connection[Any] | None = None
        self.finished = threading.Event()
        self._stop = stop
        self._grace = grace
        threading.Thread(target=self._watch, name="syncctl-stop-grace", daemon=True).start()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            if self.finished.is_set():
                return
        if self.finished.wait(self._grace):
            return
        connection = self.connection
        if connection is not None and not connection.closed:
            log.warning(
                "stopping: cancelling the statement still running after %.0f s; its "
                "transaction is rolled back and the cursor stays",
                self._grace,
            )
            connection.cancel_safe()


def _feed_turn(
    feed: Feed,
    conn: psycopg.Connection[Any],
    total: PullReport,
    on_pull: Callable[[PullReport], None] | None,
) -> None:
    """The feed's part of a cycle: like every part, a failure ends its turn only."""
    started = time.monotonic()
    try:
        staged = feed.step(conn)
    except Exception as exc:
        recover(conn, exc)
        total.retries += 1
        log.log(
            logging.ERROR if isinstance(exc, TritonXRefused) else logging.WARNING,
            "change feed %s: %s; next attempt in %.1f s",
            feed.state,
            describe(exc),
            feed.retry_in,
        )
        if on_pull is not None:
            on_pull(PullReport(retries=1, page_size=feed.page_size))
        return
    if staged is None:
        return
    # the page's time: staging and applying it (its fetch ran in the feed's worker meanwhile)
    report = PullReport(started=started, page_size=feed.page_size)
    report.add(staged)
    report.finished = time.monotonic()
    total.merge(report)
    if on_pull is not None:
        on_pull(report)


def _idle(
    listener: psycopg.Connection[Any], feed: Feed, stop: threading.Event, seconds: float
) -> bool:
    """Wait up to `seconds` for a refresh request (True) or the feed's next page (False)."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        if not feed.fetching:
            return wait_for_requests(listener, min(left, feed.due_in))
        # a page may come any moment: look for requests between short waits for it
        if wait_for_requests(listener, 0.0):
            return True
        feed.wait(stop, min(0.05, left))
    return False
