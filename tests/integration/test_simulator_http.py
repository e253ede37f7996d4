"""The simulator over real loopback HTTP: the contract's answers and the chaos switches. The
feed is served from each event's kept JSON text: exactly what encoding the page would give."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from syncctl.simulator.server import ChaosConfig, SimulatorServer


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(customers=300, seed=7, token="t") as server:
        yield server


@pytest.fixture
def http(sim: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, headers={"Authorization": "Bearer t"}) as client:
        yield client


def test_token_is_required(sim: SimulatorServer) -> None:
    assert httpx.get(sim.url + "/api/v1/customers/changes").status_code == 401


def test_changes_page_through_the_feed(http: httpx.Client) -> None:
    seen, cursor, more = [], "", True
    while more:
        body = http.get("/api/v1/customers/changes", params={"after": cursor, "limit": 128}).json()
        seen += [c["seq"] for c in body["changes"]]
        cursor, more = body["next_cursor"], body["has_more"]
    assert seen == list(range(1, 301))


def test_customer_answers_follow_the_lifecycle(sim: SimulatorServer, http: httpx.Client) -> None:
    assert http.get("/api/v1/customers/TX00000001").json()["version"] == 1
    http.post("/admin/merge", json={"old": "TX00000002", "into": "TX00000003"}).raise_for_status()
    gone = http.get("/api/v1/customers/TX00000002")
    assert (gone.status_code, gone.json()) == (410, {"merged_into": "TX00000003"})
    http.post("/admin/customers/TX00000004/anonymise", json={}).raise_for_status()
    assert http.get("/api/v1/customers/TX00000004").json() == {"anonymized": True}
    http.delete("/admin/customers/TX00000005").raise_for_status()
    assert http.get("/api/v1/customers/TX00000005").status_code == 404
    assert (
        http.post("/admin/merge", json={"old": "TX00000003", "into": "TX00000003"}).status_code
        == 409
    )


def test_anonymize_requests_apply_once_per_idempotency_key(
    sim: SimulatorServer, http: httpx.Client
) -> None:
    body = {"reason_code": "AVG", "requested_by": "backoffice", "idempotency_key": "k-1"}
    for _ in range(3):
        assert http.post("/api/v1/customers/TX00000010/anonymize", json=body).status_code == 202
    assert len(http.get("/admin/received").json()) == 3
    anonymised = [e for e in sim.state.changes(300, 100)[0] if e["type"] == "customer.anonymized"]
    assert len(anonymised) == 1


def test_rate_limit_answers_429_with_retry_after(sim: SimulatorServer, http: httpx.Client) -> None:
    sim.set_chaos(ChaosConfig(rate_limit=1.0))
    answer = http.get("/api/v1/customers/changes")
    assert answer.status_code == 429 and float(answer.headers["Retry-After"]) > 0


def test_malformed_chaos_adds_records_and_keeps_the_truth(
    sim: SimulatorServer, http: httpx.Client
) -> None:
    before = sim.state.current_state()
    sim.set_chaos(ChaosConfig(malformed=1.0, duplicate=1.0, seed=2))
    body = http.get("/api/v1/customers/changes", params={"limit": 50}).json()
    assert len(body["changes"]) > 50
    assert sim.state.current_state() == before


def _page(http: httpx.Client, after: int, limit: int) -> bytes:
    response = http.get("/api/v1/customers/changes", params={"after": after, "limit": limit})
    assert response.status_code == 200
    return response.content


def test_every_page_is_the_json_of_its_events_byte_for_byte(
    sim: SimulatorServer, http: httpx.Client
) -> None:
    state = sim.state
    state.random_activity(300, rng_seed=4)  # edits, creations, merges, anonymisations, deletes
    pages = [(0, 1), (0, 7), (5, 100), (290, 50), (299, 1000), (600, 5000), (state.last_seq, 9)]
    for after, limit in pages:
        events, next_cursor, more = state.changes(after, limit)
        expected = {
            "changes": events,
            "next_cursor": str(next_cursor),
            "has_more": more,
            "last_seq": state.last_seq,
        }
        assert _page(http, after, limit) == json.dumps(expected).encode(), (after, limit)


def test_pre_encoding_the_population_changes_no_byte_served(
    sim: SimulatorServer, http: httpx.Client
) -> None:
    served = _page(http, 0, 300)
    fresh = SimulatorServer(customers=300, seed=7, token="t")
    fresh.state.preencode()
    with fresh, httpx.Client(base_url=fresh.url, headers={"Authorization": "Bearer t"}) as other:
        assert _page(other, 0, 300) == served


def test_chaos_still_repeats_redelivers_and_breaks_records(
    sim: SimulatorServer, http: httpx.Client
) -> None:
    sim.set_chaos(ChaosConfig(duplicate=1.0, stale=1.0, malformed=1.0, seed=3))
    body = json.loads(_page(http, 100, 50))
    changes: list[Any] = body["changes"]
    genuine = [c for c in changes if isinstance(c, dict) and c == sim.state.event(c.get("seq", 0))]
    # an older event first, then the page, then a repeated tail, then one broken record
    assert genuine[0]["seq"] <= 100
    assert [c["seq"] for c in genuine[1:51]] == list(range(101, 151))
    repeated = [c["seq"] for c in genuine[51:]]
    assert repeated and repeated == list(range(repeated[0], 151))
    assert body["next_cursor"] == str(repeated[0]) and body["has_more"] is True
    assert len(changes) == len(genuine) + 1 and changes[-1] not in genuine
