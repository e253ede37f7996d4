"""A row of a related table that several customers use (a household's shared address, the old
address both members' orders keep after they moved, the address of a gift naming two
customers) is scrubbed once every customer that uses it is erased, whichever goes first: an
erased customer's kept rows (its orders) no longer count as a use of the row. Before, each
customer went while another one's rows still used the row, and the row kept the personal data
for good. A row a customer who is not erased still uses, or a table not linked to customers
(staff), is never touched. The dry runs count what the run changes. Each path: one by one, in
pages of their own, and a page's anonymisations and deletes as one set."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from syncctl import engine, gdpr, mapping
from syncctl.cli.gdpr import erasure_execute, purge
from tests.feed import event, stage
from tests.integration import test_dry_runs_shared_rows as pagila
from tests.integration import test_erasure_own_rows as own_rows
from tests.integration import test_erasure_sets as erasure_sets
from tests.integration.test_dry_runs_shared_rows import (
    LONG_AGO,
    NOW,
    _printed_tables,
    rentals_policy,
)
from tests.integration.test_dry_runs_shared_rows import _address as _new_address
from tests.integration.test_erasure_own_rows import (
    SCRUBBED,
    WAYS,
    _address,
    _customer,
    _feed,
    _moved,
    _person,
    _rent,
    _wish,
)
from tests.integration.test_erasure_reach_locks import _in_thread, _until_waiting
from tests.integration.test_erasure_sets import _apply_both_ways_on

# the fixtures this module shares
deliveries = own_rows.deliveries
clones = erasure_sets.clones

ORDERS = pytest.mark.parametrize("first", [0, 1], ids=["first member first", "second first"])

Clones = Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]]


def _anonymised(number: str, version: int = 3) -> dict[str, Any]:
    return event("customer.anonymized", number, version, reason_code="AVG")


def _point(conn: psycopg.Connection[Any], key: int, address_id: int) -> None:
    conn.execute(
        "UPDATE public.customer SET address_id = %s WHERE customer_id = %s", [address_id, key]
    )


def _household(conn: psycopg.Connection[Any], numbers: list[str]) -> int:
    """Two customers living at one address (both point to it), each with a rental delivered
    there: the address."""
    stage(conn, [_person(n) for n in numbers])
    (first, address_id), (second, _) = (_customer(conn, n) for n in numbers)
    _point(conn, second, address_id)
    _rent(conn, first, address_id)
    _rent(conn, second, address_id)
    conn.commit()
    return address_id


def _planned(conn: psycopg.Connection[Any], number: str, delete: bool = False) -> dict[str, int]:
    """What the dry run says erasing `number` changes, per table of the shop."""
    if delete:
        rows = conn.execute("SELECT * FROM sync.delete_plan(%s)", [number]).fetchall()
        planned = {table: int(n) for table, _, n in rows}
    else:
        plan = engine.anonymise(conn, number, reason_code="AVG", actor="ops:test", dry_run=True)
        planned = {p.table: p.rows for p in plan.plan}
    return {t: n for t, n in planned.items() if t.startswith("public.")}


def _last_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    row = conn.execute(
        "SELECT counts FROM sync.audit WHERE action IN ('customer.anonymized', 'customer.deleted')"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert row is not None
    return {t: int(n) for t, n in row[0].items() if t.startswith("public.")}


def _erase_in_turn(
    conn: psycopg.Connection[Any], together: bool, numbers: list[str], address_id: int
) -> dict[str, int]:
    """Anonymise the two customers in the order given, each in a page of its own: the row is
    left by the first and scrubbed by the second, whose dry run counts what it changes (its
    plan, returned)."""
    before = _address(conn, address_id)
    assert before != SCRUBBED
    _feed(conn, together, [_anonymised(numbers[0])])
    assert _address(conn, address_id) == before
    planned = _planned(conn, numbers[1])
    _feed(conn, together, [_anonymised(numbers[1])])
    assert _address(conn, address_id) == SCRUBBED
    assert planned == _last_counts(conn)
    return planned


@WAYS
@ORDERS
def test_a_households_address_is_scrubbed_when_the_second_member_goes(
    deliveries: psycopg.Connection[Any], together: bool, first: int
) -> None:
    """Case (a): the first member gets a scrubbed copy, its rental keeps the shared row; the
    second's anonymisation later finds the row used only by its own and the first's rental."""
    conn = deliveries
    numbers = [f"TX0000010{first}", f"TX0000011{first}"]
    address_id = _household(conn, numbers)
    if first:
        numbers.reverse()

    planned = _erase_in_turn(conn, together, numbers, address_id)

    assert planned["public.address"] == 1
    rentals = conn.execute("SELECT address_id FROM public.rental").fetchall()
    assert rentals == [(address_id,)] * 2


@WAYS
@ORDERS
def test_the_old_address_both_movers_orders_keep_is_scrubbed_when_the_second_goes(
    deliveries: psycopg.Connection[Any], together: bool, first: int
) -> None:
    """Case (b): both moved; their rentals keep the old shared address."""
    conn = deliveries
    numbers = [f"TX0000020{first}", f"TX0000021{first}"]
    address_id = _household(conn, numbers)
    assert _moved(conn, numbers[0]) == address_id
    assert _moved(conn, numbers[1]) == address_id
    conn.commit()
    if first:
        numbers.reverse()

    planned = _erase_in_turn(conn, together, numbers, address_id)

    # its current address and the old one
    assert planned["public.address"] == 2


@ORDERS
@pytest.mark.parametrize("moved", [False, True], ids=["household", "both moved"])
def test_one_page_erasing_both_scrubs_the_shared_row_as_one_by_one_does(
    deliveries: psycopg.Connection[Any], clones: Clones, first: int, moved: bool
) -> None:
    conn = deliveries
    numbers = [f"TX000003{int(moved)}{first}", f"TX000004{int(moved)}{first}"]
    address_id = _household(conn, numbers)
    if moved:
        for number in numbers:
            _moved(conn, number)
    conn.commit()
    if first:
        numbers.reverse()

    together, states = _apply_both_ways_on(clones, [_anonymised(n) for n in numbers])

    assert states == {"applied": 2}
    assert _address(together, address_id) == SCRUBBED


@WAYS
def test_a_removed_member_scrubs_the_row_the_erased_members_rentals_keep(
    deliveries: psycopg.Connection[Any], together: bool
) -> None:
    """The second member has no rentals (a delete removes it) and a wish shipped to the shared
    address: the row goes to nobody alive, but the first's rentals keep pointing to it, so it
    is scrubbed, not deleted."""
    conn = deliveries
    numbers = ["TX00000501", "TX00000502"]
    stage(conn, [_person(n) for n in numbers])
    (renter, address_id), (wisher, _) = (_customer(conn, n) for n in numbers)
    _point(conn, wisher, address_id)
    _rent(conn, renter, address_id)
    _wish(conn, wisher, address_id)
    conn.commit()

    _feed(conn, together, [_anonymised(numbers[0])])
    planned = _planned(conn, numbers[1], delete=True)
    _feed(conn, together, [event("customer.deleted", numbers[1], 3)])

    assert _address(conn, address_id) == SCRUBBED
    assert conn.execute(
        "SELECT count(*) FROM public.customer WHERE customer_id = %s", [wisher]
    ).fetchone() == (0,)
    assert planned == _last_counts(conn)
    assert planned == {"public.address": 1, "public.customer": 1, "public.wishlist": 1}


@WAYS
def test_a_row_a_customer_who_is_not_erased_uses_is_never_touched(
    deliveries: psycopg.Connection[Any], together: bool
) -> None:
    conn = deliveries
    numbers = ["TX00000601", "TX00000602", "TX00000603"]
    address_id = _household(conn, numbers[:2])
    stage(conn, [_person(numbers[2])])
    neighbour, _ = _customer(conn, numbers[2])
    _rent(conn, neighbour, address_id)
    conn.commit()
    before = _address(conn, address_id)

    _feed(conn, together, [_anonymised(numbers[0])])
    planned = _planned(conn, numbers[1])
    _feed(conn, together, [_anonymised(numbers[1])])

    assert _address(conn, address_id) == before
    assert planned == _last_counts(conn)


@WAYS
def test_a_row_staff_use_is_never_touched(
    deliveries: psycopg.Connection[Any], together: bool
) -> None:
    conn = deliveries
    numbers = ["TX00000701", "TX00000702"]
    address_id = _household(conn, numbers)
    conn.execute("INSERT INTO public.staff VALUES (%s, %s)", [secrets.randbelow(10**6), address_id])
    conn.commit()
    before = _address(conn, address_id)

    _feed(conn, together, [_anonymised(numbers[0])])
    _feed(conn, together, [_anonymised(numbers[1])])

    assert _address(conn, address_id) == before


@pytest.fixture
def gifts(deliveries: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """A gift names its buyer, its recipient and the address it was delivered to."""
    conn = deliveries
    conn.execute(
        "CREATE TABLE public.gift (gift_id serial PRIMARY KEY,"
        " buyer_id integer NOT NULL REFERENCES public.customer,"
        " recipient_id integer REFERENCES public.customer,"
        " address_id integer REFERENCES public.address);"
        "CREATE INDEX ON public.gift (buyer_id); CREATE INDEX ON public.gift (recipient_id);"
        "CREATE INDEX ON public.gift (address_id);"
        "GRANT SELECT, INSERT, UPDATE, DELETE ON public.gift TO syncctl_owner"
    )
    conn.execute("SET ROLE syncctl_owner")
    for column in ("gift_id", "buyer_id", "recipient_id", "address_id"):
        conn.execute(
            "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
            " VALUES ('public', 'gift', %s, 'not_personal')",
            [column],
        )
    conn.execute(
        "INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)"
        " VALUES ('public', 'gift', 'scrub', true)"
    )
    conn.execute("RESET ROLE")
    conn.commit()
    return conn


@WAYS
@ORDERS
def test_a_gifts_address_is_scrubbed_once_buyer_and_recipient_are_erased(
    gifts: psycopg.Connection[Any], together: bool, first: int
) -> None:
    """Case (c): the gift names both; neither's customer row points to its address."""
    conn = gifts
    numbers = [f"TX0000080{first}", f"TX0000081{first}"]
    stage(conn, [_person(n) for n in numbers])
    (buyer, _), (recipient, _) = (_customer(conn, n) for n in numbers)
    address_id = _new_address(conn)
    conn.execute(
        "INSERT INTO public.gift (buyer_id, recipient_id, address_id) VALUES (%s, %s, %s)",
        [buyer, recipient, address_id],
    )
    conn.commit()
    if first:
        numbers.reverse()

    planned = _erase_in_turn(conn, together, numbers, address_id)

    # its own address and the gift's
    assert planned["public.address"] == 2


