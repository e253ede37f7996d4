"""The customer's own rows that point to the row the customer points to (a rental delivered to
the customer's own address, a wish shipped there) do not make that row shared: only this
customer uses it, so an anonymisation scrubs it in place and a removal deletes it. Before, any
row of another table pointing to it counted as another user: the anonymised customer got a
scrubbed copy, and its own rentals kept pointing to the original with the personal data in it;
a removed customer's address was left behind with nobody pointing to it.

A row another customer's rows use (a household's delivery to a neighbour) is still shared:
never touched, as DESIGN.md says. A merge still moves the rows and keeps the address they point
to. Each path is checked: one by one, and a page's anonymisations and deletes as one set."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from syncctl import engine, mapping
from tests.feed import event, stage, upserted
from tests.integration import test_dry_runs_shared_rows as pagila
from tests.integration.test_erasure_sets import _apply_both_ways_on, _calls, clones  # noqa: F401

SETTING = "syncctl.apply_erasures_together"


@pytest.fixture
def deliveries(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The pagila-like schema, where a rental names the address it was delivered to and a wish
    the address it ships to (each a foreign key to the address table, NULL allowed)."""
    conn.execute(pagila.SCHEMA)
    conn.execute(
        "ALTER TABLE public.rental ADD COLUMN address_id integer REFERENCES public.address;"
        "ALTER TABLE public.wishlist ADD COLUMN ship_to integer REFERENCES public.address"
    )
    conn.execute("SET ROLE syncctl_owner")
    document = mapping.parse(pagila.MAPPING, "deliveries.toml").document
    conn.execute("SELECT sync.install_mapping(%s, 'deliveries.toml')", [Jsonb(document)])
    pii = {
        **pagila.PII,
        "rental": {**pagila.PII["rental"], "address_id": "not_personal"},
        "wishlist": {**pagila.PII["wishlist"], "ship_to": "not_personal"},
    }
    pagila.classify(conn, pii)
    yield conn


def _person(number: str) -> dict[str, Any]:
    word = secrets.token_hex(6)
    return upserted(number, 1, street=f"S{word}", phone=f"+31 20 {secrets.randbelow(10**7):07d}")


def _customer(conn: psycopg.Connection[Any], number: str) -> tuple[int, int]:
    """The customer's key and the address its row points to."""
    row = conn.execute(
        "SELECT c.customer_id, c.address_id FROM public.customer AS c"
        " WHERE c.customer_id = syncmap.key_of(%s)::integer",
        [number],
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _rent(conn: psycopg.Connection[Any], key: int, delivered_to: int) -> None:
    conn.execute(
        "INSERT INTO public.rental (rental_date, customer_id, address_id) VALUES (now(), %s, %s)",
        [key, delivered_to],
    )


def _wish(conn: psycopg.Connection[Any], key: int, ship_to: int) -> None:
    conn.execute(
        "INSERT INTO public.wishlist VALUES (%s, %s, %s)",
        [key, f"film {secrets.token_hex(4)}", ship_to],
    )


def _address(conn: psycopg.Connection[Any], address_id: int) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT address, postal_code, phone FROM public.address WHERE address_id = %s",
        [address_id],
    ).fetchone()


def _addresses(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM public.address").fetchone()
    assert row is not None
    return int(row[0])


def _feed(conn: psycopg.Connection[Any], together: bool, records: list[dict[str, Any]]) -> None:
    conn.execute("SET track_functions = 'pl'")
    if not together:
        conn.execute(f"SET {SETTING} = off")
    outcome = stage(conn, records)
    assert dict(outcome.states) == {"applied": len(records)}
    # the path asked for was taken: the page's erasures as one set, or one by one
    assert (_calls(conn, "_apply_erasures") > 0) is together


SCRUBBED = ("", None, "")
WAYS = pytest.mark.parametrize("together", [True, False], ids=["as a set", "one by one"])


@WAYS
def test_an_anonymised_customers_own_rentals_keep_its_scrubbed_address(
    deliveries: psycopg.Connection[Any], together: bool
) -> None:
    conn = deliveries
    numbers = ["TX00000001", "TX00000002"]
    stage(conn, [_person(n) for n in numbers])
    owned = [_customer(conn, n) for n in numbers]
    for key, address_id in owned:
        _rent(conn, key, address_id)
        _wish(conn, key, address_id)
    conn.commit()
    addresses = _addresses(conn)
    plan = engine.anonymise(conn, numbers[0], reason_code="AVG", actor="ops:test", dry_run=True)

    _feed(conn, together, [event("customer.anonymized", n, 2, reason_code="AVG") for n in numbers])

    assert [(p.table, p.rows, p.detail) for p in plan.plan if p.table == "public.address"] == [
        ("public.address", 1, "scrub")
    ]
    # scrubbed in place: no copy, the customer and its rentals point to the same row
    assert _addresses(conn) == addresses
    for key, address_id in owned:
        assert _still_points(conn, key, address_id)
        assert _address(conn, address_id) == SCRUBBED
        rentals = conn.execute(
            "SELECT address_id FROM public.rental WHERE customer_id = %s", [key]
        ).fetchall()
        assert rentals == [(address_id,)]


def _still_points(conn: psycopg.Connection[Any], key: int, address_id: int) -> bool:
    row = conn.execute(
        "SELECT address_id FROM public.customer WHERE customer_id = %s", [key]
    ).fetchone()
    return row == (address_id,)


@WAYS
def test_a_removed_customers_address_goes_with_its_wishes(
    deliveries: psycopg.Connection[Any], together: bool
) -> None:
    conn = deliveries
    numbers = ["TX00000011", "TX00000012"]
    stage(conn, [_person(n) for n in numbers])
    owned = [_customer(conn, n) for n in numbers]
    for key, address_id in owned:  # no rentals: a delete removes the customer
        _wish(conn, key, address_id)
    conn.commit()
    planned = dict(
        (table, rows)
        for table, _, rows in conn.execute(
            "SELECT * FROM sync.delete_plan(%s)", [numbers[0]]
        ).fetchall()
    )

    _feed(conn, together, [event("customer.deleted", n, 2) for n in numbers])

    removed = {"public.address": 1, "public.customer": 1, "public.wishlist": 1}
    assert {t: n for t, n in planned.items() if t.startswith("public.")} == removed
    for key, address_id in owned:
        assert _still_points(conn, key, address_id) is False
        assert _address(conn, address_id) is None
    counts = conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'customer.deleted' ORDER BY id"
    ).fetchall()
    assert [{t: n for t, n in c.items() if t.startswith("public.")} for (c,) in counts] == [
        removed
    ] * 2


