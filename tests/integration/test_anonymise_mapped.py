"""Anonymisation and delete on a mapped schema other than the reference shop: the boutique
(tests/shops/boutique.sql, mapped by tests/shops/boutique.toml; a uuid key, the tritonX number in
a column of its own, the address in a table the customer row points to, orders partitioned by
month, a customer reference without a foreign key). The customer row is scrubbed per the PII
registry of the mapped table, linked tables follow their anonymise rule, the address the customer
points to is scrubbed when only this customer uses it and detached (left untouched) when another
customer uses it too, a tombstone stops later events, and none of the person's values is left in
the customer, address or order tables."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest

from tests.feed import event, snapshot, stage, upserted
from tests.shops import Boutique
from tests.shops.binding import bind_boutique

SHOP = Boutique()

# one order in a monthly partition, one in another, one in the default partition
ORDER_TIMES = ("2026-01-15T10:00:00+00:00", "2026-06-30T23:00:00+00:00", "2028-02-01T00:00Z")
ADDRESS = 'crm."CustomerAddress"'


@pytest.fixture
def boutique(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The boutique installed, granted, classified and mapped (the engine bound to it)."""
    bind_boutique(conn, SHOP, classified=True)
    assert conn.execute("SELECT count(*) FROM sync.unclassified_columns()").fetchone() == (0,)
    yield conn


def _word() -> str:
    return secrets.token_hex(5)


def _person(number: str) -> dict[str, Any]:
    """A snapshot whose personal values are random: found only where this person left them."""
    return snapshot(
        number,
        email=f"{_word()}@example.nl",
        first_name=f"F{_word()}",
        infix=None,
        last_name=f"L{_word()}",
        phone=f"+31 20 {secrets.randbelow(10**7):07d}",
        mobile=f"+31 6 {secrets.randbelow(10**8):08d}",
        street=f"S{_word()}",
        house_number=secrets.randbelow(900) + 1,
        house_number_addition=None,
        postcode=f"{secrets.randbelow(9000) + 1000} {_word()[:2].upper()}",
        city=f"C{_word()}",
    )


def _customer(
    conn: psycopg.Connection[Any], number: str, *, orders: bool = True
) -> tuple[uuid.UUID, dict[str, Any]]:
    person = _person(number)
    key = SHOP.add_customer(conn, person)
    assert isinstance(key, uuid.UUID)
    conn.execute(
        "UPDATE crm.customer SET notes = %s WHERE customer_uuid = %s",
        [f"likes {person['first_name']}", key],
    )
    if orders:
        for at in ORDER_TIMES:
            order = SHOP.place_order(conn, key, datetime.fromisoformat(at))
            conn.execute(
                "UPDATE sales.orders SET delivery_name = %s WHERE id = %s",
                [f"{person['first_name']} {person['last_name']}", order],
            )
    SHOP.add_favourite(conn, key, "SKU-1")
    conn.execute(
        'INSERT INTO sales."Review" (customer_ref, sku, rating, body) VALUES (%s, %s, 4, %s)',
        [key, "SKU-1", f"by {person['last_name']}"],
    )
    conn.commit()
    return key, person


def _share_address(conn: psycopg.Connection[Any], key: uuid.UUID, with_key: uuid.UUID) -> int:
    """Point customer `key` at the address of `with_key` (a household): its own address goes."""
    row = conn.execute(
        "SELECT address_id FROM crm.customer WHERE customer_uuid = %s", [with_key]
    ).fetchone()
    assert row is not None
    own = conn.execute(
        "UPDATE crm.customer SET address_id = %s WHERE customer_uuid = %s"
        " RETURNING (SELECT address_id FROM crm.customer WHERE customer_uuid = %s)",
        [row[0], key, key],
    ).fetchone()
    assert own is not None
    conn.execute('DELETE FROM crm."CustomerAddress" WHERE id = %s', [own[0]])
    conn.commit()
    return int(row[0])


def _row(conn: psycopg.Connection[Any], query: str, *args: Any) -> dict[str, Any] | None:
    cur = conn.execute(query, list(args))
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d.name for d in cur.description or []], row, strict=True))