@pytest.mark.parametrize("first", [0, 1], ids=["first member first", "second first"])
def test_the_back_office_anonymisation_scrubs_it_too(
    deliveries: psycopg.Connection[Any], first: int
) -> None:
    """By hand (the back office, retention, erasure requests): syncmap.erase_customer."""
    conn = deliveries
    numbers = [f"TX0000090{first}", f"TX0000091{first}"]
    address_id = _household(conn, numbers)
    if first:
        numbers.reverse()

    for number in numbers:
        planned = _planned(conn, number)
        report = engine.anonymise(conn, number, reason_code="AVG", actor="ops:test")
        conn.commit()
        assert planned == {t: n for t, n in report.counts.items() if t.startswith("public.")}

    assert _address(conn, address_id) == SCRUBBED


def test_residue_search_finds_nothing_of_the_shared_row_after_both(
    deliveries: psycopg.Connection[Any],
) -> None:
    conn = deliveries
    numbers = ["TX00000951", "TX00000952"]
    address_id = _household(conn, numbers)
    street = _address(conn, address_id)
    assert street is not None
    second, _ = _customer(conn, numbers[1])

    _feed(conn, False, [_anonymised(n) for n in numbers])

    hits = conn.execute(
        "SELECT column_name, hits FROM gdpr.residue_search(ARRAY[gdpr._digest(%s)], %s)"
        " WHERE hits > 0",
        [street[0], str(second)],
    ).fetchall()
    assert hits == []