@WAYS
def test_an_address_another_customers_rental_uses_is_never_touched(
    deliveries: psycopg.Connection[Any], together: bool
) -> None:
    """A neighbour's parcel delivered to the customer's address: that row is another
    customer's too; the anonymised customer gets a scrubbed copy of its own."""
    conn = deliveries
    numbers = ["TX00000021", "TX00000022", "TX00000023"]
    stage(conn, [_person(n) for n in numbers])
    (key, address_id), (neighbour, _), (other, other_address) = (
        _customer(conn, n) for n in numbers
    )
    _rent(conn, key, address_id)
    _rent(conn, neighbour, address_id)
    _rent(conn, other, other_address)
    conn.commit()
    before = _address(conn, address_id)
    addresses = _addresses(conn)

    _feed(
        conn,
        together,
        [event("customer.anonymized", n, 2, reason_code="AVG") for n in (numbers[0], numbers[2])],
    )

    assert _address(conn, address_id) == before
    assert _addresses(conn) == addresses + 1
    copy = conn.execute(
        "SELECT a.address, a.postal_code, a.phone FROM public.customer AS c"
        " JOIN public.address AS a USING (address_id) WHERE c.customer_id = %s",
        [key],
    ).fetchone()
    assert copy == SCRUBBED
    assert _address(conn, other_address) == SCRUBBED


def test_a_merge_moves_the_rentals_and_keeps_the_address_they_point_to(
    deliveries: psycopg.Connection[Any],
) -> None:
    conn = deliveries
    numbers = ["TX00000031", "TX00000032"]
    stage(conn, [_person(n) for n in numbers])
    (old, address_id), (survivor, _) = (_customer(conn, n) for n in numbers)
    _rent(conn, old, address_id)
    conn.commit()
    before = _address(conn, address_id)

    stage(conn, [event("customer.merged", numbers[0], 2, into=numbers[1])])

    assert conn.execute("SELECT count(*) FROM sync.dead_letter").fetchone() == (0,)
    assert _address(conn, address_id) == before
    rentals = conn.execute("SELECT customer_id, address_id FROM public.rental").fetchall()
    assert rentals == [(survivor, address_id)]


def _audited_addresses(conn: psycopg.Connection[Any], action: str) -> list[int]:
    """The address rows each audited event of this action counted, in feed order."""
    rows = conn.execute(
        "SELECT (counts ->> 'public.address')::integer FROM sync.audit"
        " WHERE action = %s ORDER BY id",
        [action],
    ).fetchall()
    return [r[0] for r in rows]


def _moved(conn: psycopg.Connection[Any], number: str) -> int:
    """The customer moves: its rows keep the address they name, the customer row points to a
    new one (the feed's write copies an address other rows use). The old address."""
    _, old = _customer(conn, number)
    stage(conn, [upserted(number, 2, street=f"S{secrets.token_hex(6)}")])
    assert _customer(conn, number)[1] != old
    return old


def _customers_who_moved(
    conn: psycopg.Connection[Any], numbers: list[str], own_row: Callable[..., None]
) -> list[int]:
    """Customers, each with a row of its own (`_rent`, `_wish`) naming its address, who then
    move: the addresses those rows keep."""
    stage(conn, [_person(n) for n in numbers])
    for number in numbers:
        own_row(conn, *_customer(conn, number))
    conn.commit()
    return [_moved(conn, n) for n in numbers]