def _customer_row(conn: psycopg.Connection[Any], key: uuid.UUID) -> dict[str, Any] | None:
    return _row(conn, "SELECT * FROM crm.customer WHERE customer_uuid = %s", key)


def _address(conn: psycopg.Connection[Any], address_id: int) -> dict[str, Any] | None:
    return _row(conn, f"SELECT * FROM {ADDRESS} WHERE id = %s", address_id)


def _count(conn: psycopg.Connection[Any], query: str, *args: Any) -> int:
    row = conn.execute(query, list(args)).fetchone()
    assert row is not None
    return int(row[0])


def _residue(conn: psycopg.Connection[Any], person: dict[str, Any]) -> list[tuple[str, str]]:
    """(table, field) for every personal value of `person` still found, as a substring of any
    column, in the customer, address and order tables (every partition)."""
    values = {
        field: str(person[field])
        for field in ("email", "first_name", "last_name", "phone", "mobile", "street", "city")
    } | {"postcode": person["postcode"]}
    found = []
    for table in ("crm.customer", ADDRESS, "sales.orders"):
        for field, value in values.items():
            hits = _count(
                conn,
                f"SELECT count(*) FROM {table} AS t WHERE strpos(t::text, %s) > 0",
                value,
            )
            if hits:
                found.append((table, field))
    return found


def _anonymised(conn: psycopg.Connection[Any], number: str, version: int = 2) -> None:
    stage(conn, [event("customer.anonymized", number, version, reason_code="AVG")])


def _deleted(conn: psycopg.Connection[Any], number: str, version: int = 2) -> None:
    stage(conn, [event("customer.deleted", number, version)])


def _audit(conn: psycopg.Connection[Any], number: str, action: str) -> tuple[str, str]:
    row = conn.execute(
        "SELECT outcome, reason FROM sync.audit WHERE customer_number = %s AND action = %s"
        " ORDER BY id DESC LIMIT 1",
        [number, action],
    ).fetchone()
    assert row is not None
    return row[0], row[1]


# -------------------------------------------------------------------------------------------------
# customer.anonymized
# -------------------------------------------------------------------------------------------------
def test_a_feed_anonymisation_scrubs_the_customer_its_address_and_its_orders(
    boutique: psycopg.Connection[Any],
) -> None:
    key, person = _customer(boutique, "TX00000101")
    other, other_person = _customer(boutique, "TX00000102")
    address_id = _customer_row(boutique, key)["address_id"]  # type: ignore[index]
    before_other = (_customer_row(boutique, other), SHOP.read_row(boutique, "TX00000102"))
    assert _residue(boutique, person) != []

    _anonymised(boutique, "TX00000101")

    assert _audit(boutique, "TX00000101", "customer.anonymized")[0] == "applied"
    row = _customer_row(boutique, key)
    assert row is not None
    assert row["tx_ref"] == "TX00000101"
    assert row["full_name"] == "(anonymised)"
    assert row["email"] == f"anon-{key}@invalid"
    assert (row["sex"], row["phone"], row["notes"]) == (None, None, None)
    assert row["birthday"].isoformat() == "1984-01-01"
    assert (row["newsletter"], row["is_blocked"], row["segment"], row["shop_id"]) == (
        "N",
        0,
        "retail",
        1,
    )
    # its own address: scrubbed per the address table's registry, still pointed to
    assert row["address_id"] == address_id
    assert _address(boutique, address_id) == {
        "id": address_id,
        "street": None,
        "zip": None,
        "city": None,
        "country": "NL",
        "created_by": "syncctl",
    }
    # orders kept in every partition (bookkeeping), their personal column scrubbed
    orders = boutique.execute(
        "SELECT tableoid::regclass::text, delivery_name, total_amount FROM sales.orders"
        " WHERE customer_uuid = %s ORDER BY placed_at",
        [key],
    ).fetchall()
    assert [(p, name) for p, name, _ in orders] == [
        ("sales.orders_2026_01", None),
        ("sales.orders_2026_06", None),
        ("sales.orders_default", None),
    ]
    # favourites and reviews (a reference without a foreign key) deleted per rule
    assert _count(boutique, "SELECT count(*) FROM crm.favourite WHERE customer_uuid = %s", key) == 0
    assert _count(boutique, 'SELECT count(*) FROM sales."Review" WHERE customer_ref = %s', key) == 0
    # the tombstone
    assert boutique.execute(
        "SELECT kind FROM sync.tombstone WHERE customer_number = 'TX00000101'"
    ).fetchone() == ("anonymised",)
    # nothing of the person left in the customer, address and order tables
    assert _residue(boutique, person) == []
    # the other customer untouched
    assert (_customer_row(boutique, other), SHOP.read_row(boutique, "TX00000102")) == before_other
    assert _residue(boutique, other_person) != []
    assert _count(boutique, "SELECT count(*) FROM crm.favourite WHERE customer_uuid = %s", other)
    assert _count(boutique, 'SELECT count(*) FROM sales."Review" WHERE customer_ref = %s', other)