def test_a_shop_order_to_the_row_committed_while_the_second_erasure_waits_keeps_it(
    deliveries: psycopg.Connection[Any], dsn: str
) -> None:
    """The first member is erased; a neighbour's rental to the household's address is being
    written while the second member's anonymisation starts: the erasure waits for the row
    (FOR UPDATE after the customer row), then sees the neighbour's rental and leaves the row."""
    conn = deliveries
    numbers = ["TX00000961", "TX00000962", "TX00000963"]
    address_id = _household(conn, numbers[:2])
    stage(conn, [_person(numbers[2])])
    neighbour, _ = _customer(conn, numbers[2])
    conn.commit()
    _feed(conn, False, [_anonymised(numbers[0])])
    before = _address(conn, address_id)
    with psycopg.connect(dsn) as shop, psycopg.connect(dsn) as eraser:
        _rent(shop, neighbour, address_id)  # not committed: holds the row FOR KEY SHARE
        pid = eraser.info.backend_pid
        thread, errors = _in_thread(
            lambda: engine.anonymise(eraser, numbers[1], reason_code="AVG", actor="ops:test")
        )
        _until_waiting(conn, pid, thread)
        shop.commit()
        thread.join()
        assert errors == []

    assert _address(conn, address_id) == before


@pytest.mark.parametrize("linked", [True, False], ids=["with numbers", "shop only"])
def test_the_purge_dry_run_counts_what_the_purge_of_a_household_changes(
    deliveries: psycopg.Connection[Any], dsn: str, linked: bool
) -> None:
    """Retention releases both members of a household in one run, in key order: the first
    gets a scrubbed copy; the second scrubs the shared address, as the first's rentals are an
    erased customer's: its number tombstoned or, for a customer only the shop knows, its key
    marked erased (before, such a customer's rentals kept using the row and the second got a
    copy too: the shared row kept the personal data). The dry run counts what the run changes,
    either way."""
    conn = deliveries
    if linked:
        numbers = ["TX00000971", "TX00000972"]
        stage(conn, [_person(n) for n in numbers])
        keys = [_customer(conn, n)[0] for n in numbers]
        address_id = _customer(conn, numbers[0])[1]
    else:
        address_id = _new_address(conn)
        keys = _shop_customers(conn, address_id)
    for key in keys:
        _point(conn, key, address_id)
        conn.execute(
            "INSERT INTO public.rental (rental_date, customer_id, address_id) VALUES (%s, %s, %s)",
            [LONG_AGO, key, address_id],
        )
    conn.commit()
    rentals_policy(conn)
    before = _address(conn, address_id)
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)

    dry = runner.invoke(purge, ["--dry-run", "--now", NOW.isoformat()], obj=settings)
    ran = runner.invoke(purge, ["--now", NOW.isoformat()], obj=settings)

    assert dry.exit_code == 0, dry.output
    assert ran.exit_code == 0, ran.output
    assert _printed_tables(dry.output)["public.address"] == (
        2,
        "1 copied, 1 scrubbed in place; 2 customer(s)",
    )
    assert {t: n for t, (n, _) in _printed_tables(dry.output).items()} == {
        t: n for t, (n, _) in _printed_tables(ran.output).items()
    }
    assert before != SCRUBBED
    assert _address(conn, address_id) == SCRUBBED


