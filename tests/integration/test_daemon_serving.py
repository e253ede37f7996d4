"""The daemon keeps serving: with the change feed failing, hanging or refused, with a malformed
refresh request or an exception in any part, refreshes are answered, the outbox is delivered,
nothing claimed is lost and the daemon runs on. The daemon runs in a thread against the
simulator over loopback HTTP and a real database."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest

from syncctl import controller
from syncctl.database import connect
from syncctl.simulator.server import ChaosConfig, SimulatorServer
from syncctl.tritonx import ChangePage, CustomerAnswer, TritonXClient


class RecordingTransport(httpx.BaseTransport):
    """Real HTTP, and the path of every request that went out (with the bearer token)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.raw_path.decode("ascii", "replace"))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()

    def feed_requests(self) -> int:
        return sum(path.startswith("/api/v1/customers/changes") for path in self.paths)


@dataclass
class Daemon:
    thread: threading.Thread
    stop: threading.Event
    result: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(customers=60, seed=9) as server:
        yield server


@pytest.fixture
def transport() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def client(simulator: SimulatorServer, transport: RecordingTransport) -> Iterator[TritonXClient]:
    with TritonXClient(simulator.url, simulator.token, timeout=1.0, transport=transport) as c:
        yield c


@contextmanager
def running(dsn: str, client: TritonXClient, **options: Any) -> Iterator[Daemon]:
    stop = threading.Event()
    daemon = Daemon(threading.Thread(), stop)

    def target() -> None:
        try:
            daemon.result["total"] = controller.run(
                lambda autocommit: connect(dsn, autocommit=autocommit),
                client,
                poll_interval=0.2,
                stop=stop,
                **options,
            )
        except BaseException as exc:  # the daemon ended: the test says so
            daemon.result["error"] = exc

    daemon.thread = threading.Thread(target=target, daemon=True)
    daemon.thread.start()
    try:
        yield daemon
    finally:
        stop.set()
        daemon.thread.join(timeout=60)


