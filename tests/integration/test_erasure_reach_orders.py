"""Rows the customer's own linked rows reach (an order's older delivery address, a wish's
shipping address) when several customers go in one run: the set form must give what one by one
gives in feed order, and a retention run's dry run must count what the run then changes, per
table, although the customers before one in the run let go of rows (their pointers move to a
scrubbed copy, their wishes go) that decide whether the row is the later customer's alone.

On the pagila-like `deliveries` schema of tests/integration/test_erasure_own_rows.py, where a
rental names the address it was delivered to and a wish the address it ships to."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from syncctl.cli.gdpr import purge
from tests.feed import event, stage
from tests.integration.test_dry_runs_shared_rows import (
    LONG_AGO,
    NOW,
    _changed,
    _printed_tables,
    _tables,
    rentals_policy,
)
from tests.integration.test_erasure_own_rows import (  # noqa: F401 (fixtures)
    SCRUBBED,
    _address,
    _customer,
    _moved,
    _person,
    _rent,
    _wish,
    deliveries,
)
from tests.integration.test_erasure_sets import (  # noqa: F401
    _apply_both_ways_on,
    add_billing,
    clones,
)


def removal_and_anonymisation(
    removed: str, anonymised: tuple[str, int], removal_first: bool
) -> list[dict[str, Any]]:
    """A page deleting `removed` (version 2) and anonymising `anonymised` (number, version),
    in the order asked for: the events are made in feed order (an event's seq is given when it
    is made; reordering the list afterwards changes nothing)."""
    page = []
    for removal in (True, False) if removal_first else (False, True):
        if removal:
            page.append(event("customer.deleted", removed, 2))
        else:
            page.append(
                event("customer.anonymized", anonymised[0], anonymised[1], reason_code="AVG")
            )
    return page


@pytest.mark.parametrize("order", ["wisher first", "renter first"])
def test_an_older_address_a_removed_customers_wish_ships_to_gives_what_one_by_one_gives(
    deliveries: psycopg.Connection[Any],  # noqa: F811
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],  # noqa: F811
    order: str,
) -> None:
    """The renter moved; its rental keeps the older address, where another customer's wish
    ships too. One by one, the wisher's removal first leaves the row to the renter's rental
    alone (scrubbed when the renter goes); the renter first finds the wish using it (left),
    and the wisher's removal then finds only an erased customer's rental keeping it: scrubbed,
    not deleted. The set gives what one by one gives."""
    conn = deliveries
    numbers = ["TX00000101", "TX00000102"]
    stage(conn, [_person(n) for n in numbers])
    renter, _ = _customer(conn, numbers[0])
    _rent(conn, renter, _customer(conn, numbers[0])[1])
    conn.commit()
    older = _moved(conn, numbers[0])
    wisher, _ = _customer(conn, numbers[1])
    _wish(conn, wisher, older)
    conn.commit()
    page = removal_and_anonymisation(numbers[1], (numbers[0], 3), order == "wisher first")

    together, states = _apply_both_ways_on(clones, page)

    assert states == {"applied": 2}
    assert _address(together, older) == SCRUBBED


def _local(conn: psycopg.Connection[Any], address_id: int) -> int:
    """A customer only the shop knows, living at address_id, with a rental long ago (no
    delivery address)."""
    row = conn.execute(
        "INSERT INTO public.customer (first_name, last_name, email, address_id)"
        " VALUES (%s, %s, %s, %s) RETURNING customer_id",
        [f"F{secrets.token_hex(4)}", f"L{secrets.token_hex(4)}", None, address_id],
    ).fetchone()
    assert row is not None
    conn.execute(
        "INSERT INTO public.rental (rental_date, customer_id) VALUES (%s, %s)",
        [LONG_AGO, row[0]],
    )
    return int(row[0])


def _new_address(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "INSERT INTO public.address (address, postal_code, phone) VALUES (%s, %s, %s)"
        " RETURNING address_id",
        [f"S{secrets.token_hex(5)}", secrets.token_hex(3), f"+31{secrets.randbelow(10**9):09d}"],
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    "earlier", ["lives there now", "wishes it shipped there", "wishes it shipped to it"]
)
def test_the_purge_dry_run_counts_an_older_address_customers_before_let_go_of(
    deliveries: psycopg.Connection[Any],  # noqa: F811
    dsn: str,
    earlier: str,
) -> None:
    """Two customers the retention run anonymises, in key order: the first lives at (or has
    a wish shipped to) the address the second's rental was delivered to before it moved. The
    first lets go of it (a scrubbed copy of its own; its wish goes), then the second reaches it
    alone and scrubs it in place: the dry run counts that row too. Or the first's wish ships to
    the second's own address: with the wish gone, the second scrubs it in place (not a copy)."""
    conn = deliveries
    first = _local(conn, _new_address(conn))
    older = _new_address(conn)
    second = _local(conn, older)
    if earlier != "wishes it shipped to it":
        conn.execute(
            "UPDATE public.rental SET address_id = %s WHERE customer_id = %s", [older, second]
        )
        conn.execute(
            "UPDATE public.customer SET address_id = %s WHERE customer_id = %s",
            [_new_address(conn), second],
        )
    if earlier == "lives there now":
        conn.execute(
            "UPDATE public.customer SET address_id = %s WHERE customer_id = %s", [older, first]
        )
    else:
        _wish(conn, first, older)
    conn.commit()
    assert first < second
    rentals_policy(conn)
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)

    dry = runner.invoke(purge, ["--dry-run", "--now", NOW.isoformat()], obj=settings)
    assert dry.exit_code == 0, dry.output
    before = _tables(conn)
    ran = runner.invoke(purge, ["--now", NOW.isoformat()], obj=settings)
    assert ran.exit_code == 0, ran.output
    after = _tables(conn)

    assert _address(conn, older) == SCRUBBED
    assert {t: rows for t, (rows, _) in _printed_tables(dry.output).items()} == {
        t: rows for t, (rows, _) in _printed_tables(ran.output).items()
    }
    changed = _changed(before, after)["public.address"]
    assert _printed_tables(dry.output)["public.address"] == (
        sum(changed.values()),
        ", ".join(
            f"{n} {what}"
            for what, n in (
                ("copied", changed.get("added", 0)),
                ("scrubbed in place", changed.get("changed", 0)),
            )
            if n
        )
        + "; 2 customer(s)",
    )


