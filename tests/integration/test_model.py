"""Proof by model. Hypothesis drives random tritonX histories through the simulator (edits,
creations, merges including chains and N-way merges into one survivor, anonymisations,
deletions), interleaved with partial deliveries of the change feed and shop activity (orders,
favourites, addresses for any known number, resolved the way the shop does), then delivers the
rest. The feed arrives the way an at-least-once source sends it: random page sizes, repeated
events, pages repeated whole, the cursor stopping short, pages out of order, older events
re-delivered with their original ids. The database must then equal a small pure-Python model:

- customers: tritonX's truth field by field (tests.truth);
- redirects: every merged-away number points at its final survivor, in one step, and nothing
  else is redirected; sync.resolve_customer agrees;
- tombstones: exactly the anonymised and deleted numbers; a delete is an anonymisation when
  the customer owns orders at the end, a removal otherwise;
- shop rows: every order still exists, belongs to the final survivor of the number it was
  placed for and is scrubbed iff that survivor is erased; favourites and addresses follow the
  same owner, addresses are scrubbed when erased, both go with a customer deleted for good;
- the engine: every event decided exactly once, every merge, anonymise and delete applied
  (never skipped, never dead-lettered), nothing pending, no dead letter.

Each example runs in its own database, a clone of the migrated template."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo
from pytest_postgresql.executors.noop import NoopExecutor

from syncctl.loader import read_cursor, stage_page
from syncctl.simulator.population import customer_number
from syncctl.simulator.state import TritonX
from syncctl.tritonx import ChangePage
from tests.truth import assert_database_equals_tritonx

CUSTOMERS = 8
SOURCE = "tritonx"
SKUS = ("sku-1", "sku-2", "sku-3")
KINDS = (
    "edit",
    "edit",
    "create",
    "merge",
    "merge",
    "merge_n",
    "chain",
    "anonymise",
    "delete",
    "delete",
    "shop",
    "shop",
    "shop",
    "sync",
)
_databases = itertools.count()

Operation = tuple[str, int, int, int]
operations = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)),
    min_size=3,
    max_size=30,
)


@dataclass(frozen=True)
class Chaos:
    """How badly the feed behaves: probabilities per page."""

    duplicates: float
    stale: float
    repeat_page: float
    shuffle: float


chaos = st.builds(
    Chaos,
    duplicates=st.sampled_from([0.0, 0.3, 0.8]),
    stale=st.sampled_from([0.0, 0.3, 0.8]),
    repeat_page=st.sampled_from([0.0, 0.3]),
    shuffle=st.sampled_from([0.0, 0.5]),
)


# -------------------------------------------------------------------------------------------------
# The model
# -------------------------------------------------------------------------------------------------
@dataclass
class ShopModel:
    """The shop rows the test wrote, each under the number the shop meant when writing it."""

    orders: dict[str, str] = field(default_factory=dict)  # order_number -> number
    favourites: set[tuple[str, str]] = field(default_factory=set)  # (number, sku)
    addresses: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (number, postcode)


@dataclass
class Expected:
    """The database the semantics promise, given tritonX's truth and what the shop wrote."""

    survivor: dict[str, str]
    customers: set[str]
    tombstones: dict[str, str]
    redirects: dict[str, str]
    order_owner: dict[str, str]
    erased: set[str]
    favourites: set[tuple[str, str]]
    address_owner: dict[int, str]


def final_survivor(truth: dict[str, Any], number: str) -> str:
    while truth[number]["status"] == "merged":
        number = truth[number]["into"]
    return number


