"""Refresh on demand and outbox delivery against the simulator over loopback HTTP, on both test
schemas."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from syncctl import controller
from syncctl.outbox import deliver_due
from syncctl.refresh import process_refresh_requests
from syncctl.simulator.server import ChaosConfig, SimulatorServer
from syncctl.tritonx import TritonXClient
from tests.shops import ShopSchema
from tests.truth import assert_database_equals_tritonx


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer(customers=50, seed=3) as server:
        yield server


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[TritonXClient]:
    with TritonXClient(simulator.url, simulator.token, timeout=0.5) as tritonx:
        yield tritonx


def test_refresh_applies_every_kind_of_answer(
    simulator: SimulatorServer,
    client: TritonXClient,
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
) -> None:
    controller.pull(conn, client)
    state = simulator.state
    state.edit("TX00000001", city="Zwolle")
    state.merge("TX00000002", "TX00000003")
    state.anonymise("TX00000004")
    state.delete("TX00000005")
    for number in ("TX00000001", "TX00000002", "TX00000004", "TX00000005", "TX00000003"):
        conn.execute("SELECT sync.request_refresh(%s)", [number])
    conn.commit()
    latencies: list[float] = []
    assert process_refresh_requests(conn, client, on_latency=latencies.append) == 5
    assert len(latencies) == 5 and all(s >= 0 for s in latencies)
    assert_database_equals_tritonx(conn, state.current_state(), shop)
    assert conn.execute("SELECT count(*) FROM sync.refresh_request").fetchone() == (0,)
    # the feed brings the same changes again: all of them duplicates or no-ops
    report = controller.pull(conn, client)
    assert report.states.get("dead_letter", 0) == 0
    assert_database_equals_tritonx(conn, state.current_state(), shop)


def test_a_refresh_tritonx_cannot_answer_is_requeued(
    simulator: SimulatorServer,
    client: TritonXClient,
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
) -> None:
    simulator.set_chaos(ChaosConfig(server_error=1.0))
    conn.execute("SELECT sync.request_refresh('TX00000001')")
    conn.commit()
    assert process_refresh_requests(conn, client) == 0
    queued = conn.execute("SELECT attempts, last_error FROM sync.refresh_request").fetchall()
    assert queued == [(1, "TritonXUnavailable")]


# A refresh tritonX answers 404 for a number it has never had ("unknown or deleted") must not
# keep that number from the customer tritonX creates with it later: the webshop's inputs are
# untrusted, and a number asked for early (or by a hostile caller) is not a deleted customer.
def test_a_number_tritonx_does_not_know_yet_is_not_tombstoned_by_a_refresh(
    simulator: SimulatorServer,
    client: TritonXClient,
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
) -> None:
    controller.pull(conn, client)
    # the next two numbers tritonX will hand out: one asked for by a refresh request alone,
    # one by a first login (a stub)
    conn.execute("SELECT sync.request_refresh('TX90000001')")
    conn.execute("SELECT * FROM sync.login_key('TX90000002', NULL)")
    conn.commit()
    assert process_refresh_requests(conn, client) == 2
    assert conn.execute(
        "SELECT count(*) FROM sync.tombstone WHERE customer_number IN ('TX90000001', 'TX90000002')"
    ).fetchone() == (0,)
    state = simulator.state
    assert state.create() == "TX90000001"
    assert state.create() == "TX90000002"
    report = controller.pull(conn, client)
    assert report.states.get("dead_letter", 0) == 0
    assert_database_equals_tritonx(conn, state.current_state(), shop)


def test_a_404_after_the_feed_brought_the_customer_deletes_it(
    simulator: SimulatorServer,
    client: TritonXClient,
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
) -> None:
    """The first 404 (a login's stub, the number not yet tritonX's) is skipped; a 404 for the
    same number once the feed brought the customer and tritonX deleted it is not a repeat of
    that one: the refresh deletes the customer."""
    controller.pull(conn, client)
    conn.execute("SELECT * FROM sync.login_key('TX90000001', NULL)")
    conn.commit()
    assert process_refresh_requests(conn, client) == 1
    state = simulator.state
    assert state.create() == "TX90000001"
    controller.pull(conn, client)
    assert shop.key_of(conn, "TX90000001") is not None
    state.delete("TX90000001")
    conn.execute("SELECT sync.request_refresh('TX90000001')")
    conn.commit()
    assert process_refresh_requests(conn, client) == 1
    assert shop.key_of(conn, "TX90000001") is None
    assert conn.execute(
        "SELECT kind FROM sync.tombstone WHERE customer_number = 'TX90000001'"
    ).fetchone() == ("deleted",)
    # the feed's own delete then is a no-op
    assert controller.pull(conn, client).states.get("dead_letter", 0) == 0
    assert_database_equals_tritonx(conn, state.current_state(), shop)


def test_back_office_anonymisations_arrive_once_in_effect_despite_errors(
    simulator: SimulatorServer,
    client: TritonXClient,
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
) -> None:
    controller.pull(conn, client)
    numbers = [f"TX{i:08d}" for i in range(10, 20)]
    for number in numbers:
        conn.execute(
            "SELECT sync.anonymise_from_backoffice_key(sync.resolve_customer_key(%s), 'AVG',"
            " 'bo:7')",
            [number],
        )
    conn.commit()
    simulator.set_chaos(ChaosConfig(server_error=0.4, slow=0.2, slow_seconds=0.8, seed=5))
    rng = random.Random(1)
    for _ in range(60):
        deliver_due(conn, client, rng=rng)
        conn.execute("UPDATE sync.outbox SET next_attempt_at = now()")  # no waiting in tests
        conn.commit()
        pending = conn.execute(
            "SELECT count(*) FROM sync.outbox WHERE state <> 'delivered'"
        ).fetchone()
        if pending == (0,):
            break
    assert pending == (0,)
    received = simulator.state.received_anonymize_requests
    assert {r["customer_number"] for r in received} == set(numbers)
    truth = simulator.state.current_state()
    assert all(truth[n]["status"] == "anonymised" for n in numbers)
    anonymised_events = [
        e for e in simulator.state.changes(50, 1000)[0] if e["type"] == "customer.anonymized"
    ]
    assert sorted(e["customer_number"] for e in anonymised_events) == numbers
    # tritonX's own anonymisation comes back through the feed: a no-op on the tombstone
    controller.pull(conn, client)
    assert_database_equals_tritonx(conn, simulator.state.current_state(), shop)


def test_a_refused_outbox_event_is_dead_and_blocks_its_customer_only(
    simulator: SimulatorServer,
    client: TritonXClient,
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
) -> None:
    controller.pull(conn, client)
    conn.execute(
        "INSERT INTO sync.outbox (customer_number, event_type, payload) VALUES"
        " ('TX99999999', 'customer.anonymize_requested', '{\"reason_code\": \"AVG\"}'),"
        " ('TX99999999', 'customer.anonymize_requested', '{\"reason_code\": \"AVG\"}'),"
        " ('TX00000021', 'customer.anonymize_requested', '{\"reason_code\": \"AVG\"}')"
    )
    conn.commit()
    report = deliver_due(conn, client)
    assert (report.delivered, report.dead) == (1, 1)
    states = conn.execute("SELECT customer_number, state FROM sync.outbox ORDER BY id").fetchall()
    assert states == [
        ("TX99999999", "dead"),
        ("TX99999999", "pending"),
        ("TX00000021", "delivered"),
    ]
    assert deliver_due(conn, client).delivered == 0, "the later row overtook the dead one"


def test_claimed_refreshes_go_back_in_the_queue_when_anything_fails(
    simulator: SimulatorServer,
    client: TritonXClient,
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
) -> None:
    controller.pull(conn, client)
    numbers = ["TX00000006", "TX00000007", "TX00000008"]
    for number in numbers:
        conn.execute("SELECT sync.request_refresh(%s)", [number])
        conn.commit()

    def broken_metrics(_seconds: float) -> None:
        raise RuntimeError("a bug after the first refresh")

    with pytest.raises(RuntimeError):
        process_refresh_requests(conn, client, on_latency=broken_metrics)
    queued = conn.execute(
        "SELECT customer_number, attempts FROM sync.refresh_request ORDER BY 1"
    ).fetchall()
    assert queued == [("TX00000007", 0), ("TX00000008", 0)]
    assert process_refresh_requests(conn, client) == 2


def test_a_refused_token_leaves_outbox_rows_pending_not_dead(
    simulator: SimulatorServer, conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    conn.execute(
        "INSERT INTO sync.outbox (customer_number, event_type, payload) VALUES"
        " ('TX00000021', 'customer.anonymize_requested', '{\"reason_code\": \"AVG\"}')"
    )
    conn.commit()
    with TritonXClient(simulator.url, "a-token-tritonx-revoked") as revoked:
        report = deliver_due(conn, revoked)
    assert (report.retried, report.dead) == (1, 0)
    row = conn.execute("SELECT state, attempts, last_error FROM sync.outbox").fetchone()
    assert row == ("pending", 1, "TokenRefused")


def test_a_controller_killed_holding_claims_loses_none(
    simulator: SimulatorServer,
    client: TritonXClient,
    dsn: str,
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
) -> None:
    """A claim is a lease: a controller that dies (kill -9) between claiming and applying leaves
    its requests queued; when the lease runs out another controller claims and applies them."""
    controller.pull(conn, client)
    simulator.state.edit("TX00000001", city="Zwolle")
    for number in ("TX00000001", "TX00000002"):
        conn.execute("SELECT sync.request_refresh(%s)", [number])
    conn.commit()
    doomed = psycopg.connect(dsn, autocommit=True)
    claimed = doomed.execute("SELECT * FROM sync.claim_refresh_requests(10)").fetchall()
    assert len(claimed) == 2
    doomed.close()  # dies before applying anything
    # while the lease holds, nobody else takes them; both stay queued
    assert process_refresh_requests(conn, client) == 0
    assert conn.execute("SELECT count(*) FROM sync.refresh_request").fetchone() == (2,)
    conn.execute("UPDATE sync.refresh_request SET claimed_until = now() - interval '1 second'")
    conn.commit()
    assert process_refresh_requests(conn, client) == 2
    assert conn.execute("SELECT count(*) FROM sync.refresh_request").fetchone() == (0,)
    assert_database_equals_tritonx(conn, simulator.state.current_state(), shop)


def test_a_number_asked_for_again_during_its_refresh_stays_queued(
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
) -> None:
    conn.execute("SELECT sync.request_refresh('TX00000001')")
    claimed = conn.execute("SELECT * FROM sync.claim_refresh_requests(10)").fetchall()
    conn.execute("SELECT sync.request_refresh('TX00000001')")  # the person logs in again
    conn.execute("SELECT sync.refresh_done(%s, %s)", [claimed[0][0], claimed[0][1]])
    assert conn.execute("SELECT count(*) FROM sync.refresh_request").fetchone() == (1,)
