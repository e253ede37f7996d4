"""tritonX's master state and its change feed. The initial population is implicit: event seq i
(1 <= i <= customers) is the version-1 upsert of customer i, generated on demand; only
customers that changed since are stored, and every change appends an event with the next seq.
Each event's JSON text is kept once it has been encoded (`encoded_changes`; `preencode` encodes
the initial population up front), so serving a page joins bytes instead of building and
encoding a thousand snapshots: the feed serves the same JSON, at a small share of the CPU.
Events never change once emitted, so their text never goes stale. Thread-safe: the HTTP server
calls in from many threads."""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from syncctl.errors import SimulatorConflict
from syncctl.simulator.population import customer_index, customer_number, snapshot

EPOCH = "2026-11-20T10:00:00Z"


def encode(value: Any) -> bytes:
    """JSON text as the simulator sends it (json.dumps with its defaults)."""
    return json.dumps(value).encode()


def event_id(seed: int, seq: int) -> str:
    """Deterministic, uuid-shaped, unique per (seed, seq)."""
    return f"{seed & 0xFFFFFFFF:08x}-5eed-4000-8000-{seq:012x}"


@dataclass
class Customer:
    status: str  # live | merged | anonymised | deleted
    version: int
    snapshot: dict[str, Any] | None
    into: str | None = None


