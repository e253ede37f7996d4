"""Dry runs on a schema shaped like pagila's, where the customer row points to its address
(`customer.address_id`, the parent direction) and a staff table points to addresses too: what
`syncctl purge --dry-run`, `anonymise --dry-run`, `merge --dry-run`, `erasure execute
--dry-run` and `sync.delete_plan` say, per table, is what the run then reports and what changed
in the tables: rows scrubbed in place, rows copied (an address staff share is copied and
scrubbed, never changed), rows deleted, and the customers. Customers only the shop knows (no
tritonX number, as all of pagila's own) and a household of two whose shared address the
retention run copies for the first and scrubs in place for the last are among them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from syncctl import engine, gdpr, mapping
from syncctl.cli.gdpr import erasure_execute, purge
from tests.feed import event, stage, upserted

SCHEMA = """
CREATE TABLE public.address (
    address_id serial PRIMARY KEY, address text NOT NULL, postal_code text,
    phone text NOT NULL);
CREATE TABLE public.staff (
    staff_id integer PRIMARY KEY, address_id integer NOT NULL REFERENCES public.address);
CREATE TABLE public.customer (
    customer_id serial PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL,
    email text, address_id integer NOT NULL REFERENCES public.address,
    create_date date DEFAULT CURRENT_DATE NOT NULL);
CREATE TABLE public.rental (
    rental_id serial PRIMARY KEY, rental_date timestamptz NOT NULL,
    customer_id integer NOT NULL REFERENCES public.customer);
CREATE INDEX ON public.rental (customer_id);
CREATE TABLE public.wishlist (
    customer_id integer NOT NULL REFERENCES public.customer, film text NOT NULL,
    PRIMARY KEY (customer_id, film));
GRANT SELECT, INSERT, UPDATE, DELETE
    ON public.customer, public.address, public.rental, public.wishlist TO syncctl_owner;
GRANT SELECT ON public.staff TO syncctl_owner;
GRANT USAGE ON SEQUENCE public.customer_customer_id_seq, public.address_address_id_seq
    TO syncctl_owner;
"""

MAPPING = """
format = 1

[customer]
schema = "public"
table = "customer"
key = "customer_id"
key_generate = "default"
number = "link"
version = "link"

[customer.columns]
first_name = { field = "first_name", null_as = "" }
last_name  = { join = ["infix", "last_name"], null_as = "" }
email      = "email"

[[related]]
name = "address"
schema = "public"
table = "address"
key = "address_id"
key_generate = "default"
via = { customer_column = "address_id" }
on_anonymise = "scrub_or_detach"

[related.columns]
address     = { join = ["street", "house_number", "house_number_addition"], null_as = "" }
postal_code = "postcode"
phone       = { first_of = ["phone", "mobile"], null_as = "" }

[not_stored]
fields = ["gender", "birth_date", "city", "country_code", "loyalty_card", "home_store",
          "customer_group", "newsletter_opt_in", "blocked", "updated_at"]

[gdpr]
created_column = "create_date"
last_order = { schema = "public", table = "rental", column = "rental_date" }
"""

PII = {
    "customer": {
        "customer_id": "not_personal",
        "first_name": "fixed",
        "last_name": "fixed",
        "email": "null",
        "address_id": "not_personal",
        "create_date": "not_personal",
    },
    "address": {
        "address_id": "not_personal",
        "address": "fixed",
        "postal_code": "null",
        "phone": "fixed",
    },
    "rental": {
        "rental_id": "not_personal",
        "rental_date": "not_personal",
        "customer_id": "not_personal",
    },
    "wishlist": {"customer_id": "not_personal", "film": "not_personal"},
}

LONG_AGO = datetime(2022, 3, 1, tzinfo=UTC)
RECENT = datetime(2026, 10, 1, tzinfo=UTC)
NOW = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture
def rentals(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The schema made, granted, mapped and classified; rentals are bookkeeping, a wish list
    goes with its customer."""
    conn.execute(SCHEMA)
    conn.execute("SET ROLE syncctl_owner")
    document = mapping.parse(MAPPING, "rentals.toml").document
    conn.execute("SELECT sync.install_mapping(%s, 'rentals.toml')", [Jsonb(document)])
    classify(conn, PII)
    yield conn


def classify(conn: psycopg.Connection[Any], pii: dict[str, dict[str, str]]) -> None:
    """As the owner role (set by the caller): the PII registry and the rules of the schema's
    tables; then back to the login, committed, coverage clean."""
    for table, columns in pii.items():
        for column, strategy in columns.items():
            conn.execute(
                "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy,"
                " value) VALUES ('public', %s, %s, %s, %s)",
                [table, column, strategy, "" if strategy == "fixed" else None],
            )
    conn.execute(
        "INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)"
        " VALUES ('public', 'rental', 'scrub', true), ('public', 'wishlist', 'delete_rows', false)"
    )
    conn.execute("RESET ROLE")
    conn.commit()
    assert conn.execute("SELECT * FROM sync.coverage_defects()").fetchall() == []


