"""A `statement_timeout` on the daemon's login shorter than a page's apply: the feed stages
smaller pages (halving, down to one record) until they fit, says so once per change, and
catches up with every event decided; with the time back it grows towards --page-size again.
The daemon's own cancel on a stop (after the stop's grace) is no time-out: the page size stays.

The apply's time depends on the page's size, deterministically: a shop trigger sleeps for every
customer row written (the time per row is read from a table, so the test can take it away)."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from syncctl import controller
from syncctl.controller import TIMED_OUT_ALONE
from syncctl.database import connect
from syncctl.metrics import Metrics
from syncctl.simulator.server import SimulatorServer
from syncctl.tritonx import TritonXClient
from tests.integration.test_daemon_serving import running, wait

PAGE_SIZE = 64
# a page of 64 rows sleeps 640 ms, 32 rows 320 ms: both exceed it; 8 rows sleep 80 ms
TIMEOUT_MS = 300
SECONDS_PER_ROW = 0.01

SLOW_CUSTOMER_ROWS = """
CREATE TABLE public.test_slowness (seconds float8 NOT NULL);
INSERT INTO public.test_slowness VALUES (0);
GRANT SELECT ON public.test_slowness TO PUBLIC;
CREATE FUNCTION public.test_slow_customer_row() RETURNS trigger
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_catalog.pg_sleep(s.seconds) FROM public.test_slowness AS s;
    RETURN NEW;
END $$;
CREATE TRIGGER test_slow BEFORE INSERT OR UPDATE ON shop.customer
    FOR EACH ROW EXECUTE FUNCTION public.test_slow_customer_row();
"""


@pytest.fixture
def slow_shop(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """Every customer row written sleeps; new sessions of this database's login get the
    statement_timeout (as a DBA sets it for the daemon's login role)."""
    conn.execute(SLOW_CUSTOMER_ROWS)
    conn.execute("UPDATE public.test_slowness SET seconds = %s", [SECONDS_PER_ROW])
    conn.execute(
        sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET statement_timeout = {}").format(
            sql.Identifier(conn.info.dbname), sql.Literal(f"{TIMEOUT_MS}ms")
        )
    )
    conn.commit()
    return conn


@contextmanager
def simulated(customers: int) -> Iterator[tuple[SimulatorServer, TritonXClient]]:
    with (
        SimulatorServer(customers=customers, seed=17) as server,
        TritonXClient(server.url, server.token, timeout=5.0) as client,
    ):
        yield server, client


@pytest.fixture
def tritonx() -> Iterator[tuple[SimulatorServer, TritonXClient]]:
    with simulated(150) as served:
        yield served