def wait(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")


def _one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    conn.commit()
    return None if row is None else row[0]


def _refreshed(conn: psycopg.Connection[Any], number: str) -> bool:
    count = _one(
        conn, "SELECT count(*) FROM sync.audit WHERE event_id LIKE %s", [f"refresh:{number}:%"]
    )
    return bool(count)


def _delivered(conn: psycopg.Connection[Any], number: str) -> bool:
    state: str | None = _one(
        conn, "SELECT state FROM sync.outbox WHERE customer_number = %s", [number]
    )
    return state == "delivered"


def _city(conn: psycopg.Connection[Any], number: str) -> Any:
    return _one(conn, "SELECT city FROM shop.customer WHERE customer_number = %s", [number])


def _anonymise_in_back_office(conn: psycopg.Connection[Any], number: str) -> None:
    conn.execute(
        "SELECT sync.anonymise_from_backoffice(sync.resolve_customer(%s), 'AVG', 'bo:1')",
        [number],
    )
    conn.commit()


def _import_then(
    trouble: ChaosConfig,
    simulator: SimulatorServer,
    client: TritonXClient,
    transport: RecordingTransport,
    conn: psycopg.Connection[Any],
) -> None:
    """Import the population, then let the trouble begin (requests are counted from here)."""
    controller.pull(conn, client)
    transport.paths.clear()
    simulator.set_chaos(trouble)


def _assert_served(
    simulator: SimulatorServer, conn: psycopg.Connection[Any], *, refresh: str, anonymise: str
) -> None:
    """A login's refresh request is answered and a back-office anonymisation delivered."""
    simulator.state.edit(refresh, city="Harderwijk")
    conn.execute("SELECT sync.request_refresh(%s)", [refresh])
    conn.commit()
    _anonymise_in_back_office(conn, anonymise)
    wait(lambda: _city(conn, refresh) == "Harderwijk", "the refresh was applied")
    wait(lambda: _delivered(conn, anonymise), "the outbox row was delivered")


@pytest.mark.parametrize(
    "trouble",
    [
        ChaosConfig(server_error=1.0, only="changes"),
        ChaosConfig(slow=1.0, slow_seconds=4.0, only="changes"),
        ChaosConfig(feed_status=500),
    ],
    ids=["answering-503", "hanging", "answering-500"],
)
def test_refreshes_and_the_outbox_are_served_while_the_change_feed_fails(
    trouble: ChaosConfig,
    simulator: SimulatorServer,
    client: TritonXClient,
    transport: RecordingTransport,
    conn: psycopg.Connection[Any],
    dsn: str,
) -> None:
    _import_then(trouble, simulator, client, transport, conn)
    with running(dsn, client) as daemon:
        # the daemon meets the failing feed first; only then are the requests made
        wait(lambda: transport.feed_requests() >= 2, "the daemon asked the feed twice")
        _assert_served(simulator, conn, refresh="TX00000007", anonymise="TX00000011")
        assert daemon.thread.is_alive(), daemon.result
    assert "error" not in daemon.result
    received = simulator.state.received_anonymize_requests
    assert [r["customer_number"] for r in received] == ["TX00000011"]


def test_a_malformed_refresh_number_neither_kills_the_daemon_nor_loses_other_refreshes(
    simulator: SimulatorServer,
    client: TritonXClient,
    transport: RecordingTransport,
    conn: psycopg.Connection[Any],
    dsn: str,
) -> None:
    # the feed fails: only refreshes can bring the edits
    _import_then(ChaosConfig(server_error=1.0, only="changes"), simulator, client, transport, conn)
    for number in ("TX00000003", "../../admin/x", "TX1\x01", "TX00000004\n", "TX00000005"):
        conn.execute(
            "INSERT INTO sync.refresh_request (customer_number, requested_at)"
            " VALUES (%s, clock_timestamp())",
            [number],
        )
    conn.commit()
    for number in ("TX00000003", "TX00000004", "TX00000005"):
        simulator.state.edit(number, city="Tiel")
    with running(dsn, client) as daemon:
        wait(
            lambda: all(_refreshed(conn, n) for n in ("TX00000003", "TX00000005")),
            "the well-formed refreshes were applied",
        )
        wait(lambda: _one(conn, "SELECT count(*) FROM sync.refresh_request") == 0, "queue empty")
        assert daemon.thread.is_alive(), daemon.result
        # still serving: a later request is answered
        conn.execute("SELECT sync.request_refresh('TX00000004')")
        conn.commit()
        wait(lambda: _city(conn, "TX00000004") == "Tiel", "a later refresh was applied")
    assert "error" not in daemon.result
    customer_paths = [p for p in transport.paths if not p.startswith("/api/v1/customers/changes")]
    assert set(customer_paths) == {
        "/api/v1/customers/TX00000003",
        "/api/v1/customers/TX00000004",
        "/api/v1/customers/TX00000005",
    }


class FaultyClient(TritonXClient):
    """A client with a bug: each call raises once (a message that stands for personal data)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.faults = {"fetch_changes", "fetch_customer", "request_anonymisation"}

    def _fault(self, name: str) -> None:
        if name in self.faults:
            self.faults.discard(name)
            raise KeyError("jan.jansen@example.nl")

    def fetch_changes(self, after: str | None, limit: int) -> ChangePage:
        self._fault("fetch_changes")
        return super().fetch_changes(after, limit)

    def fetch_customer(self, number: str) -> CustomerAnswer:
        self._fault("fetch_customer")
        return super().fetch_customer(number)

    def request_anonymisation(self, number: str, body: dict[str, Any]) -> None:
        self._fault("request_anonymisation")
        super().request_anonymisation(number, body)


def test_an_exception_in_any_part_ends_only_that_attempt(
    simulator: SimulatorServer,
    conn: psycopg.Connection[Any],
    dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs_run: list[int] = []

    def exploding_job(_conn: psycopg.Connection[Any]) -> None:
        jobs_run.append(1)
        raise RuntimeError("Jan Jansen, Dorpsstraat 1")

    def broken_query(job_conn: psycopg.Connection[Any]) -> None:
        job_conn.execute("SELECT 1 / 0")  # leaves the connection's transaction failed

    with TritonXClient(simulator.url, simulator.token) as plain:
        controller.pull(conn, plain)
    _anonymise_in_back_office(conn, "TX00000021")
    conn.execute("SELECT sync.request_refresh('TX00000022')")
    conn.commit()
    simulator.state.edit("TX00000022", city="Putten")
    caplog.set_level(logging.INFO, logger="syncctl")
    faulty = FaultyClient(simulator.url, simulator.token)
    with (
        faulty,
        running(
            dsn,
            faulty,
            every_cycle=[("exploding job", exploding_job), ("broken query", broken_query)],
        ) as daemon,
    ):
        wait(lambda: _city(conn, "TX00000022") == "Putten", "the refresh was applied")
        wait(lambda: _delivered(conn, "TX00000021"), "the outbox row was delivered")
        simulator.state.edit("TX00000023", city="Epe")
        wait(lambda: _city(conn, "TX00000023") == "Epe", "the feed was followed")
        wait(lambda: len(jobs_run) >= 2, "the failing job was tried again")
        assert not faulty.faults, "a fault was never injected"
        assert daemon.thread.is_alive(), daemon.result
    assert "error" not in daemon.result
    assert "exploding job failed: RuntimeError at test_daemon_serving.py" in caplog.text
    assert "broken query failed: DivisionByZero" in caplog.text
    assert "Jansen" not in caplog.text and "jan.jansen" not in caplog.text


def test_a_refused_feed_is_reported_as_such_and_retried_slowly_while_the_rest_is_served(
    simulator: SimulatorServer,
    client: TritonXClient,
    transport: RecordingTransport,
    conn: psycopg.Connection[Any],
    dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a token without the feed's scope
    _import_then(ChaosConfig(feed_status=403), simulator, client, transport, conn)
    caplog.set_level(logging.INFO, logger="syncctl")
    with running(dsn, client, refused_retry=3600.0) as daemon:
        wait(lambda: transport.feed_requests() >= 1, "the daemon asked the feed")
        _assert_served(simulator, conn, refresh="TX00000031", anonymise="TX00000032")
        shown = "syncctl run: feed token refused"
        wait(
            lambda: (
                _one(
                    conn,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    [shown],
                )
                == 1
            ),
            "the leader's session shows the refused token",
        )
        assert transport.feed_requests() == 1, "a refused feed was retried like an outage"
    assert daemon.result["total"].retries == 1
    assert "change feed token refused" in caplog.text
    assert f"tritonX at {client.host} refused the token: 403" in caplog.text
    assert simulator.token not in caplog.text


def test_pull_stops_at_once_when_the_token_is_refused(
    simulator: SimulatorServer, transport: RecordingTransport, conn: psycopg.Connection[Any]
) -> None:
    from syncctl.errors import TokenRefused

    with (
        TritonXClient(simulator.url, "wrong-token", transport=transport) as wrong,
        pytest.raises(TokenRefused) as refused,
    ):
        controller.pull(conn, wrong, backoff=controller.Backoff(base=0.01, cap=0.02))
    assert transport.feed_requests() == 1
    assert "401" in str(refused.value) and "wrong-token" not in str(refused.value)
