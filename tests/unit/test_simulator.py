"""The simulator's population and master state."""

from __future__ import annotations

import re
import threading

import pytest

from syncctl.errors import SimulatorConflict
from syncctl.simulator.population import customer_number, snapshot
from syncctl.simulator.server import ChaosConfig
from syncctl.simulator.state import TritonX

POSTCODE_NL = re.compile(r"^[1-9]\d{3} (?!SA|SD|SS)[A-Z]{2}$")


def test_population_is_deterministic_and_dutch() -> None:
    assert snapshot(3, 17) == snapshot(3, 17)
    assert snapshot(3, 17) != snapshot(4, 17)
    people = [snapshot(1, i) for i in range(1, 5001)]
    dutch = [p for p in people if p["country_code"] == "NL"]
    assert all(POSTCODE_NL.match(p["postcode"]) for p in dutch)
    assert any(p["infix"] for p in people) and any(p["house_number_addition"] for p in people)
    assert len({p["email"] for p in people}) == len(people)
    assert people[0]["customer_number"] == customer_number(1) == "TX00000001"


def test_feed_pages_through_the_population_then_changes() -> None:
    state = TritonX(customers=50, seed=2)
    events, cursor, more = state.changes(0, 30)
    assert [e["seq"] for e in events] == list(range(1, 31)) and cursor == 30 and more
    state.edit("TX00000003", city="Zwolle")
    events, cursor, more = state.changes(30, 100)
    assert len(events) == 21 and not more
    assert events[-1]["type"] == "customer.upserted" and events[-1]["version"] == 2
    assert len({e["event_id"] for e in events}) == len(events)


def test_impossible_changes_are_refused() -> None:
    state = TritonX(customers=5)
    with pytest.raises(SimulatorConflict):
        state.merge("TX00000001", "TX00000001")
    state.anonymise("TX00000002")
    with pytest.raises(SimulatorConflict):
        state.merge("TX00000001", "TX00000002")
    with pytest.raises(KeyError):
        state.edit("TX99999999", city="x")


def test_merge_fills_the_survivors_blanks_and_publishes_it() -> None:
    state = TritonX(customers=200, seed=5)
    blank = next(i for i in range(1, 201) if snapshot(5, i)["phone"] is None)
    donor = next(i for i in range(1, 201) if snapshot(5, i)["phone"] is not None and i != blank)
    state.merge(customer_number(donor), customer_number(blank))
    truth = state.current_state()
    assert truth[customer_number(donor)] == {
        "status": "merged",
        "version": 2,
        "into": customer_number(blank),
    }
    assert truth[customer_number(blank)]["snapshot"]["phone"] == snapshot(5, donor)["phone"]


def test_random_activity_does_every_kind_of_change() -> None:
    state = TritonX(customers=500, seed=1)
    done = state.random_activity(300, rng_seed=1)
    assert all(done.values()), done
    statuses = {entry["status"] for entry in state.current_state().values()}
    assert statuses == {"live", "merged", "anonymised", "deleted"}


def test_random_activity_outlasting_the_population_creates_instead_of_hanging() -> None:
    # three customers cannot take 200 merges, anonymisations and deletions: once none is live,
    # the activity creates customers instead of drawing forever while it holds the state's lock
    # (which froze every request to the simulator)
    state = TritonX(customers=3)
    worker = threading.Thread(target=lambda: state.random_activity(200, 1), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    assert state.last_seq > 3 + 150


def test_chaos_defaults_to_none() -> None:
    chaos = ChaosConfig()
    assert (chaos.duplicate, chaos.malformed, chaos.server_error) == (0.0, 0.0, 0.0)