def _word() -> str:
    return secrets.token_hex(5)


def _address(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "INSERT INTO public.address (address, postal_code, phone) VALUES (%s, %s, %s)"
        " RETURNING address_id",
        [f"S{_word()} 1", _word()[:6], f"+31{secrets.randbelow(10**9):09d}"],
    ).fetchone()
    assert row is not None
    return int(row[0])


def _staff(conn: psycopg.Connection[Any], address_id: int) -> None:
    conn.execute(
        "INSERT INTO public.staff VALUES ((SELECT count(*) + 1 FROM public.staff), %s)",
        [address_id],
    )


def _local(conn: psycopg.Connection[Any], address_id: int, rented: datetime = LONG_AGO) -> int:
    """A customer only the shop knows (no tritonX number), with a rental and a wish."""
    row = conn.execute(
        "INSERT INTO public.customer (first_name, last_name, email, address_id)"
        " VALUES (%s, %s, %s, %s) RETURNING customer_id",
        [f"F{_word()}", f"L{_word()}", f"{_word()}@example.nl", address_id],
    ).fetchone()
    assert row is not None
    _rent(conn, int(row[0]), rented)
    return int(row[0])


def _rent(conn: psycopg.Connection[Any], key: int, rented: datetime = LONG_AGO) -> None:
    conn.execute(
        "INSERT INTO public.rental (rental_date, customer_id) VALUES (%s, %s)", [rented, key]
    )
    conn.execute("INSERT INTO public.wishlist VALUES (%s, %s)", [key, f"film {_word()}"])


def _linked(conn: psycopg.Connection[Any], number: str) -> int:
    """A customer tritonX made (a number, a staged snapshot), with a rental and a wish."""
    stage(conn, [upserted(number, 1)])
    row = conn.execute("SELECT syncmap.key_of(%s)::integer", [number]).fetchone()
    assert row is not None and row[0] is not None
    _rent(conn, int(row[0]))
    conn.commit()
    return int(row[0])


def _address_of(conn: psycopg.Connection[Any], key: int) -> int:
    row = conn.execute(
        "SELECT address_id FROM public.customer WHERE customer_id = %s", [key]
    ).fetchone()
    assert row is not None
    return int(row[0])


def _tables(conn: psycopg.Connection[Any]) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """Every row of the shop's tables, by table and key (films are random: unique)."""
    return {
        "public.address": {
            r[0]: r for r in conn.execute("SELECT * FROM public.address").fetchall()
        },
        "public.customer": {
            r[0]: r for r in conn.execute("SELECT * FROM public.customer").fetchall()
        },
        "public.rental": {r[0]: r for r in conn.execute("SELECT * FROM public.rental").fetchall()},
        # by film: a merge re-points a wish, it does not make a new one
        "public.wishlist": {
            r[1]: r for r in conn.execute("SELECT * FROM public.wishlist").fetchall()
        },
        "public.staff": {r[0]: r for r in conn.execute("SELECT * FROM public.staff").fetchall()},
    }


def _changed(
    before: dict[str, dict[Any, tuple[Any, ...]]], after: dict[str, dict[Any, tuple[Any, ...]]]
) -> dict[str, dict[str, int]]:
    """Per table, what changed: rows changed in place, rows added (copies), rows deleted."""
    changes: dict[str, dict[str, int]] = {}
    for table, old in before.items():
        new = after[table]
        seen = {
            "changed": sum(1 for k, row in old.items() if k in new and new[k] != row),
            "added": sum(1 for k in new if k not in old),
            "deleted": sum(1 for k in old if k not in new),
        }
        if any(seen.values()):
            changes[table] = {kind: n for kind, n in seen.items() if n}
    return changes


def _printed_tables(output: str) -> dict[str, tuple[int, str]]:
    """The per-table lines `syncctl purge` and its dry run print: table -> (rows, the rest)."""
    printed = {}
    for line in output.splitlines():
        if line.startswith("  "):
            table, rows, *rest = line.split(maxsplit=2)
            printed[table] = (int(rows), rest[0] if rest else "")
    return printed


# -------------------------------------------------------------------------------------------------
# retention
# -------------------------------------------------------------------------------------------------
def rentals_policy(conn: psycopg.Connection[Any]) -> None:
    """A retention policy, active since LONG_AGO: two years after the last rental."""
    gdpr.create_policy(
        conn,
        "rentals",
        name="Rentals",
        description="Rentals",
        legal_basis="contract",
        retention="2 years",
        retention_from="last_order",
        categories=["public.customer", "public.address", "public.rental", "public.wishlist"],
        membership="all",
        customer_group=None,
        actor="dpo:test",
    )
    gdpr.activate_policy(conn, "rentals", actor="dpo:test", now=LONG_AGO)


