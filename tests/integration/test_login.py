"""sync.login and sync.login_key: the shop's login always gets a local customer key and a clear
status. On both test schemas: sync.login (ids as bigint) on the reference shop, sync.login_key
(the key as text) on the boutique, whose key is a uuid; tests/integration/test_login_mapped.py
has the boutique's own cases (a stub the refresh fills, NOT NULL shop columns, bootstrap on a
populated shop)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
from psycopg import sql

from syncctl import links
from tests.feed import event, snapshot, stage, upserted
from tests.shops import CustomerKey, ReferenceShop, ShopSchema


def login(
    conn: psycopg.Connection[Any], shop: ShopSchema, number: str | None, email: str
) -> tuple[Any, ...]:
    """(key, status, number) as the shop's login gets them: the key as the shop's type."""
    if isinstance(shop, ReferenceShop):
        row = conn.execute("SELECT * FROM sync.login(%s, %s)", [number, email]).fetchone()
    else:
        row = conn.execute("SELECT * FROM sync.login_key(%s, %s)", [number, email]).fetchone()
    conn.commit()
    assert row is not None
    key = row[0] if row[0] is None or isinstance(shop, ReferenceShop) else uuid.UUID(row[0])
    return (key, *row[1:])


def conflicts(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT kind, customer_number FROM sync.link_conflict ORDER BY id"
    ).fetchall()


def test_linked_customer_is_found_and_refresh_requested(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000001", 1)])
    key = shop.key_of(conn, "TX00000001")
    assert key is not None
    assert login(conn, shop, "TX00000001", "whatever@x.nl") == (key, "linked", "TX00000001")
    queued = conn.execute("SELECT customer_number FROM sync.refresh_request").fetchall()
    assert queued == [("TX00000001",)]


def test_merged_away_number_logs_in_as_the_survivor(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)])
    stage(conn, [event("customer.merged", "TX00000001", 2, into="TX00000002")])
    survivor = shop.key_of(conn, "TX00000002")
    assert survivor is not None
    assert login(conn, shop, "TX00000001", "a@b.nl") == (survivor, "redirected", "TX00000002")


def _local_customer_with_an_order(
    conn: psycopg.Connection[Any], shop: ShopSchema, email: str
) -> tuple[CustomerKey, int]:
    """A customer only the shop knows (no tritonX number), with an order: its key, the order."""
    key = shop.add_customer(conn, snapshot("TX99999999", email=email), linked=False)
    order = shop.place_order(conn, key)
    conn.commit()
    return key, order


def _owner_of_order(
    conn: psycopg.Connection[Any], shop: ShopSchema, order: int
) -> tuple[CustomerKey, str | None]:
    """The key and tritonX number of the customer holding the order."""
    row = conn.execute(
        sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
            sql.Identifier(shop.order_customer_column), sql.SQL(shop.order_table)
        ),
        [order],
    ).fetchone()
    assert row is not None
    return row[0], shop.number_of_order(conn, order)


def test_a_typed_email_takes_over_no_one(conn: psycopg.Connection[Any], shop: ShopSchema) -> None:
    victim, order = _local_customer_with_an_order(conn, shop, "victim@x.nl")
    # the attacker's own number, known to tritonX with the attacker's own e-mail, or not yet
    stage(conn, [upserted("TX00000020", 1, email="attacker@x.nl")])
    for number in ("TX00000020", "TX00000021"):
        for _ in range(2):
            status = login(conn, shop, number, " Victim@X.nl")[1]
            assert status in ("linked", "created"), status
    assert _owner_of_order(conn, shop, order) == (victim, None), "the victim's order moved"
    emails = [
        value
        for row in shop.read_rows(conn).values()
        for column, value in row.items()
        if "email" in shop.fields_of(column) and value is not None
    ]
    typed = conn.execute(
        "SELECT count(*) FROM pg_catalog.unnest(%s::text[]) AS e (email)"
        " WHERE sync.normalise_email(e.email) = 'victim@x.nl'",
        [emails],
    ).fetchone()
    assert typed == (0,), "the typed e-mail was stored in a tritonX-owned column"
    # nor can an operator's repair (or bootstrap) adopt on it later
    assert links.repair_plan(conn).adopt == []
    assert _owner_of_order(conn, shop, order) == (victim, None)


def test_tritonx_email_adopts_the_unlinked_local_customer(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    local, order = _local_customer_with_an_order(conn, shop, "  Anna.de.Vries@Example.NL")
    first = login(conn, shop, "TX00000003", "anything@x.nl")
    assert first[1:] == ("created", "TX00000003"), "adopted before tritonX answered"
    assert _owner_of_order(conn, shop, order) == (local, None)
    # the refresh (or the feed) brings tritonX's own e-mail for the number
    tritonx = upserted("TX00000003", 1, email="anna.de.vries@example.nl", city="Delft")
    stage(conn, [tritonx])
    adopted = login(conn, shop, "TX00000003", "typed-something-else@x.nl")
    assert adopted == (local, "adopted", "TX00000003"), "the shop's key was replaced"
    assert _owner_of_order(conn, shop, order) == (local, "TX00000003")
    assert not shop.has_customer(conn, first[0]), "the stub is absorbed into the local customer"
    assert shop.read_row(conn, "TX00000003") == shop.expected_row(tritonx["customer"])
    assert login(conn, shop, "TX00000003", "")[1] == "linked"
    actors = conn.execute("SELECT actor FROM sync.audit WHERE action = 'customer.adopted'")
    assert actors.fetchall() == [("login",)]


def test_an_empty_tritonx_email_adopts_no_one(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    local, order = _local_customer_with_an_order(conn, shop, " ")
    stage(conn, [upserted("TX00000030", 1, email="")])
    assert login(conn, shop, "TX00000030", " ")[1] == "linked"
    assert links.repair_plan(conn).adopt == []
    assert _owner_of_order(conn, shop, order) == (local, None)


def test_unicode_forms_of_one_email_are_one_email(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    decomposed = "rene\u0301@example.nl"  # e + combining acute
    local, order = _local_customer_with_an_order(conn, shop, decomposed)
    stage(conn, [upserted("TX00000004", 1, email="REN\u00c9@example.nl")])
    linked = login(conn, shop, "TX00000004", "x@y.nl")
    assert linked[1] == "adopted"
    assert _owner_of_order(conn, shop, order) == (linked[0], "TX00000004")
    assert local == linked[0], "the shop's key was replaced"


def test_two_local_customers_with_one_email_are_a_conflict_everywhere(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    twins = [
        _local_customer_with_an_order(conn, shop, "twin@x.nl"),
        _local_customer_with_an_order(conn, shop, "TWIN@x.nl "),
    ]
    stage(conn, [upserted("TX00000005", 1, email="twin@x.nl")])
    # bootstrap and `links repair` adopt neither and record the conflict
    assert links.repair_plan(conn).adopt == []
    assert links.repair(conn, links.repair_plan(conn), "ops:8").changed == 0
    assert conflicts(conn) == [("ambiguous_email", "TX00000005")]
    # login adopts neither either (it answers with the linked customer), and adds no second
    # conflict
    linked = shop.key_of(conn, "TX00000005")
    assert login(conn, shop, "TX00000005", "twin@x.nl") == (linked, "ambiguous", "TX00000005")
    assert login(conn, shop, "TX00000005", "twin@x.nl")[1] == "ambiguous"
    assert conflicts(conn) == [("ambiguous_email", "TX00000005")]
    assert [_owner_of_order(conn, shop, order) for _, order in twins] == [
        (key, None) for key, _ in twins
    ]
    candidates = conn.execute(
        "SELECT customer_key, customer_id, candidate_keys FROM sync.link_conflict"
    ).fetchone()
    assert candidates is not None
    assert candidates[0] == str(linked)
    # the bigint id only where the key is an integer
    assert candidates[1] == (linked if isinstance(shop, ReferenceShop) else None)
    assert sorted(candidates[2]) == sorted(str(key) for key, _ in twins)
    if isinstance(shop, ReferenceShop):
        ids = conn.execute("SELECT candidate_ids FROM sync.link_conflict").fetchone()
        assert ids == ([key for key, _ in twins],)


def test_known_trouble_is_a_status_and_a_conflict_never_an_error(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    hostile = f"'; DROP TABLE {shop.customer_table}; --"
    assert login(conn, shop, hostile, "x")[:2] == (None, "invalid")
    assert login(conn, shop, None, "x")[:2] == (None, "invalid")
    assert login(conn, shop, "../../admin/x", "x")[:2] == (None, "invalid")
    stage(conn, [upserted("TX00000009", 1)])
    stage(conn, [event("customer.anonymized", "TX00000009", 2, reason_code="AVG")])
    assert login(conn, shop, "TX00000009", "x@y.nl") == (None, "erased", "TX00000009")
    assert login(conn, shop, "TX00000009", "x@y.nl")[1] == "erased"
    kinds = [kind for kind, _ in conflicts(conn)]
    assert kinds == [
        "invalid_number",
        "invalid_number",
        "invalid_number",
        "erased",  # once, though the person tried twice
    ]
    text = " ".join(str(v) for row in conn.execute("SELECT * FROM sync.link_conflict") for v in row)
    assert "@" not in text, "a link conflict recorded an email"


def test_concurrent_first_logins_create_one_customer(dsn: str, shop: ShopSchema) -> None:
    results: list[tuple[Any, ...]] = []

    def attempt() -> None:
        with psycopg.connect(dsn) as c:
            results.append(login(c, shop, "TX00000010", "new@x.nl"))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with psycopg.connect(dsn) as c:
        assert shop.count_customers(c) == 1
        assert list(shop.numbers(c)) == ["TX00000010"]
    assert sorted(r[1] for r in results) == ["created"] + ["linked"] * 5
    assert len({r[0] for r in results}) == 1


def test_a_login_racing_the_feed_for_the_same_new_number_answers_linked(
    dsn: str, shop: ShopSchema
) -> None:
    feed = psycopg.connect(dsn)
    shop.add_customer(feed, snapshot("TX00000011", email="f@x.nl"))
    results: list[tuple[Any, ...]] = []

    def attempt() -> None:
        with psycopg.connect(dsn) as c:
            results.append(login(c, shop, "TX00000011", "racer@x.nl"))

    racer = threading.Thread(target=attempt)
    racer.start()
    racer.join(timeout=1.0)  # the login now waits on the feed's uncommitted row
    feed.commit()
    feed.close()
    racer.join(timeout=30)
    assert len(results) == 1 and results[0][1:] == ("linked", "TX00000011")