def test_an_erasure_request_of_the_second_member_scrubs_the_shared_address_and_proves_it(
    deliveries: psycopg.Connection[Any], dsn: str
) -> None:
    """`syncctl erasure execute` for the second member of a household, the first anonymised
    before: the dry run counts the shared address as scrubbed, the run scrubs it and the
    proof's residue search finds nothing in it (before: a scrubbed copy, the shared row kept
    the values, the request failed with residue)."""
    conn = deliveries
    numbers = ["TX00000981", "TX00000982"]
    address_id = _household(conn, numbers)
    _feed(conn, False, [_anonymised(numbers[0])])
    key, _ = _customer(conn, numbers[1])
    request = gdpr.receive_erasure(conn, str(key), actor="bo:7")
    gdpr.verify_erasure(conn, request, actor="bo:7")
    gdpr.schedule_erasure(conn, request, actor="bo:7")
    conn.commit()
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)

    dry = runner.invoke(erasure_execute, [str(request), "--dry-run"], obj=settings)
    ran = runner.invoke(erasure_execute, [str(request)], obj=settings)

    assert dry.exit_code == 0, dry.output
    planned = _printed_tables(dry.output)
    assert planned["public.address"] == (1, "scrub")
    assert ran.exit_code == 0, ran.output
    assert "residue found" not in ran.output
    changed = next(line for line in ran.output.splitlines() if line.startswith("rows changed: "))
    for table, (rows, _) in planned.items():
        assert f"{table} {rows}" in changed
    assert _address(conn, address_id) == SCRUBBED