def expected_state(truth: dict[str, Any], shop: ShopModel) -> Expected:
    survivor = {n: final_survivor(truth, n) for n in truth}
    order_owner = {o: survivor[n] for o, n in shop.orders.items()}
    with_orders = set(order_owner.values())
    status = {n: t["status"] for n, t in truth.items()}
    # a delete keeps the customer (anonymised) while orders are its bookkeeping
    removed = {n for n, s in status.items() if s == "deleted" and n not in with_orders}
    erased = {n for n, s in status.items() if s in ("anonymised", "deleted")} - removed
    return Expected(
        survivor=survivor,
        customers={n for n, s in status.items() if s == "live"} | erased,
        tombstones={n: "anonymised" for n in erased} | {n: "deleted" for n in removed},
        redirects={n: survivor[n] for n, s in status.items() if s == "merged"},
        order_owner=order_owner,
        erased=erased,
        favourites={(survivor[n], s) for n, s in shop.favourites if survivor[n] not in removed},
        address_owner={
            a: survivor[n] for a, (n, _) in shop.addresses.items() if survivor[n] not in removed
        },
    )


# -------------------------------------------------------------------------------------------------
# Databases, the feed and the shop
# -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fresh_database(
    postgresql_template: NoopExecutor, pg_server: NoopExecutor
) -> Iterator[Callable[[], str]]:
    """A factory of databases cloned from the migrated template (one per hypothesis example:
    function-scoped fixtures are not reset between examples)."""

    def dsn_for(name: str) -> str:
        return make_conninfo(
            host=pg_server.host, port=pg_server.port, user=pg_server.user, dbname=name
        )

    made: list[str] = []

    def fresh() -> str:
        name = f"model_{next(_databases)}"
        with psycopg.connect(dsn_for("postgres"), autocommit=True) as admin:
            for old in made:  # the previous example's database is done with
                admin.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
            made.clear()
            admin.execute(
                f'CREATE DATABASE "{name}" TEMPLATE "{postgresql_template.template_dbname}"'
            )
        made.append(name)
        return dsn_for(name)

    yield fresh
    with psycopg.connect(dsn_for("postgres"), autocommit=True) as admin:
        for old in made:
            admin.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')


def deliver(
    conn: psycopg.Connection[Any],
    tritonx: TritonX,
    rng: random.Random,
    bad: Chaos,
    max_pages: int | None = None,
) -> None:
    """The feed from the database's cursor on (to the end, or max_pages pages), at least once."""
    pages = 0
    while max_pages is None or pages < max_pages:
        pages += 1
        cursor = read_cursor(conn, SOURCE)
        conn.commit()
        after = int(cursor or 0)
        events, next_cursor, more = tritonx.changes(after, rng.randint(1, 6))
        if not events:
            return
        page = list(events)
        if rng.random() < bad.duplicates:
            # as the simulator's chaos does: repeat the tail, stop the cursor short of it
            cut = rng.randrange(len(events))
            page += events[cut:]
            next_cursor, more = events[cut]["seq"], True
        if rng.random() < bad.duplicates:
            page += rng.choices(events, k=rng.randint(1, 3))
        if after > 1 and rng.random() < bad.stale:
            for _ in range(rng.randint(1, 3)):
                page.insert(rng.randrange(len(page) + 1), tritonx.event(rng.randint(1, after)))
        if rng.random() < bad.shuffle:
            rng.shuffle(page)  # the engine applies a batch in seq order, whatever the page's
        stage_page(conn, SOURCE, cursor, ChangePage(page, str(next_cursor), more))
        if rng.random() < bad.repeat_page:
            again = read_cursor(conn, SOURCE)
            conn.commit()
            stage_page(conn, SOURCE, again, ChangePage(page, str(next_cursor), more))
        if not more:
            return


