"""Bootstrap interrupted after its first page, or in the middle of its adoptions, continues
where it stopped: every tritonX customer arrives once, the shop's own customers are adopted
once (each adoption committed and audited at its own time), and nothing is left behind. On both
test schemas."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from syncctl.bootstrap import bootstrap
from syncctl.controller import PullReport
from syncctl.simulator.server import SimulatorServer
from syncctl.tritonx import TritonXClient
from tests.feed import snapshot
from tests.shops import ShopSchema
from tests.truth import assert_database_equals_tritonx


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(customers=120, seed=11) as server:
        yield server


def test_an_interrupted_bootstrap_resumes_and_adopts_once(
    simulator: SimulatorServer, conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    truth = simulator.state.current_state()
    numbers = ("TX00000003", "TX00000090")  # one on the first page, one on a later one
    local_ids = {}
    for number in numbers:
        email = truth[number]["snapshot"]["email"]
        local_ids[number] = shop.add_customer(
            conn, snapshot(number, email=f" {email.upper()}"), linked=False
        )
    conn.commit()
    stop = threading.Event()

    def interrupt(report: PullReport) -> None:
        stop.set()  # as Ctrl-C after the first page would

    with TritonXClient(simulator.url, simulator.token) as client:
        first = bootstrap(conn, client, actor="ops:1", page_size=25, stop=stop, on_page=interrupt)
        assert first.imported.pages == 1 and not first.imported.caught_up
        assert first.adopted == 0 and not first.complete, "stopped, it adopts nothing more"
        second = bootstrap(conn, client, actor="ops:1", page_size=25)
        assert second.imported.caught_up and second.complete
        assert second.adopted == 2
        third = bootstrap(conn, client, actor="ops:1", page_size=25)
    assert (third.imported.events, third.adopted) == (0, 0)
    assert (third.linked, third.unlinked_left, third.conflicts) == (len(truth), 0, 0)
    assert_database_equals_tritonx(conn, simulator.state.current_state(), shop)
    adoptions = conn.execute(
        "SELECT customer_number FROM sync.audit WHERE action = 'customer.adopted' ORDER BY 1"
    ).fetchall()
    assert adoptions == [(n,) for n in numbers]
    for number, local_id in local_ids.items():
        assert shop.key_of(conn, number) == local_id, "linking replaced the shop's key"


def test_adoptions_stopped_half_way_are_kept_each_audited_at_its_own_time(
    simulator: SimulatorServer, conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    truth = simulator.state.current_state()
    numbers = sorted(truth)[:6]
    for number in numbers:
        email = truth[number]["snapshot"]["email"]
        shop.add_customer(conn, snapshot(number, email=email.upper()), linked=False)
    conn.commit()
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def after_fix(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 3:
            stop.set()  # as Ctrl-C during the fourth adoption would: that one finishes

    with TritonXClient(simulator.url, simulator.token) as client:
        first = bootstrap(conn, client, actor="ops:2", stop=stop, on_adoption=after_fix)
        assert first.imported.caught_up and not first.complete
        assert (first.adopted, first.unlinked_left) == (3, 3)
        assert seen == [(0, 6), (1, 6), (2, 6), (3, 6)]
        with psycopg.connect(conn.info.dsn) as other:  # committed: another session sees them
            kept = other.execute(
                "SELECT count(DISTINCT at) FROM sync.audit WHERE action = 'customer.adopted'"
            ).fetchone()
        assert kept == (3,), "each adoption is committed and audited at its own time"
        second = bootstrap(conn, client, actor="ops:2")
    assert second.complete and (second.adopted, second.unlinked_left) == (3, 0)
    assert set(numbers) <= set(shop.numbers(conn))
    assert shop.count_customers(conn) == len(truth)