def _shop_customers(conn: psycopg.Connection[Any], address_id: int) -> list[int]:
    """Two customers only the shop knows (no tritonX number) living at the address: keys."""
    rows = conn.execute(
        "INSERT INTO public.customer (first_name, last_name, email, address_id)"
        " SELECT 'F' || g, 'L' || g, NULL, %s FROM generate_series(1, 2) AS g"
        " RETURNING customer_id",
        [address_id],
    ).fetchall()
    return [int(r[0]) for r in rows]


def _shop_household(conn: psycopg.Connection[Any]) -> tuple[list[int], int]:
    """Two customers only the shop knows (no tritonX number) living at one address, each with
    a rental delivered there: their keys and the address."""
    address_id = _new_address(conn)
    keys = _shop_customers(conn, address_id)
    for key in keys:
        _rent(conn, key, address_id)
    conn.commit()
    return keys, address_id


def _from_backoffice(conn: psycopg.Connection[Any], key: int) -> None:
    conn.execute("SELECT sync.anonymise_from_backoffice(%s, 'AVG', 'backoffice:op-17')", [key])
    conn.commit()


@ORDERS
def test_a_shop_only_households_address_is_scrubbed_when_the_second_member_goes(
    deliveries: psycopg.Connection[Any], first: int
) -> None:
    """Customers the shop alone knows leave no tombstone: the back office marks the key of the
    one it anonymises as erased, so its rentals stop using the shared row, and the second
    member's anonymisation scrubs it, in either order (before: the row kept the values)."""
    conn = deliveries
    keys, address_id = _shop_household(conn)
    if first:
        keys.reverse()
    before = _address(conn, address_id)

    _from_backoffice(conn, keys[0])
    assert _address(conn, address_id) == before
    _from_backoffice(conn, keys[1])

    assert before != SCRUBBED
    assert _address(conn, address_id) == SCRUBBED


def test_a_key_the_shop_gives_again_is_not_an_erased_customers(
    deliveries: psycopg.Connection[Any],
) -> None:
    """The shop deletes an anonymised customer it alone knew and gives its key to a new one,
    who rents to the household's address: the new customer is not erased, so the other
    member's anonymisation leaves the row it uses."""
    conn = deliveries
    # the engine follows the shop's deletes by a trigger (docs/own-database.md)
    conn.execute("GRANT TRIGGER ON TABLE public.customer TO syncctl_owner")
    conn.execute("SET ROLE syncctl_owner")
    document = mapping.parse(pagila.MAPPING, "deliveries.toml").document
    conn.execute("SELECT sync.install_mapping(%s, 'deliveries.toml')", [Jsonb(document)])
    conn.execute("RESET ROLE")
    (gone, other), address_id = _shop_household(conn)
    _from_backoffice(conn, gone)
    conn.execute("DELETE FROM public.rental WHERE customer_id = %s", [gone])
    conn.execute("DELETE FROM public.customer WHERE customer_id = %s", [gone])
    conn.execute(
        "INSERT INTO public.customer (customer_id, first_name, last_name, email, address_id)"
        " VALUES (%s, 'New', 'Person', NULL, %s)",
        [gone, address_id],
    )
    _rent(conn, gone, address_id)
    conn.commit()
    before = _address(conn, address_id)

    _from_backoffice(conn, other)

    assert _address(conn, address_id) == before
    assert conn.execute("SELECT count(*) FROM sync.erased_key").fetchone() == (1,)