def shop_activity(conn: psycopg.Connection[Any], number: str, sku: str, shop: ShopModel) -> None:
    """The shop places an order, marks a favourite and saves an address for `number`, resolved
    as the shop does (following its redirect); only for a customer that is local and not
    erased: the shop cannot sell to anyone else."""
    row = conn.execute(
        "SELECT c.id FROM shop.customer AS c WHERE c.id = sync.resolve_customer(%s)"
        " AND NOT EXISTS (SELECT FROM sync.tombstone AS t"
        "                 WHERE t.customer_number = c.customer_number)",
        [number],
    ).fetchone()
    if row is None:
        conn.rollback()
        return
    customer_id = row[0]
    order_number = f"O-{len(shop.orders) + 1}"
    conn.execute(
        "INSERT INTO shop.orders (customer_id, order_number, total_amount, delivery_name,"
        " delivery_postcode, contact_email) VALUES (%s, %s, %s, %s, %s, %s)",
        [customer_id, order_number, len(shop.orders) + 1, f"Name {number}", "1234 AB", "x@y.nl"],
    )
    conn.execute(
        "INSERT INTO shop.favourite (customer_id, sku) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        [customer_id, sku],
    )
    postcode = f"{1000 + len(shop.addresses)} ZZ"
    address = conn.execute(
        "INSERT INTO shop.address (customer_id, recipient_name, street, house_number, postcode,"
        " city, country_code) VALUES (%s, %s, 'Dorpsstraat', 7, %s, 'Utrecht', 'NL')"
        " RETURNING id",
        [customer_id, f"Name {number}", postcode],
    ).fetchone()
    assert address is not None
    conn.commit()
    shop.orders[order_number] = number
    shop.favourites.add((number, sku))
    shop.addresses[address[0]] = (number, postcode)


def live_numbers(tritonx: TritonX, known: list[str]) -> list[str]:
    return [n for n in known if (c := tritonx.customer(n)) is not None and c.status == "live"]


def run_operation(
    operation: Operation,
    tritonx: TritonX,
    known: list[str],
    conn: psycopg.Connection[Any],
    rng: random.Random,
    bad: Chaos,
    shop: ShopModel,
) -> None:
    kind, a, b, c = operation
    live = live_numbers(tritonx, known)
    if kind == "create":
        known.append(tritonx.create())
    elif kind == "sync":
        deliver(conn, tritonx, rng, bad, max_pages=1 + a % 3)
    elif kind == "shop":
        shop_activity(conn, known[a % len(known)], SKUS[b % len(SKUS)], shop)
    elif not live:
        return
    elif kind == "edit":
        tritonx.edit(
            live[a % len(live)],
            city=f"city-{b}",
            phone=None if b % 3 == 0 else f"+31 20 {b:03d} {c:04d}",
            infix=None if c % 2 else "van",
            house_number=1 + c,
        )
    elif kind == "anonymise":
        tritonx.anonymise(live[a % len(live)])
    elif kind == "delete":
        tritonx.delete(live[a % len(live)])
    elif len(live) < 2:
        return
    elif kind == "merge":
        old, into = live[a % len(live)], live[b % len(live)]
        if old != into:
            tritonx.merge(old, into)
    elif kind == "merge_n":
        # several olds into one survivor, back to back in the feed
        into = live[a % len(live)]
        others = [n for n in live if n != into]
        for old in rng.sample(others, k=min(len(others), 2 + b % 3)):
            tritonx.merge(old, into)
    elif kind == "chain" and len(live) >= 3:
        # A -> B, then B -> C: A must end up redirected to C in one step
        first, second, third = rng.sample(live, k=3)
        tritonx.merge(first, second)
        tritonx.merge(second, third)