def test_an_address_a_removed_customers_wish_ships_to_is_scrubbed_when_the_wisher_goes_first(
    deliveries: psycopg.Connection[Any],  # noqa: F811
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],  # noqa: F811
) -> None:
    """A customer's wish ships to another customer's address; the wisher is removed first in
    feed order (the events made in that order: an event's seq is given when it is made), then
    the address's customer is anonymised: its address is its alone by then, scrubbed in place,
    in the set as one by one."""
    conn = deliveries
    numbers = ["TX00000111", "TX00000112"]
    stage(conn, [_person(n) for n in numbers])
    (key, address_id), (wisher, _) = (_customer(conn, n) for n in numbers)
    _wish(conn, wisher, address_id)
    conn.commit()
    page = [event("customer.deleted", numbers[1], 2)]
    page.append(event("customer.anonymized", numbers[0], 2, reason_code="AVG"))

    together, states = _apply_both_ways_on(clones, page)

    assert states == {"applied": 2}
    assert _address(together, address_id) == SCRUBBED
    row = together.execute(
        "SELECT address_id FROM public.customer WHERE customer_id = %s", [key]
    ).fetchone()
    assert row == (address_id,)


@pytest.fixture
def billed(deliveries: psycopg.Connection[Any]) -> psycopg.Connection[Any]:  # noqa: F811
    """`deliveries` with a second pointer to the address table: a billing address the shop
    keeps (optional, no tritonX field feeds it), mapped as a second related table."""
    from tests.integration import test_dry_runs_shared_rows as pagila

    conn = deliveries
    conn.execute("RESET ROLE")
    add_billing(conn, pagila.MAPPING)
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
        " VALUES ('public', 'customer', 'billing_address_id', 'not_personal')"
    )
    conn.execute("RESET ROLE")
    conn.commit()
    assert conn.execute("SELECT * FROM sync.coverage_defects()").fetchall() == []
    return conn


