"""The benchmark's change records, built once per size with a fixed seed and reused by the
subject and every baseline. Snapshots are Dutch retail customers in the shape tritonX sends
(the simulator's `snapshot(seed, i)` when the simulator is installed, else a generator of the
same shape here). Rows are kept pre-encoded for a binary COPY into sync.inbox, so the Python
producer is not what a database figure measures."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

SEED = 20261122
T = TypeVar("T")
SOURCE = "tritonx"

_FIRST = (  # noqa: SIM905
    "Anna Daan Emma Sem Julia Lucas Sophie Finn Tess Levi Mila Noah Sara Bram Lotte "
    "Thijs Fenna Jesse Lieke Ruben Iris Stijn Noor Lars Eva Milan Roos Luuk Femke Teun "
    "Maud Joep Anouk Gijs Floor Koen Sanne Pieter Marieke Willem Ingrid Henk Annelies "
    "Jan Wilma Kees Ria Gert"
).split()
_INFIX = ["", "", "", "", "", "van", "de", "van der", "van den", "van de", "den", "ter", "van 't"]
_LAST = (  # noqa: SIM905
    "Jansen Bakker Visser Smit Meijer Mulder Bos Vos Peters Hendriks Dekker Brouwer "
    "Dijkstra Kok Jacobs Vermeulen Berg Dijk Leeuwen Wal Heuvel Linden Veen Boer Graaf "
    "Wijk Groot Jong Vries Haan Koster Prins Huisman Kuiper Postma Schouten Willems "
    "Hoekstra Maas Verhoeven"
).split()
_STREET = (  # noqa: SIM905
    "Keizersgracht Herengracht Kerkstraat Dorpsstraat Molenweg Stationsweg Schoolstraat "
    "Julianastraat Beatrixlaan Wilhelminastraat Nieuwstraat Marktplein Kastanjelaan "
    "Eikenlaan Lindelaan Parallelweg Industrieweg Havenstraat Zuiderweg Noordeinde "
    "Oranjestraat Prinsengracht"
).split()
_CITY = [
    ("Amsterdam", 1011),
    ("Rotterdam", 3011),
    ("Den Haag", 2511),
    ("Utrecht", 3511),
    ("Eindhoven", 5611),
    ("Groningen", 9711),
    ("Tilburg", 5011),
    ("Almere", 1311),
    ("Breda", 4811),
    ("Nijmegen", 6511),
    ("Apeldoorn", 7311),
    ("Haarlem", 2011),
    ("Arnhem", 6811),
    ("Enschede", 7511),
    ("Amersfoort", 3811),
    ("Zwolle", 8011),
    ("Leiden", 2311),
    ("Maastricht", 6211),
    ("Dordrecht", 3311),
    ("Delft", 2611),
]
_LETTERS = "ABCDEGHJKLMNPRSTVWXZ"
_ADDITION = ["", "", "", "", "", "", "A", "B", "C", "1", "2", "bis", "hs"]
_GROUP = ["retail", "retail", "retail", "retail", "business", "staff"]
_DOMAIN = ["gmail.com", "hotmail.nl", "outlook.com", "ziggo.nl", "kpnmail.nl", "live.nl"]
_EPOCH = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def customer_number(i: int) -> str:
    return f"TX{i:08d}"


class _Digits:
    """Draws from one wide random integer: a dozen rng calls per record made generation the
    bottleneck (40 us a record); slicing one 256-bit draw is several times cheaper."""

    __slots__ = ("_value",)

    def __init__(self, rng: random.Random) -> None:
        self._value = rng.getrandbits(256)

    def below(self, n: int) -> int:
        self._value, digit = divmod(self._value, n)
        return digit

    def pick(self, options: Sequence[T]) -> T:
        return options[self.below(len(options))]


_POOL = 4096  # distinct name / address / contact fragments, combined per record


def _fragments(rng: random.Random) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """Pre-serialised JSON fragments: names (with an e-mail local part), addresses, contact
    and loyalty details. 4096^3 combinations are realistic enough and cost ~3 us a record."""
    names, addresses, details = [], [], []
    for _ in range(_POOL):
        d = _Digits(rng)
        first, infix, last = d.pick(_FIRST), d.pick(_INFIX), d.pick(_LAST)
        local = f"{first}.{infix.replace(' ', '').replace(chr(39), '')}{last}".lower()
        names.append(
            (
                local,
                json.dumps(
                    {
                        "first_name": first,
                        "infix": infix or None,
                        "last_name": last,
                        "gender": d.pick("FMX"),
                    },
                    separators=(",", ":"),
                )[1:-1],
            )
        )
        city, base = d.pick(_CITY)
        addresses.append(
            json.dumps(
                {
                    "street": d.pick(_STREET),
                    "house_number": 1 + d.below(399),
                    "house_number_addition": d.pick(_ADDITION) or None,
                    "postcode": f"{base + d.below(90)} {d.pick(_LETTERS)}{d.pick(_LETTERS)}",
                    "city": city,
                    "country_code": "NL",
                },
                separators=(",", ":"),
            )[1:-1]
        )
        born = date(1940, 1, 1) + timedelta(days=d.below(365 * 65))
        details.append(
            json.dumps(
                {
                    "birth_date": born.isoformat(),
                    "phone": f"+31 {10 + d.below(70)} {100 + d.below(900)} {1000 + d.below(9000)}",
                    "mobile": f"+31 6 {1000 + d.below(9000)} {1000 + d.below(9000)}",
                    "loyalty_card": f"LC-{d.below(10**9):09d}",
                    "home_store": d.pick(_CITY)[0],
                    "customer_group": d.pick(_GROUP),
                    "newsletter_opt_in": d.below(10) < 4,
                    "blocked": d.below(200) == 0,
                },
                separators=(",", ":"),
            )[1:-1]
        )
    return names, addresses, details


SimulatorSnapshot = Callable[[int, int], dict[str, Any]]


def _simulator_snapshot() -> SimulatorSnapshot | None:
    """The simulator's population (what tritonX would send) when it is installed."""
    try:
        from syncctl.simulator.population import snapshot
    except ImportError:
        return None
    return snapshot