def test_a_later_upsert_of_the_number_is_skipped_and_brings_nothing_back(
    boutique: psycopg.Connection[Any],
) -> None:
    key, person = _customer(boutique, "TX00000111")
    _anonymised(boutique, "TX00000111")
    after = _customer_row(boutique, key)
    address = _address(boutique, after["address_id"])  # type: ignore[index]

    again = _person("TX00000111") | {"email": person["email"], "last_name": person["last_name"]}
    again.pop("customer_number")
    stage(boutique, [upserted("TX00000111", 3, **again)])

    assert _audit(boutique, "TX00000111", "customer.upserted") == ("skipped", "tombstone")
    assert _customer_row(boutique, key) == after
    assert _address(boutique, after["address_id"]) == address  # type: ignore[index]
    assert _count(boutique, "SELECT count(*) FROM crm.customer WHERE tx_ref = 'TX00000111'") == 1
    assert _residue(boutique, person) == []
    # nothing personal in the link table (it holds keys, numbers and versions only)
    assert (
        _count(
            boutique,
            "SELECT count(*) FROM sync.customer_link AS l WHERE strpos(l::text, %s) > 0",
            person["email"],
        )
        == 0
    )


def test_a_shared_address_is_detached_and_left_untouched(
    boutique: psycopg.Connection[Any],
) -> None:
    member, _ = _customer(boutique, "TX00000121")
    household, _ = _customer(boutique, "TX00000122")
    shared = _share_address(boutique, member, household)
    before = _address(boutique, shared)
    before_household = _customer_row(boutique, household)
    plan = boutique.execute(
        "SELECT table_name, action, rows FROM sync.anonymise_plan('TX00000121')"
    ).fetchall()
    assert ("crm.CustomerAddress", "detach", 1) in plan
    assert ("crm.customer", "scrub", 1) in plan

    _anonymised(boutique, "TX00000121")

    assert _customer_row(boutique, member)["address_id"] is None  # type: ignore[index]
    assert _address(boutique, shared) == before
    assert _customer_row(boutique, household) == before_household


def test_an_address_another_table_refers_to_is_detached(
    boutique: psycopg.Connection[Any],
) -> None:
    key, _ = _customer(boutique, "TX00000131")
    address_id = _customer_row(boutique, key)["address_id"]  # type: ignore[index]
    boutique.execute(
        f"CREATE TABLE sales.shipment (id bigint PRIMARY KEY,"
        f" address_id bigint REFERENCES {ADDRESS} (id))"
    )
    boutique.execute("INSERT INTO sales.shipment VALUES (1, %s)", [address_id])
    # the engine reads the tables that refer to the address, to know whether it is shared
    boutique.execute("GRANT SELECT ON sales.shipment TO syncctl_owner")
    boutique.commit()
    before = _address(boutique, address_id)

    _anonymised(boutique, "TX00000131")

    assert _audit(boutique, "TX00000131", "customer.anonymized")[0] == "applied"
    assert _customer_row(boutique, key)["address_id"] is None  # type: ignore[index]
    assert _address(boutique, address_id) == before