SCENARIOS = [
    "orders to the same and to other old addresses",
    "a wish and an order to one old address",
    "billed to where it lives",
    "billed to an old delivery address",
    "staff at an old delivery address",
    "a household member at an old delivery address",
    "a neighbour's order to an old delivery address",
]


def _scenario(conn: psycopg.Connection[Any], number: str, scenario: str) -> None:
    """The customer `number` with rentals and wishes as the scenario says."""
    key, home = _customer(conn, number)
    olds = [_new_address(conn) for _ in range(3)]
    for address_id in (olds[0], olds[0], olds[0], olds[1], olds[1], home):
        _rent(conn, key, address_id)
    if scenario == "a wish and an order to one old address":
        _wish(conn, key, olds[2])
        _rent(conn, key, olds[2])
    elif scenario == "billed to where it lives":
        conn.execute(
            "UPDATE public.customer SET billing_address_id = address_id WHERE customer_id = %s",
            [key],
        )
    elif scenario == "billed to an old delivery address":
        conn.execute(
            "UPDATE public.customer SET billing_address_id = %s WHERE customer_id = %s",
            [olds[1], key],
        )
    elif scenario == "staff at an old delivery address":
        conn.execute("INSERT INTO public.staff VALUES (1, %s)", [olds[0]])
    elif scenario == "a household member at an old delivery address":
        stage(conn, [_person("TX00000199")])
        conn.execute(
            "UPDATE public.customer SET address_id = %s WHERE customer_id = %s",
            [olds[0], _customer(conn, "TX00000199")[0]],
        )
    elif scenario == "a neighbour's order to an old delivery address":
        stage(conn, [_person("TX00000199")])
        _rent(conn, _customer(conn, "TX00000199")[0], olds[1])
    conn.commit()


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("erasure", ["anonymise", "delete"])
def test_the_dry_run_counts_per_table_what_the_erasure_changes(
    billed: psycopg.Connection[Any], scenario: str, erasure: str
) -> None:
    """One customer with rentals delivered to its address and to older ones, on a schema with a
    delivery and a billing pointer: the plan (anonymise_plan, delete_plan) counts per table
    what the run reports and what changed in the tables (a delete of a customer with rentals
    is an anonymisation)."""
    conn = billed
    number = "TX00000191"
    stage(conn, [_person(number)])
    _scenario(conn, number, scenario)
    planned = {
        table: rows
        for table, _, rows in conn.execute(
            f"SELECT * FROM sync.{erasure}_plan(%s)", [number]
        ).fetchall()
    }
    conn.commit()
    before = _tables(conn)

    if erasure == "anonymise":
        stage(conn, [event("customer.anonymized", number, 2, reason_code="AVG")])
        action = "customer.anonymized"
    else:
        stage(conn, [event("customer.deleted", number, 2)])
        action = "customer.deleted"
    after = _tables(conn)

    row = conn.execute("SELECT counts FROM sync.audit WHERE action = %s", [action]).fetchone()
    assert row is not None
    counts = row[0]
    assert {t: n for t, n in planned.items() if t.startswith("public.")} == {
        t: n for t, n in counts.items() if t.startswith("public.")
    }
    changed = {t: sum(c.values()) for t, c in _changed(before, after).items()}
    assert {t: n for t, n in counts.items() if t.startswith("public.")} == changed


@pytest.mark.parametrize("erasure", ["customer.anonymized", "customer.deleted"])
def test_an_address_billed_and_lived_at_counts_once_in_the_set_as_one_by_one(
    billed: psycopg.Connection[Any],
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],  # noqa: F811
    erasure: str,
) -> None:
    """Customers billed to where they live, erased together (no rentals: a delete removes
    them): the one address row each is counted once, in the set as one by one."""
    conn = billed
    numbers = ["TX00000181", "TX00000182"]
    stage(conn, [_person(n) for n in numbers])
    conn.execute("UPDATE public.customer SET billing_address_id = address_id")
    conn.commit()
    page = [event(erasure, n, 2, reason_code="AVG") for n in numbers]

    together, states = _apply_both_ways_on(clones, page)

    assert states == {"applied": 2}
    counts = together.execute(
        "SELECT (counts ->> 'public.address')::integer FROM sync.audit WHERE action = %s",
        [erasure],
    ).fetchall()
    assert counts == [(1,), (1,)]