@WAYS
def test_an_older_delivery_address_only_its_orders_use_is_scrubbed(
    deliveries: psycopg.Connection[Any], together: bool
) -> None:
    conn = deliveries
    numbers = ["TX00000041", "TX00000042"]
    older = _customers_who_moved(conn, numbers, _rent)
    plan = engine.anonymise(conn, numbers[0], reason_code="AVG", actor="ops:test", dry_run=True)

    _feed(conn, together, [event("customer.anonymized", n, 3, reason_code="AVG") for n in numbers])

    # the customer's own address and the one its rental was delivered to
    assert [(p.table, p.rows, p.detail) for p in plan.plan if p.table == "public.address"] == [
        ("public.address", 2, "scrub")
    ]
    for address_id in older:
        assert _address(conn, address_id) == SCRUBBED
    rentals = conn.execute("SELECT address_id FROM public.rental ORDER BY rental_id").fetchall()
    assert rentals == [(a,) for a in older]
    assert _audited_addresses(conn, "customer.anonymized") == [2, 2]


@WAYS
def test_a_removed_customers_older_address_goes_with_its_wishes(
    deliveries: psycopg.Connection[Any], together: bool
) -> None:
    conn = deliveries
    numbers = ["TX00000051", "TX00000052"]
    older = _customers_who_moved(conn, numbers, _wish)
    current = [_customer(conn, n)[1] for n in numbers]
    planned = {
        table: rows
        for table, _, rows in conn.execute(
            "SELECT * FROM sync.delete_plan(%s)", [numbers[0]]
        ).fetchall()
    }

    _feed(conn, together, [event("customer.deleted", n, 3) for n in numbers])

    assert planned["public.address"] == 2
    for address_id in older + current:
        assert _address(conn, address_id) is None
    assert _audited_addresses(conn, "customer.deleted") == [2, 2]


@WAYS
def test_an_older_address_a_neighbours_rental_uses_is_never_touched(
    deliveries: psycopg.Connection[Any], together: bool
) -> None:
    conn = deliveries
    numbers = ["TX00000061", "TX00000062", "TX00000063"]
    stage(conn, [_person(n) for n in numbers])
    (key, address_id), (neighbour, _), (other, other_address) = (
        _customer(conn, n) for n in numbers
    )
    _rent(conn, key, address_id)
    _rent(conn, neighbour, address_id)
    _rent(conn, other, other_address)
    conn.commit()
    older = _moved(conn, numbers[0])
    other_older = _moved(conn, numbers[2])
    before = _address(conn, older)

    _feed(
        conn,
        together,
        [event("customer.anonymized", n, 3, reason_code="AVG") for n in (numbers[0], numbers[2])],
    )

    assert _address(conn, older) == before
    assert _address(conn, other_older) == SCRUBBED


@pytest.mark.parametrize("order", ["mover first", "household first"])
def test_an_older_address_a_household_member_now_lives_at_gives_what_one_by_one_gives(
    deliveries: psycopg.Connection[Any],
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],  # noqa: F811
    order: str,
) -> None:
    """The customer moved; a household member's row now points to the address its rental was
    delivered to. One by one, the first of the two to go lets go of it, the second finds it
    used by nothing but an erased customer's rental and scrubs it, whichever goes first. The
    set gives what one by one gives in feed order."""
    conn = deliveries
    numbers = ["TX00000071", "TX00000072"]
    stage(conn, [_person(n) for n in numbers])
    key, address_id = _customer(conn, numbers[0])
    _rent(conn, key, address_id)
    conn.commit()
    older = _moved(conn, numbers[0])
    conn.execute(
        "UPDATE public.customer SET address_id = %s WHERE customer_id = %s",
        [older, _customer(conn, numbers[1])[0]],
    )
    conn.commit()
    if order == "household first":
        numbers.reverse()

    together, states = _apply_both_ways_on(
        clones, [event("customer.anonymized", n, 3, reason_code="AVG") for n in numbers]
    )

    assert states == {"applied": 2}
    assert _address(together, older) == SCRUBBED


@pytest.mark.parametrize("order", ["address owner first", "wisher first"])
def test_an_address_another_customers_wish_ships_to_is_left_with_nobody(
    deliveries: psycopg.Connection[Any],
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],  # noqa: F811
    order: str,
) -> None:
    """A customer's wish ships to another customer's address; both go. Whichever goes first
    leaves the row to the other, who then scrubs or removes it: the address keeps no personal
    data (before, with the address's customer first, the wish's removal left the row with
    nobody pointing to it and the data in it)."""
    conn = deliveries
    numbers = ["TX00000081", "TX00000082"]
    stage(conn, [_person(n) for n in numbers])
    (_, address_id), (wisher, _) = (_customer(conn, n) for n in numbers)
    _wish(conn, wisher, address_id)
    conn.commit()
    # the feed's order is the records' seq: each made in the order asked for
    kinds = ["customer.anonymized", "customer.deleted"]
    pairs = list(zip(kinds, numbers, strict=True))
    if order == "wisher first":
        pairs.reverse()
    page = [event(kind, number, 2, reason_code="AVG") for kind, number in pairs]

    together, states = _apply_both_ways_on(clones, page)

    assert states == {"applied": 2}
    assert _address(together, address_id) in (SCRUBBED, None)