def test_the_purge_dry_run_counts_the_rows_and_customers_the_purge_changes(
    rentals: psycopg.Connection[Any], dsn: str
) -> None:
    conn = rentals
    own = _local(conn, _address(conn))
    staff_address = _address(conn)
    _staff(conn, staff_address)
    at_staff = [_local(conn, staff_address), _local(conn, staff_address)]
    household = _address(conn)
    first, last = _local(conn, household), _local(conn, household)
    held = _local(conn, _address(conn), rented=RECENT)
    conn.commit()
    linked = _linked(conn, "TX00000001")
    rentals_policy(conn)
    released = {own, *at_staff, first, last, linked}

    steps = gdpr.purge_plan(conn, now=NOW)
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)
    dry = runner.invoke(purge, ["--dry-run", "--now", NOW.isoformat()], obj=settings)
    assert dry.exit_code == 0, dry.output
    before = _tables(conn)
    # in batches of two: the household's first and last are in different batches
    ran = runner.invoke(purge, ["--now", NOW.isoformat(), "--batch-size", "2"], obj=settings)
    assert ran.exit_code == 0, ran.output
    after = _tables(conn)

    # the dry run's rows per table are the run's, broken down by what happens to them, with
    # the customers
    assert {t: rows for t, (rows, _) in _printed_tables(dry.output).items()} == {
        t: rows for t, (rows, _) in _printed_tables(ran.output).items()
    }
    assert _printed_tables(dry.output) == {
        # its own, the linked customer's, and the household's for the last of the two in place;
        # copies for the two at the staff's address and for the household's first
        "public.address": (6, "3 copied, 3 scrubbed in place; 6 customer(s)"),
        "public.customer": (6, "6 scrubbed in place; 6 customer(s)"),
        "public.wishlist": (6, "6 deleted; 6 customer(s)"),
        "sync.inbox": (1, "1 scrubbed in place; 1 customer(s)"),
    }
    assert f"dry run: would purge {len(released)} customer(s)" in dry.output
    assert f"purged {len(released)} customer(s)" in ran.output
    assert {(s.table, s.action): (s.rows, s.customers) for s in steps} == {
        ("public.address", "anonymise: scrub"): (3, 3),
        ("public.address", "anonymise: scrubbed copy"): (3, 3),
        ("public.customer", "anonymise"): (6, 6),
        ("public.wishlist", "anonymise: delete_rows"): (6, 6),
        ("sync.inbox", "anonymise: scrub"): (1, 1),
    }
    # which is what changed in the tables
    assert _changed(before, after) == {
        "public.address": {"changed": 3, "added": 3},
        "public.customer": {"changed": len(released)},
        "public.wishlist": {"deleted": len(released)},
    }
    assert after["public.staff"] == before["public.staff"]
    assert after["public.address"][staff_address] == before["public.address"][staff_address]
    kept = _address_of(conn, held)
    assert after["public.address"][kept] == before["public.address"][kept]
    # and the customers per table are those whose audit row names the table
    customers: dict[str, int] = {}
    for (counts,) in conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'gdpr.retention_purge'"
    ).fetchall():
        for table in counts:
            customers[table] = customers.get(table, 0) + 1
    assert {
        t: int(rest.split("; ")[1].split()[0])
        for t, (_, rest) in _printed_tables(dry.output).items()
    } == customers
    assert gdpr.purge_plan(conn, now=NOW) == []


# -------------------------------------------------------------------------------------------------
# anonymise, delete and merge by number
# -------------------------------------------------------------------------------------------------
def _share_with_staff(conn: psycopg.Connection[Any], key: int) -> int:
    address_id = _address_of(conn, key)
    _staff(conn, address_id)
    conn.commit()
    return address_id


@pytest.mark.parametrize("shared", [False, True], ids=["own address", "staff's address"])
def test_the_anonymise_dry_run_counts_what_the_anonymisation_changes(
    rentals: psycopg.Connection[Any], shared: bool
) -> None:
    conn = rentals
    key = _linked(conn, "TX00000001")
    if shared:
        _share_with_staff(conn, key)
    planned = engine.anonymise(
        conn, "TX00000001", reason_code="AVG", actor="ops:test", dry_run=True
    )
    before = _tables(conn)
    done = engine.anonymise(conn, "TX00000001", reason_code="AVG", actor="ops:test")
    after = _tables(conn)

    assert planned.counts == done.counts
    address = ("public.address", 1, "scrubbed copy" if shared else "scrub")
    assert [(p.table, p.rows, p.detail) for p in planned.plan if p.table == address[0]] == [address]
    assert _changed(before, after) == {
        "public.address": {"added": 1} if shared else {"changed": 1},
        "public.customer": {"changed": 1},
        "public.wishlist": {"deleted": 1},
    }