def test_a_shared_address_behind_a_not_null_pointer_gets_a_scrubbed_copy(
    boutique: psycopg.Connection[Any],
) -> None:
    member, _ = _customer(boutique, "TX00000141")
    household, _ = _customer(boutique, "TX00000142")
    shared = _share_address(boutique, member, household)
    boutique.execute("ALTER TABLE crm.customer ALTER COLUMN address_id SET NOT NULL")
    boutique.commit()
    before = _address(boutique, shared)
    plan = boutique.execute(
        "SELECT table_name, action, rows FROM sync.anonymise_plan('TX00000141')"
    ).fetchall()
    assert ("crm.CustomerAddress", "scrubbed copy", 1) in plan

    _anonymised(boutique, "TX00000141")

    copy = _customer_row(boutique, member)["address_id"]  # type: ignore[index]
    assert copy != shared
    assert _address(boutique, copy) == {
        "id": copy,
        "street": None,
        "zip": None,
        "city": None,
        "country": "NL",
        "created_by": "syncctl",
    }
    assert _address(boutique, shared) == before
    assert _customer_row(boutique, household)["address_id"] == shared  # type: ignore[index]


def test_the_plans_count_what_the_run_changes(boutique: psycopg.Connection[Any]) -> None:
    _customer(boutique, "TX00000151")
    plan = boutique.execute(
        "SELECT table_name, action, rows FROM sync.anonymise_plan('TX00000151') ORDER BY 1"
    ).fetchall()
    assert plan == [
        ("crm.CustomerAddress", "scrub", 1),
        ("crm.customer", "scrub", 1),
        ("crm.favourite", "delete_rows", 1),
        ("sales.Review", "delete_rows", 1),
        ("sales.orders", "scrub", 3),
    ]
    deleting = boutique.execute(
        "SELECT table_name, action, rows FROM sync.delete_plan('TX00000151') ORDER BY 1"
    ).fetchall()
    assert deleting == plan
    _customer(boutique, "TX00000152", orders=False)
    assert boutique.execute(
        "SELECT table_name, action, rows FROM sync.delete_plan('TX00000152') ORDER BY 1"
    ).fetchall() == [
        ("crm.CustomerAddress", "delete_rows", 1),
        ("crm.customer", "delete", 1),
        ("crm.favourite", "delete_rows", 1),
        ("sales.Review", "delete_rows", 1),
    ]


# -------------------------------------------------------------------------------------------------
# customer.deleted
# -------------------------------------------------------------------------------------------------
def test_a_delete_without_orders_removes_the_customer_and_its_own_address(
    boutique: psycopg.Connection[Any],
) -> None:
    key, person = _customer(boutique, "TX00000161", orders=False)
    address_id = _customer_row(boutique, key)["address_id"]  # type: ignore[index]
    member, _ = _customer(boutique, "TX00000162", orders=False)
    household, _ = _customer(boutique, "TX00000163")
    shared = _share_address(boutique, member, household)
    before = _address(boutique, shared)

    _deleted(boutique, "TX00000161")
    _deleted(boutique, "TX00000162")

    for number, customer in (("TX00000161", key), ("TX00000162", member)):
        assert _audit(boutique, number, "customer.deleted") == ("applied", "deleted")
        assert _customer_row(boutique, customer) is None
        assert boutique.execute(
            "SELECT kind FROM sync.tombstone WHERE customer_number = %s", [number]
        ).fetchone() == ("deleted",)
        for query in (
            "SELECT count(*) FROM crm.favourite WHERE customer_uuid = %s",
            'SELECT count(*) FROM sales."Review" WHERE customer_ref = %s',
            "SELECT count(*) FROM sync.customer_link WHERE customer_key = %s::text",
        ):
            assert _count(boutique, query, customer) == 0
    assert _address(boutique, address_id) is None
    assert _address(boutique, shared) == before
    assert _residue(boutique, person) == []
    # a later upsert does not bring it back
    stage(boutique, [upserted("TX00000161", 3)])
    assert _audit(boutique, "TX00000161", "customer.upserted") == ("skipped", "tombstone")
    assert SHOP.key_of(boutique, "TX00000161") is None


def test_a_delete_with_orders_anonymises(boutique: psycopg.Connection[Any]) -> None:
    key, person = _customer(boutique, "TX00000171")

    _deleted(boutique, "TX00000171")

    assert _audit(boutique, "TX00000171", "customer.deleted") == (
        "applied",
        "anonymised: bookkeeping rows kept",
    )
    assert _customer_row(boutique, key)["full_name"] == "(anonymised)"  # type: ignore[index]
    assert _count(boutique, "SELECT count(*) FROM sales.orders WHERE customer_uuid = %s", key) == 3
    assert boutique.execute(
        "SELECT kind FROM sync.tombstone WHERE customer_number = 'TX00000171'"
    ).fetchone() == ("anonymised",)
    assert _residue(boutique, person) == []