@dataclass
class TritonX:
    customers: int
    seed: int = 1
    _changed: dict[str, Customer] = field(default_factory=dict)
    _events: list[dict[str, Any]] = field(default_factory=list)
    _created: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)
    received_anonymize_requests: list[dict[str, Any]] = field(default_factory=list)
    _idempotency_keys: set[str] = field(default_factory=set)
    # the JSON text of each event once encoded: initial events by seq - 1, emitted ones by
    # their place in _events
    _initial_text: list[bytes | None] = field(default_factory=list)
    _events_text: list[bytes] = field(default_factory=list)

    # -- reading -------------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        return self.customers + len(self._events)

    def _initial_event(self, seq: int) -> dict[str, Any]:
        return {
            "seq": seq,
            "event_id": event_id(self.seed, seq),
            "type": "customer.upserted",
            "customer_number": customer_number(seq),
            "version": 1,
            "occurred_at": EPOCH,
            "customer": snapshot(self.seed, seq),
        }

    def event(self, seq: int) -> dict[str, Any]:
        if 1 <= seq <= self.customers:
            return self._initial_event(seq)
        return self._events[seq - self.customers - 1]

    def changes(self, after: int, limit: int) -> tuple[list[dict[str, Any]], int, bool]:
        """Events with seq > after, at most `limit`; the next cursor; whether more remain."""
        with self._lock:
            seqs, next_cursor, more = self._page(after, limit)
            return [self.event(seq) for seq in seqs], next_cursor, more

    def encoded_changes(self, after: int, limit: int) -> tuple[list[bytes], int, bool]:
        """`changes` as each event's JSON text (json.dumps with its defaults, UTF-8)."""
        with self._lock:
            seqs, next_cursor, more = self._page(after, limit)
            return [self.encoded_event(seq) for seq in seqs], next_cursor, more

    def _page(self, after: int, limit: int) -> tuple[range, int, bool]:
        last = self.last_seq
        upto = min(last, after + limit)
        return range(after + 1, upto + 1), max(after, upto), upto < last

    def encoded_event(self, seq: int) -> bytes:
        """The JSON text of event `seq`, encoded on first use and kept."""
        if not 1 <= seq <= self.customers:
            return self._events_text[seq - self.customers - 1]
        with self._lock:
            if len(self._initial_text) < self.customers:
                self._initial_text.extend([None] * (self.customers - len(self._initial_text)))
            text = self._initial_text[seq - 1]
            if text is None:
                text = self._initial_text[seq - 1] = encode(self._initial_event(seq))
            return text

    def preencode(self) -> None:
        """Encode every initial event now (the benchmark's simulator does, before it serves):
        about 20 us and 0.8 KB an event."""
        for seq in range(1, self.customers + 1):
            self.encoded_event(seq)

    def customer(self, number: str) -> Customer | None:
        with self._lock:
            if number in self._changed:
                return self._changed[number]
            index = customer_index(number)
            if index is not None and 1 <= index <= self.customers:
                return Customer("live", 1, snapshot(self.seed, index))
            return None

    def _initial_numbers(self, number: str) -> set[str]:
        index = customer_index(number)
        return {number} if index is not None and 1 <= index <= self.customers else set()

    def current_state(self) -> dict[str, dict[str, Any]]:
        """The truth, per customer number: status, and version + snapshot when live."""
        with self._lock:
            numbers = [customer_number(i) for i in range(1, self.customers + 1)]
            numbers += [n for n in self._changed if n not in self._initial_numbers(n)]
            state: dict[str, dict[str, Any]] = {}
            for number in numbers:
                c = self.customer(number)
                assert c is not None
                entry: dict[str, Any] = {"status": c.status, "version": c.version}
                if c.status == "live":
                    entry["snapshot"] = c.snapshot
                if c.status == "merged":
                    entry["into"] = c.into
                state[number] = entry
            return state

    # -- changing ------------------------------------------------------------------------------
    def _emit(self, kind: str, number: str, version: int, **extra: Any) -> dict[str, Any]:
        seq = self.last_seq + 1
        record = {
            "seq": seq,
            "event_id": event_id(self.seed, seq),
            "type": kind,
            "customer_number": number,
            "version": version,
            "occurred_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            **extra,
        }
        self._events.append(record)
        self._events_text.append(encode(record))
        return record

    def _live(self, number: str) -> Customer:
        c = self.customer(number)
        if c is None:
            raise KeyError(number)
        if c.status != "live":
            raise SimulatorConflict(f"{number} is {c.status}")
        return c

    def edit(self, number: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            c = self._live(number)
            unknown = set(fields) - set(c.snapshot or {}) | ({"customer_number"} & set(fields))
            if unknown:
                raise ValueError(f"fields that cannot be edited: {sorted(unknown)}")
            new = {
                **(c.snapshot or {}),
                **fields,
                "updated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            self._changed[number] = Customer("live", c.version + 1, new)
            return self._emit("customer.upserted", number, c.version + 1, customer=new)

    def create(self) -> str:
        with self._lock:
            self._created += 1
            index = 90_000_000 + self._created
            number = customer_number(index)
            snap = snapshot(self.seed, index)
            self._changed[number] = Customer("live", 1, snap)
            self._emit("customer.upserted", number, 1, customer=snap)
            return number

    def merge(self, old: str, into: str) -> dict[str, Any]:
        with self._lock:
            if old == into:
                raise SimulatorConflict("a customer cannot be merged into itself")
            c = self._live(old)
            survivor = self._live(into)
            self._changed[old] = Customer("merged", c.version + 1, None, into)
            event = self._emit("customer.merged", old, c.version + 1, into=into)
            # as ACA does: the survivor keeps its values and takes the old one's where it has
            # none, and tritonX publishes the survivor's new snapshot
            merged = {
                k: v if v is not None else (c.snapshot or {}).get(k)
                for k, v in (survivor.snapshot or {}).items()
            }
            if merged != survivor.snapshot:
                self._changed[into] = Customer("live", survivor.version + 1, merged)
                self._emit("customer.upserted", into, survivor.version + 1, customer=merged)
            return event

    def anonymise(self, number: str, reason_code: str = "AVG") -> dict[str, Any]:
        with self._lock:
            c = self._live(number)
            self._changed[number] = Customer("anonymised", c.version + 1, None)
            return self._emit("customer.anonymized", number, c.version + 1, reason_code=reason_code)

    def delete(self, number: str) -> dict[str, Any]:
        with self._lock:
            c = self._live(number)
            self._changed[number] = Customer("deleted", c.version + 1, None)
            return self._emit("customer.deleted", number, c.version + 1)

    def request_anonymisation(self, number: str, body: dict[str, Any]) -> bool:
        """An anonymize request from the shop; applied once per idempotency key."""
        with self._lock:
            self.received_anonymize_requests.append({"customer_number": number, **body})
            key = str(body.get("idempotency_key", ""))
            if key in self._idempotency_keys:
                return False
            self._idempotency_keys.add(key)
            c = self.customer(number)
            if c is not None and c.status == "live":
                self.anonymise(number, str(body.get("reason_code") or "AVG"))
            return True

    def _random_live(self, rng: random.Random) -> str | None:
        """A live customer drawn at random; None when none is left (an activity longer than
        the population lasts must not draw forever while it holds the lock)."""
        for _ in range(1000):
            if self._created and rng.random() < 0.05:
                number = customer_number(90_000_000 + rng.randrange(1, self._created + 1))
            else:
                number = customer_number(rng.randrange(1, self.customers + 1))
            c = self.customer(number)
            if c is not None and c.status == "live":
                return number
        live = [n for n, entry in self.current_state().items() if entry["status"] == "live"]
        return rng.choice(live) if live else None

    def random_activity(self, n: int, rng_seed: int) -> dict[str, int]:
        """n random changes: edits, creations, merges, anonymisations, deletions."""
        rng = random.Random(rng_seed)
        done = {"edit": 0, "create": 0, "merge": 0, "anonymise": 0, "delete": 0}
        with self._lock:
            for _ in range(n):
                roll = rng.random()
                if 0.55 <= roll < 0.65:
                    self.create()
                    done["create"] += 1
                    continue
                if 0.65 <= roll < 0.82:
                    old, into = self._random_live(rng), self._random_live(rng)
                    if old is not None and into is not None and old != into:
                        self.merge(old, into)
                        done["merge"] += 1
                    continue
                number = self._random_live(rng)
                if number is None:
                    # nobody left to change: tritonX gains a customer instead
                    self.create()
                    done["create"] += 1
                elif roll < 0.55:
                    self.edit(
                        number,
                        city=rng.choice(("Utrecht", "Zwolle", "Gent")),
                        house_number=rng.randrange(1, 500),
                        newsletter_opt_in=rng.random() < 0.5,
                    )
                    done["edit"] += 1
                elif roll < 0.94:
                    self.anonymise(number)
                    done["anonymise"] += 1
                else:
                    self.delete(number)
                    done["delete"] += 1
        return done