def _value(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    conn.commit()
    return None if row is None else row[0]


def _assert_caught_up(conn: psycopg.Connection[Any], server: SimulatorServer) -> None:
    last_seq = server.state.last_seq
    assert _value(conn, "SELECT last_seq FROM sync.cursor WHERE source = 'tritonx'") == last_seq
    assert _value(conn, "SELECT count(*) FROM sync.inbox WHERE source = 'tritonx'") == last_seq
    undecided = "SELECT count(*) FROM sync.inbox_status WHERE state = 'pending'"
    assert _value(conn, undecided) == 0


def _lowered(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m for m in caplog.messages if "page size lowered" in m]


def test_pull_lowers_the_page_size_until_pages_fit_the_statement_timeout(
    slow_shop: psycopg.Connection[Any],
    tritonx: tuple[SimulatorServer, TritonXClient],
    dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, client = tritonx
    caplog.set_level(logging.INFO, logger="syncctl")
    with connect(dsn) as daemon_login:
        report = controller.pull(daemon_login, client, page_size=PAGE_SIZE)
    assert report.caught_up
    _assert_caught_up(slow_shop, server)
    lowered = _lowered(caplog)
    assert lowered[0] == (
        f"page apply exceeded statement_timeout ({TIMEOUT_MS} ms); page size lowered to 32"
    )
    assert f"page apply exceeded statement_timeout ({TIMEOUT_MS} ms); page size lowered to 16" in (
        lowered
    )
    # once per change: never the same line twice in a row
    assert all(a != b for a, b in itertools.pairwise(lowered))
    applied = _value(slow_shop, "SELECT count(*) FROM shop.customer")
    assert applied == 150


@pytest.mark.slow
def test_the_daemon_lowers_the_page_size_and_grows_it_back(
    slow_shop: psycopg.Connection[Any], dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Growing back takes runs of full pages at each lowered size (10 a size, more for one that
    timed out again when grown into): rounds of activity enough for it."""
    with simulated(600) as (server, client):
        _grow_back(slow_shop, server, client, dsn, caplog)


def _grow_back(
    slow_shop: psycopg.Connection[Any],
    server: SimulatorServer,
    client: TritonXClient,
    dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="syncctl")
    metrics = Metrics(healthy_within=60)
    with running(dsn, client, page_size=PAGE_SIZE, on_pull=metrics.observe_pull) as daemon:
        wait(
            lambda: _value(slow_shop, "SELECT count(*) FROM shop.customer") == 600,
            "the slow import caught up",
            seconds=120,
        )
        assert _lowered(caplog)[0].endswith("page size lowered to 32")
        size = metrics.registry.get_sample_value("syncctl_page_size")
        # a page of 64 never fits while every row sleeps
        assert size is not None and size < PAGE_SIZE
        # the time is back: a run of full pages grows the size to --page-size again
        slow_shop.execute("UPDATE public.test_slowness SET seconds = 0")
        slow_shop.commit()
        # rounds of activity until it has: a size that timed out again as soon as it was
        # grown into during the import waits a longer run of full pages the next time
        grown = f"page size raised to {PAGE_SIZE}"
        for seed in range(4, 12):
            server.state.random_activity(600, rng_seed=seed)
            wait(
                lambda: (
                    _value(slow_shop, "SELECT last_seq FROM sync.cursor") == server.state.last_seq
                ),
                "the daemon caught up with the round",
                seconds=120,
            )
            if grown in caplog.messages:
                break
        assert grown in caplog.messages, "the page size grew back"
        wait(
            lambda: _value(slow_shop, "SELECT last_seq FROM sync.cursor") == server.state.last_seq,
            "the daemon caught up",
            seconds=120,
        )
    assert "error" not in daemon.result
    _assert_caught_up(slow_shop, server)
    assert metrics.registry.get_sample_value("syncctl_page_size") == PAGE_SIZE


def test_a_record_that_times_out_alone_is_retried_and_the_leader_says_why(
    slow_shop: psycopg.Connection[Any],
    tritonx: tuple[SimulatorServer, TritonXClient],
    dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, client = tritonx
    slow_shop.execute("UPDATE public.test_slowness SET seconds = %s", [TIMEOUT_MS / 1000 * 2])
    slow_shop.commit()
    caplog.set_level(logging.INFO, logger="syncctl")
    state = (
        "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
        " AND application_name LIKE 'syncctl run: feed %'"
    )
    with running(dsn, client, page_size=4) as daemon:
        wait(
            lambda: _value(slow_shop, state) == f"syncctl run: feed {TIMED_OUT_ALONE}",
            "the leader says why the feed does not move",
        )
        wait(
            lambda: any(
                m.startswith(f"change feed {TIMED_OUT_ALONE}: QueryCanceled")
                for m in caplog.messages
            ),
            "the log says why",
        )
        assert _value(slow_shop, "SELECT count(*) FROM shop.customer") == 0
        # the time is back: the same record applies, and the feed goes on from it
        slow_shop.execute("UPDATE public.test_slowness SET seconds = 0")
        slow_shop.commit()
        wait(
            lambda: _value(slow_shop, "SELECT count(*) FROM shop.customer") == 150,
            "the feed went on",
            seconds=120,
        )
    assert "error" not in daemon.result
    _assert_caught_up(slow_shop, server)
    assert [m for m in _lowered(caplog) if m.endswith("lowered to 1")] != []


def test_the_daemons_own_cancel_on_a_stop_keeps_the_page_size(
    conn: psycopg.Connection[Any],
    tritonx: tuple[SimulatorServer, TritonXClient],
    dsn: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A statement_timeout is set (a minute), and the stop's grace cancels the page first: the
    cancel is the daemon's own, not a time-out."""
    _, client = tritonx
    conn.execute(
        sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET statement_timeout = '60s'").format(
            sql.Identifier(conn.info.dbname)
        )
    )
    conn.commit()
    monkeypatch.setattr(controller, "STOP_GRACE_SECONDS", 0.2)
    caplog.set_level(logging.INFO, logger="syncctl")
    stop = threading.Event()
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    with psycopg.connect(dsn) as dba, connect(dsn) as daemon_login:
        dba.execute("LOCK TABLE shop.customer IN ACCESS EXCLUSIVE MODE")
        result: list[controller.PullReport] = []
        thread = threading.Thread(
            target=lambda: result.append(
                controller.pull(daemon_login, client, page_size=PAGE_SIZE, stop=stop)
            ),
            daemon=True,
        )
        thread.start()
        try:
            wait(lambda: _value(conn, waiting) >= 1, "the page waits for the lock")
            stop.set()
            thread.join(timeout=60)
        finally:
            stop.set()
            dba.rollback()
    assert result and not result[0].caught_up
    assert "stopping: cancelling the statement" in " ".join(caplog.messages)
    assert _lowered(caplog) == []


def test_pull_retries_a_record_that_times_out_alone_then_gives_up(
    slow_shop: psycopg.Connection[Any],
    tritonx: tuple[SimulatorServer, TritonXClient],
    dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, client = tritonx
    slow_shop.execute("UPDATE public.test_slowness SET seconds = %s", [TIMEOUT_MS / 1000 * 2])
    slow_shop.commit()
    caplog.set_level(logging.INFO, logger="syncctl")
    with connect(dsn) as daemon_login, pytest.raises(psycopg.errors.QueryCanceled):
        controller.pull(
            daemon_login,
            client,
            page_size=2,
            max_attempts=3,
            backoff=controller.Backoff(base=0.01),
        )
    retried = [m for m in caplog.messages if m.startswith("pull retry")]
    assert len(retried) == 2
    assert retried[0].endswith(f"{TIMED_OUT_ALONE}: QueryCanceled (SQLSTATE 57014)")
    assert _value(slow_shop, "SELECT count(*) FROM shop.customer") == 0
    assert _value(slow_shop, "SELECT count(*) FROM sync.cursor WHERE last_seq IS NOT NULL") == 0
