"""The controller pulling from the simulator over loopback HTTP into a real database, on both
test schemas (the boutique's import with fewer customers, for the suite's time)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from syncctl import controller
from syncctl.simulator.server import SimulatorServer
from syncctl.tritonx import TritonXClient
from tests.shops import ReferenceShop, ShopSchema
from tests.truth import assert_database_equals_tritonx


@pytest.fixture
def simulator(shop: ShopSchema) -> Iterator[SimulatorServer]:
    customers = 10_000 if isinstance(shop, ReferenceShop) else 3_000
    with SimulatorServer(customers=customers, seed=21) as server:
        yield server


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[TritonXClient]:
    tritonx = TritonXClient(simulator.url, simulator.token)
    yield tritonx
    tritonx.close()


def test_thousands_of_customers_equal_the_simulator_field_by_field(
    simulator: SimulatorServer,
    client: TritonXClient,
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
) -> None:
    report = controller.pull(conn, client, page_size=1000)
    assert report.caught_up and report.events == simulator.state.customers
    assert report.states == {"applied": simulator.state.customers}
    assert_database_equals_tritonx(conn, simulator.state.current_state(), shop)


def test_activity_after_the_import_is_followed(
    simulator: SimulatorServer,
    client: TritonXClient,
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
) -> None:
    controller.pull(conn, client)
    done = simulator.state.random_activity(400, rng_seed=8)
    assert done["merge"] and done["anonymise"] and done["delete"]
    controller.pull(conn, client, page_size=97)
    assert_database_equals_tritonx(conn, simulator.state.current_state(), shop)


def test_the_same_feed_delivered_twice_changes_nothing_the_second_time(
    simulator: SimulatorServer, conn: psycopg.Connection[Any], dsn: str, shop: ShopSchema
) -> None:
    simulator.state.random_activity(200, rng_seed=2)
    with TritonXClient(simulator.url, simulator.token) as first:
        controller.pull(conn, first)
    audit_before = conn.execute("SELECT count(*) FROM sync.audit").fetchone()
    # a second source name reads the whole feed again from the start: every event a duplicate
    with TritonXClient(simulator.url, simulator.token) as again:
        again.name = "tritonx-replay"
        report = controller.pull(conn, again)
    assert report.states == {"duplicate": report.events}
    assert conn.execute("SELECT count(*) FROM sync.audit").fetchone() == audit_before
    assert_database_equals_tritonx(conn, simulator.state.current_state(), shop)


class Stalling(httpx.BaseTransport):
    """The simulator over loopback, except that half of the feed's requests (seeded) time out
    as they do when tritonX stalls: httpx's ReadTimeout, without waiting for a real clock
    (tests/integration/test_daemon_serving.py has a daemon wait out a really hanging feed)."""

    def __init__(self, seed: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.rng = random.Random(seed)
        self.stalled = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/api/v1/customers/changes") and self.rng.random() < 0.5:
            self.stalled += 1
            raise httpx.ReadTimeout("timed out", request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_a_stalling_tritonx_times_out_and_is_retried(
    simulator: SimulatorServer, conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stalling = Stalling(seed=4)
    with TritonXClient(simulator.url, simulator.token, transport=stalling) as impatient:
        report = controller.pull(
            conn,
            impatient,
            page_size=2000,
            max_attempts=50,
            backoff=controller.Backoff(base=0.01, cap=0.05),
        )
    assert stalling.stalled > 0 and report.retries >= stalling.stalled
    assert report.caught_up
    assert_database_equals_tritonx(conn, simulator.state.current_state(), shop)