# -------------------------------------------------------------------------------------------------
# Comparing
# -------------------------------------------------------------------------------------------------
def assert_database_equals_model(
    conn: psycopg.Connection[Any], tritonx: TritonX, expected: Expected
) -> None:
    truth = tritonx.current_state()
    assert_database_equals_tritonx(conn, truth)

    customers = dict(
        conn.execute(
            "SELECT customer_number, id FROM shop.customer WHERE customer_number IS NOT NULL"
        ).fetchall()
    )
    assert set(customers) == expected.customers
    assert dict(
        conn.execute("SELECT old_number, survivor_number FROM sync.redirect").fetchall()
    ) == (expected.redirects)
    assert dict(conn.execute("SELECT customer_number, kind FROM sync.tombstone").fetchall()) == (
        expected.tombstones
    )
    # the shop's lookup: every number ever known leads to its final survivor, in one step
    resolved = dict(
        conn.execute(
            "SELECT n, sync.resolve_customer(n) FROM unnest(%s::text[]) AS n", [list(truth)]
        ).fetchall()
    )
    assert resolved == {n: customers.get(expected.survivor[n]) for n in truth}

    orders = {
        o: (n, name, email)
        for o, n, name, email in conn.execute(
            "SELECT o.order_number, c.customer_number, o.delivery_name, o.contact_email"
            " FROM shop.orders AS o JOIN shop.customer AS c ON c.id = o.customer_id"
        ).fetchall()
    }
    order_count = conn.execute("SELECT count(*) FROM shop.orders").fetchone()
    assert order_count == (len(expected.order_owner),), "an order was lost or appeared"
    assert {o: n for o, (n, _, _) in orders.items()} == expected.order_owner
    for order_number, (owner, name, email) in orders.items():
        if owner in expected.erased:
            assert (name, email) == (None, None), f"{order_number} of erased {owner} kept data"
        else:
            assert name is not None and email == "x@y.nl", f"{order_number} lost its data"

    favourites = set(
        conn.execute(
            "SELECT c.customer_number, f.sku FROM shop.favourite AS f"
            " JOIN shop.customer AS c ON c.id = f.customer_id"
        ).fetchall()
    )
    assert favourites == expected.favourites
    addresses = {
        a: (n, name, postcode)
        for a, n, name, postcode in conn.execute(
            "SELECT a.id, c.customer_number, a.recipient_name, a.postcode FROM shop.address AS a"
            " JOIN shop.customer AS c ON c.id = a.customer_id"
        ).fetchall()
    }
    assert {a: n for a, (n, _, _) in addresses.items()} == expected.address_owner
    for address_id, (owner, name, postcode) in addresses.items():
        if owner in expected.erased:
            assert (name, postcode) == (None, None), f"address {address_id} of {owner} kept data"
        else:
            assert name is not None and postcode is not None

    # the engine: every tritonX event decided exactly once, all merges/erasures applied
    events = {
        e["event_id"]: e["type"]
        for e in (tritonx.event(seq) for seq in range(1, tritonx.last_seq + 1))
    }
    decided = conn.execute(
        "SELECT event_id, count(*), min(outcome), max(outcome), min(reason)"
        " FROM sync.audit WHERE event_id IS NOT NULL GROUP BY event_id"
    ).fetchall()
    assert {row[0] for row in decided} == set(events), "an event was never decided, or invented"
    assert all(row[1] == 1 for row in decided), "an event was decided twice"
    wrongly_skipped = [
        (events[e], low, reason)
        for e, _, low, high, reason in decided
        if events[e] != "customer.upserted" and (low, high) != ("applied", "applied")
    ]
    assert wrongly_skipped == []
    states = dict(
        conn.execute("SELECT state, count(*) FROM sync.inbox_status GROUP BY state").fetchall()
    )
    assert set(states) <= {"applied", "skipped", "duplicate"}, states
    assert conn.execute("SELECT count(*) FROM sync.dead_letter").fetchone() == (0,)
    conn.commit()


@pytest.mark.slow
@settings(  # the number of examples comes from the profile (tests/conftest.py)
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(operations=operations, seed=st.integers(0, 2**16), bad=chaos)
def test_database_equals_the_model(
    fresh_database: Callable[[], str], operations: list[Operation], seed: int, bad: Chaos
) -> None:
    rng = random.Random(seed)
    tritonx = TritonX(customers=CUSTOMERS, seed=seed)
    known = [customer_number(i) for i in range(1, CUSTOMERS + 1)]
    shop = ShopModel()
    with psycopg.connect(fresh_database()) as conn:
        deliver(conn, tritonx, rng, bad)
        for number in rng.sample(known, k=CUSTOMERS // 2):
            shop_activity(conn, number, rng.choice(SKUS), shop)
        for operation in operations:
            run_operation(operation, tritonx, known, conn, rng, bad, shop)
        deliver(conn, tritonx, rng, bad)
        expected = expected_state(tritonx.current_state(), shop)
        assert_database_equals_model(conn, tritonx, expected)