@pytest.mark.parametrize("shared", [False, True], ids=["own address", "staff's address"])
def test_the_delete_plan_counts_what_the_delete_changes(
    rentals: psycopg.Connection[Any], shared: bool
) -> None:
    conn = rentals
    stage(conn, [upserted("TX00000001", 1)])  # no rentals: the delete removes the customer
    key = int(conn.execute("SELECT syncmap.key_of('TX00000001')::integer").fetchone()[0])  # type: ignore[index]
    conn.execute("INSERT INTO public.wishlist VALUES (%s, %s)", [key, f"film {_word()}"])
    conn.commit()
    if shared:
        _share_with_staff(conn, key)
    planned = {
        table: (action, rows)
        for table, action, rows in conn.execute(
            "SELECT * FROM sync.delete_plan('TX00000001')"
        ).fetchall()
    }
    before = _tables(conn)
    stage(conn, [event("customer.deleted", "TX00000001", 2)])
    after = _tables(conn)
    counts = conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'customer.deleted'"
    ).fetchone()

    assert counts is not None
    assert {t: rows for t, (_, rows) in planned.items()} == counts[0]
    assert _changed(before, after) == {
        "public.customer": {"deleted": 1},
        "public.wishlist": {"deleted": 1},
    } | ({} if shared else {"public.address": {"deleted": 1}})


@pytest.mark.parametrize("shared", ["own", "staff", "survivor"])
def test_the_merge_dry_run_counts_what_the_merge_changes(
    rentals: psycopg.Connection[Any], shared: str
) -> None:
    conn = rentals
    old = _linked(conn, "TX00000001")
    survivor = _linked(conn, "TX00000002")
    if shared == "staff":
        _share_with_staff(conn, old)
    elif shared == "survivor":  # a household: the survivor lives at the old customer's address
        conn.execute(
            "UPDATE public.customer SET address_id = %s WHERE customer_id = %s",
            [_address_of(conn, old), survivor],
        )
        conn.commit()
    planned = engine.merge(conn, "TX00000001", "TX00000002", actor="ops:test", dry_run=True)
    before = _tables(conn)
    done = engine.merge(conn, "TX00000001", "TX00000002", actor="ops:test")
    after = _tables(conn)

    assert planned.counts == done.counts
    # the address only the old customer used goes with it; a shared one stays as it is
    assert _changed(before, after) == {
        "public.customer": {"deleted": 1},
        "public.rental": {"changed": 1},
        "public.wishlist": {"changed": 1},
    } | ({"public.address": {"deleted": 1}} if shared == "own" else {})


# -------------------------------------------------------------------------------------------------
# erasure requests
# -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shared", [False, True], ids=["own address", "staff's address"])
def test_the_erasure_dry_run_counts_what_the_erasure_changes(
    rentals: psycopg.Connection[Any], dsn: str, shared: bool
) -> None:
    conn = rentals
    address_id = _address(conn)
    if shared:
        _staff(conn, address_id)
    key = _local(conn, address_id)  # only the shop knows it: no number, no `anonymise` dry run
    conn.commit()
    request = gdpr.receive_erasure(conn, key, actor="bo:7")
    gdpr.verify_erasure(conn, request, actor="bo:7")
    gdpr.schedule_erasure(conn, request, actor="bo:7")
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)

    dry = runner.invoke(erasure_execute, [str(request), "--dry-run"], obj=settings)
    before = _tables(conn)
    ran = runner.invoke(erasure_execute, [str(request)], obj=settings)
    after = _tables(conn)

    assert dry.exit_code == 0, dry.output
    assert f"dry run: erasure request {request} would anonymise its customer" in dry.output
    planned = {t: (rows, rest) for t, (rows, rest) in _printed_tables(dry.output).items()}
    assert planned == {
        "public.address": (1, "scrubbed copy" if shared else "scrub"),
        "public.customer": (1, "scrub"),
        "public.wishlist": (1, "delete_rows"),
    }
    changed = next(line for line in ran.output.splitlines() if line.startswith("rows changed: "))
    assert changed == "rows changed: " + ", ".join(
        f"{t} {n}" for t, (n, _) in sorted(planned.items())
    )
    assert _changed(before, after) == {
        "public.address": {"added": 1} if shared else {"changed": 1},
        "public.customer": {"changed": 1},
        "public.wishlist": {"deleted": 1},
    }
    # the staff's address is left as it is: the proof finds the person's values in it
    assert (ran.exit_code, "residue found" in ran.output) == ((1, True) if shared else (0, False))
    again = runner.invoke(erasure_execute, [str(request), "--dry-run"], obj=settings)
    if shared:  # failed: a retry searches again, there is nothing left to anonymise
        assert "its customer is anonymised already" in again.output