# -------------------------------------------------------------------------------------------------
# By hand: the number path (the back office's bigint id cannot name a uuid key)
# -------------------------------------------------------------------------------------------------
def test_anonymise_customer_by_number_queues_the_outbound_event(
    boutique: psycopg.Connection[Any],
) -> None:
    key, person = _customer(boutique, "TX00000181")
    result = boutique.execute(
        "SELECT sync.anonymise_customer('TX00000181', 'AVG', 'ops:test')"
    ).fetchone()
    assert result is not None
    assert result[0]["outcome"] == "applied"
    assert boutique.execute(
        "SELECT event_type FROM sync.outbox WHERE id = %s", [result[0]["outbox_id"]]
    ).fetchone() == ("customer.anonymize_requested",)
    assert _customer_row(boutique, key)["full_name"] == "(anonymised)"  # type: ignore[index]
    assert _residue(boutique, person) == []
    with pytest.raises(psycopg.Error) as refused:
        boutique.execute("SELECT sync.anonymise_customer('TX00000181', 'AVG', 'ops:test')")
    assert refused.value.sqlstate == "SY021"
    boutique.rollback()


def test_the_back_office_id_of_a_uuid_keyed_customer_is_refused_without_data(
    boutique: psycopg.Connection[Any],
) -> None:
    _customer(boutique, "TX00000191")
    with pytest.raises(psycopg.Error) as refused:
        boutique.execute("SELECT sync.anonymise_from_backoffice(42, 'AVG', 'backoffice:t')")
    assert refused.value.sqlstate == "SY020"
    boutique.rollback()


def test_the_back_office_anonymises_a_uuid_keyed_customer_by_its_key(
    boutique: psycopg.Connection[Any],
) -> None:
    key, person = _customer(boutique, "TX00000193")
    local, _ = _customer(boutique, "TX00000194")
    boutique.execute("UPDATE crm.customer SET tx_ref = NULL WHERE customer_uuid = %s", [local])
    boutique.commit()
    for customer in (key, local):  # a linked customer, and a local one without a number
        result = boutique.execute(
            "SELECT sync.anonymise_from_backoffice_key(%s, 'AVG', 'backoffice:t')",
            [str(customer)],
        ).fetchone()
        assert result is not None and result[0]["outcome"] == "applied"
        assert _customer_row(boutique, customer)["full_name"] == "(anonymised)"  # type: ignore[index]
    boutique.commit()
    assert _residue(boutique, person) == []
    queued = boutique.execute("SELECT customer_number FROM sync.outbox").fetchall()
    assert queued == [("TX00000193",)], "tritonX is told of its own customer only"
    # a key that is not a uuid, or names nobody: SY020, the key never echoed
    for hostile in ("not-a-uuid", str(uuid.uuid4()), "42"):
        with pytest.raises(psycopg.Error) as refused:
            boutique.execute(
                "SELECT sync.anonymise_from_backoffice_key(%s, 'AVG', 'backoffice:t')", [hostile]
            )
        assert refused.value.sqlstate == "SY020"
        assert hostile not in str(refused.value)
        boutique.rollback()


def test_an_unclassified_column_of_the_address_table_refuses_the_anonymisation(
    boutique: psycopg.Connection[Any],
) -> None:
    key, person = _customer(boutique, "TX00000197")
    boutique.execute(f"ALTER TABLE {ADDRESS} ADD COLUMN remark text")
    boutique.commit()
    assert boutique.execute("SELECT code FROM sync.anonymise_refusal('TX00000197')").fetchone() == (
        "SY022",
    )
    with pytest.raises(psycopg.Error) as refused:
        boutique.execute("SELECT sync.anonymise_customer('TX00000197', 'AVG', 'ops:test')")
    assert refused.value.sqlstate == "SY022"
    boutique.rollback()
    assert _customer_row(boutique, key)["email"] == person["email"]  # type: ignore[index]