@dataclass(frozen=True)
class EncodedJson:
    """A JSON document already serialised (UTF-8), for the binary jsonb dumper in bench.copy."""

    data: bytes


InboxRow = tuple[str, int, str, str, str, int, datetime, EncodedJson]


@dataclass
class ChangeRun:
    """One batch of customer.upserted records, in seq order, as inbox rows."""

    rows: list[InboxRow]
    updates: int  # how many of them update a customer that exists before the run

    def records(self, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
        """The rows as decoded change records (what an HTTP client would hold)."""
        return [json.loads(row[7].data) for row in self.rows[start:stop]]


@dataclass
class Dataset:
    size: int
    snapshots_from: str
    inserts: ChangeRun  # size new customers, version 1
    mixed: ChangeRun  # size/2 updates (version 2) of existing customers, size/2 new ones


class _Encoder:
    """Change records as JSON text: from the simulator's snapshots (dicts, json.dumps) when it
    is installed, else from pre-serialised fragments."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.simulated = _simulator_snapshot()
        self.origin = (
            "syncctl.simulator.population.snapshot"
            if self.simulated
            else "bench fragment generator"
        )
        self.names, self.addresses, self.details = _fragments(rng)

    def customer(self, i: int, version: int, updated_at: str) -> str:
        number = customer_number(i)
        if self.simulated is not None:
            snapshot = dict(self.simulated(SEED, i))
            snapshot["customer_number"] = number
            snapshot["updated_at"] = updated_at
            if version > 1:  # an edit: the whole snapshot again, with another address
                snapshot.update(json.loads("{" + self.addresses[self.rng.randrange(_POOL)] + "}"))
            return json.dumps(snapshot, separators=(",", ":"))
        pick = self.rng.getrandbits(36)
        local, name = self.names[pick & 4095]
        address = self.addresses[(pick >> 12) & 4095]
        detail = self.details[pick >> 24]
        return (
            f'{{"customer_number":"{number}","email":"{local}{i}@example.nl",{name},'
            f'{address},{detail},"updated_at":"{updated_at}"}}'
        )

    def event(self, seq: int, i: int, version: int) -> InboxRow:
        """A customer.upserted event with the customer's whole snapshot."""
        return self._row(
            seq,
            i,
            "customer.upserted",
            version,
            lambda stamp: f',"customer":{self.customer(i, version, stamp)}',
        )

    def change(self, seq: int, i: int, kind: str, *, into: int | None = None) -> InboxRow:
        """A version-2 customer.merged (into customer `into`), customer.anonymized or
        customer.deleted event."""
        extra = f',"into":"{customer_number(into)}"' if into is not None else ',"reason_code":"AVG"'
        return self._row(seq, i, kind, 2, lambda _stamp: extra)

    def _row(
        self, seq: int, i: int, kind: str, version: int, tail: Callable[[str], str]
    ) -> InboxRow:
        number = customer_number(i)
        occurred = _EPOCH + timedelta(milliseconds=seq)
        stamp = occurred.isoformat().replace("+00:00", "Z")
        hexid = f"{self.rng.getrandbits(128):032x}"
        event_id = f"{hexid[:8]}-{hexid[8:12]}-4{hexid[13:16]}-a{hexid[17:20]}-{hexid[20:]}"
        text = (
            f'{{"seq":{seq},"event_id":"{event_id}","type":"{kind}",'
            f'"customer_number":"{number}","version":{version},"occurred_at":"{stamp}"'
            f"{tail(stamp)}}}"
        )
        return (SOURCE, seq, event_id, kind, number, version, occurred, EncodedJson(text.encode()))


def build(size: int, seed: int = SEED) -> Dataset:
    """The records for one size: deterministic for a given seed."""
    rng = random.Random(seed)
    encoder = _Encoder(rng)
    inserts = [encoder.event(seq, seq - 1, 1) for seq in range(1, size + 1)]
    half = size // 2
    # half of the customers get a new version, as many new customers arrive; interleaved
    targets = [(i, 2) for i in range(half)] + [(size + i, 1) for i in range(size - half)]
    rng.shuffle(targets)
    mixed = [encoder.event(size + 1 + k, i, version) for k, (i, version) in enumerate(targets)]
    return Dataset(size, encoder.origin, ChangeRun(inserts, 0), ChangeRun(mixed, half))


def merges(pairs: list[tuple[int, int]], first_seq: int, seed: int = SEED) -> ChangeRun:
    """A customer.merged event (version 2) per (old, survivor) pair of customers of
    `build(size)`, in the order given, numbered from `first_seq`."""
    encoder = _Encoder(random.Random(seed + 3))
    rows = [
        encoder.change(first_seq + k, old, "customer.merged", into=survivor)
        for k, (old, survivor) in enumerate(pairs)
    ]
    return ChangeRun(rows, 0)


def feed_mix(
    size: int,
    *,
    merge_every: int = 0,
    anonymise_every: int = 0,
    delete_every: int = 0,
    seed: int = SEED,
) -> ChangeRun:
    """`size` events that follow the insert run of `build(size)`: version-2 upserts of every
    customer once, in a shuffled order; with `merge_every` = m, every m-th position is instead
    a customer.merged of that customer into the next position's (always an upsert), with
    `anonymise_every` = a, every a-th position (shifted by half of it) a customer.anonymized,
    and with `delete_every` = d, every d-th position (shifted by a quarter of it) a
    customer.deleted. The customers and their order are the same with and without them."""
    rng = random.Random(seed + 1)
    encoder = _Encoder(rng)
    order = list(range(size))
    random.Random(seed + 2).shuffle(order)
    rows: list[InboxRow] = []
    for k, i in enumerate(order):
        seq = size + 1 + k
        if merge_every and k % merge_every == 0 and k + 1 < size:
            rows.append(encoder.change(seq, i, "customer.merged", into=order[k + 1]))
        elif anonymise_every and k % anonymise_every == anonymise_every // 2:
            rows.append(encoder.change(seq, i, "customer.anonymized"))
        elif delete_every and k % delete_every == delete_every // 4:
            rows.append(encoder.change(seq, i, "customer.deleted"))
        else:
            rows.append(encoder.event(seq, i, 2))
    return ChangeRun(rows, size)
