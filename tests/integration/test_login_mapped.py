"""Login and linking on a mapped schema other than the reference shop: the boutique
(tests/shops/boutique.sql: uuid key, the number in its own column tx_ref, the version in
sync.customer_link, NOT NULL shop columns no tritonX field fills). sync.login_key answers with
the boutique's own key; a first login creates a stub row the refresh's snapshot then fills;
bootstrap on a populated boutique adopts the shop's own customers and keeps their keys. `links
repair` on both test schemas: tests/integration/test_links_repair.py; a link conflict of two
local customers with one e-mail: tests/integration/test_login.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from syncctl import links
from syncctl.bootstrap import bootstrap
from syncctl.simulator.server import SimulatorServer
from syncctl.tritonx import TritonXClient
from tests.feed import event, stage, upserted
from tests.shops import Boutique
from tests.shops.binding import bind_boutique
from tests.shops.populate import populate_boutique

SHOP = Boutique()


@pytest.fixture
def boutique(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The boutique installed, granted and mapped (as tests/integration/test_merge_mapped.py
    does it)."""
    bind_boutique(conn, SHOP)
    yield conn


def login_key(conn: psycopg.Connection[Any], number: str, email: str) -> tuple[Any, ...]:
    row = conn.execute("SELECT * FROM sync.login_key(%s, %s)", [number, email]).fetchone()
    conn.commit()
    assert row is not None
    return tuple(row)


def login(conn: psycopg.Connection[Any], number: str, email: str) -> tuple[Any, ...]:
    row = conn.execute("SELECT * FROM sync.login(%s, %s)", [number, email]).fetchone()
    conn.commit()
    assert row is not None
    return tuple(row)


def _customer(conn: psycopg.Connection[Any], key: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT tx_ref, full_name, email, sex, is_blocked, newsletter, segment, shop_id,"
        " address_id, (SELECT version FROM sync.customer_link WHERE customer_key = %(k)s)"
        " FROM crm.customer WHERE customer_uuid = %(k)s::uuid",
        {"k": key},
    ).fetchone()
    assert row is not None, "no boutique row has that key"
    names = "tx_ref full_name email sex is_blocked newsletter segment shop_id address_id version"
    return dict(zip(names.split(), row, strict=True))


def _local(conn: psycopg.Connection[Any], email: str, order: str) -> uuid.UUID:
    """A customer only the shop knows (no tx_ref), with an order."""
    key = uuid.uuid4()
    conn.execute(
        "INSERT INTO crm.customer (customer_uuid, full_name, email, segment, shop_id, notes)"
        " VALUES (%s, 'Shop Own', %s, 'staff', 2, 'the shop''s note')",
        [key, email],
    )
    conn.execute(
        "INSERT INTO sales.orders (customer_uuid, order_number, placed_at)"
        " VALUES (%s, %s, '2026-03-04T10:00:00Z')",
        [key, order],
    )
    conn.commit()
    return key


def test_a_first_login_creates_a_stub_the_refresh_then_fills(
    boutique: psycopg.Connection[Any],
) -> None:
    conn = boutique
    key, status, number = login_key(conn, "TX00000401", "typed@example.nl")
    assert (status, number) == ("created", "TX00000401")
    assert isinstance(key, str) and uuid.UUID(key)
    stub = _customer(conn, key)
    # the number, no version, the create literals and the null_as values of an empty snapshot
    assert stub == {
        "tx_ref": "TX00000401",
        "full_name": "(unknown)",
        "email": None,
        "sex": None,
        "is_blocked": 0,
        "newsletter": "N",
        "segment": "retail",
        "shop_id": 1,
        "address_id": stub["address_id"],
        "version": None,
    }
    # the address row it points to: the create literal, no tritonX value yet
    address = conn.execute(
        'SELECT street, zip, city, country, created_by FROM crm."CustomerAddress" WHERE id = %s',
        [stub["address_id"]],
    ).fetchone()
    assert address == (None, None, None, None, "syncctl")
    queued = conn.execute("SELECT customer_number FROM sync.refresh_request").fetchall()
    assert queued == [("TX00000401",)]
    # the refresh's snapshot (version NULL is older than any) fills the stub in place
    stage(conn, [upserted("TX00000401", 1, email="Anna@Example.nl", gender="F")])
    filled = _customer(conn, key)
    assert (filled["full_name"], filled["email"], filled["sex"], filled["version"]) == (
        "Anna van der Berg",
        "Anna@Example.nl",
        "f",
        1,
    )
    assert filled["address_id"] == stub["address_id"], "the stub's address is filled in place"
    assert conn.execute(
        'SELECT zip, city FROM crm."CustomerAddress" WHERE id = %s', [stub["address_id"]]
    ).fetchone() == ("1015 CJ", "Amsterdam")
    assert conn.execute("SELECT count(*) FROM crm.customer").fetchone() == (1,)
    # a uuid key is no bigint id: login answers NULL for it, login_key the key
    assert login(conn, "TX00000401", "x@example.nl") == (None, "linked", "TX00000401")
    assert login_key(conn, "TX00000401", "x@example.nl") == (key, "linked", "TX00000401")


def test_a_known_number_a_merged_away_one_and_an_erased_one(
    boutique: psycopg.Connection[Any],
) -> None:
    conn = boutique
    stage(conn, [upserted("TX00000411", 1), upserted("TX00000412", 1)])
    known = SHOP.key_of(conn, "TX00000411")
    survivor = SHOP.key_of(conn, "TX00000412")
    assert login_key(conn, "TX00000411", "a@b.nl") == (str(known), "linked", "TX00000411")
    stage(conn, [event("customer.merged", "TX00000411", 2, into="TX00000412")])
    assert login_key(conn, "TX00000411", "a@b.nl") == (str(survivor), "redirected", "TX00000412")
    conn.execute(
        "INSERT INTO sync.tombstone (customer_number, kind) VALUES ('TX00000413', 'deleted')"
    )
    conn.commit()
    assert login_key(conn, "TX00000413", "a@b.nl") == (None, "erased", "TX00000413")
    assert login_key(conn, "not a number!", "a@b.nl") == (None, "invalid", None)
    assert conn.execute("SELECT count(*) FROM crm.customer").fetchone() == (1,)


def test_a_stub_the_shop_refuses_answers_unavailable_without_the_detail(
    boutique: psycopg.Connection[Any],
) -> None:
    conn = boutique
    conn.execute(
        "ALTER TABLE crm.customer ADD CONSTRAINT no_retail CHECK (segment <> 'retail') NOT VALID"
    )
    conn.commit()
    assert login_key(conn, "TX00000421", "a@b.nl") == (None, "unavailable", "TX00000421")
    assert login(conn, "TX00000421", "a@b.nl") == (None, "unavailable", "TX00000421")
    assert conn.execute("SELECT count(*) FROM crm.customer").fetchone() == (0,)


@pytest.mark.parametrize(
    "errcode", ["triggered_action_exception", "SY123", "U0001", "feature_not_supported"]
)
def test_a_stub_a_shop_trigger_refuses_by_any_sqlstate_answers_unavailable(
    boutique: psycopg.Connection[Any], errcode: str
) -> None:
    """Whatever SQLSTATE the shop's trigger raises (not only a constraint's classes), the login
    answers `unavailable` and passes on nothing of the trigger's message (the number in it)."""
    conn = boutique
    conn.execute(
        "CREATE FUNCTION public.no_stubs() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"
        f" RAISE EXCEPTION USING ERRCODE = '{errcode}', MESSAGE = 'no ' || NEW.tx_ref;"
        " END $f$;"
        "CREATE TRIGGER no_stubs BEFORE INSERT ON crm.customer"
        " FOR EACH ROW EXECUTE FUNCTION public.no_stubs()"
    )
    conn.commit()
    assert login_key(conn, "TX00000422", "a@b.nl") == (None, "unavailable", "TX00000422")
    assert login(conn, "TX00000422", "a@b.nl") == (None, "unavailable", "TX00000422")
    assert conn.execute("SELECT count(*) FROM crm.customer").fetchone() == (0,)


def test_login_adopts_the_shops_own_customer_and_keeps_its_key(
    boutique: psycopg.Connection[Any],
) -> None:
    conn = boutique
    local = _local(conn, "  ANNA.de.vries@example.NL", "o-anna")
    created = login_key(conn, "TX00000431", "whatever@x.nl")
    assert created[1] == "created", "adopted before tritonX answered"
    stage(conn, [upserted("TX00000431", 1, email="anna.de.vries@example.nl")])
    assert login_key(conn, "TX00000431", "else@x.nl") == (str(local), "adopted", "TX00000431")
    assert SHOP.key_of(conn, "TX00000431") == local, "linking replaced the shop's key"
    row = _customer(conn, str(local))
    # tritonX's columns and the version moved onto the local row, the shop's kept its values
    assert (row["tx_ref"], row["full_name"], row["email"], row["version"]) == (
        "TX00000431",
        "Anna van der Berg",
        "anna.de.vries@example.nl",
        1,
    )
    assert (row["segment"], row["shop_id"]) == ("staff", 2)
    assert row["address_id"] is not None, "the absorbed row's address came along"
    assert conn.execute("SELECT count(*) FROM crm.customer").fetchone() == (1,)
    assert conn.execute(
        "SELECT customer_uuid FROM sales.orders WHERE order_number = 'o-anna'"
    ).fetchone() == (local,)
    assert conn.execute(
        "SELECT customer_key FROM sync.customer_link WHERE customer_key = %s", [str(local)]
    ).fetchone() == (str(local),)
    audit = conn.execute(
        "SELECT customer_number, customer_id FROM sync.audit WHERE action = 'customer.adopted'"
    ).fetchall()
    assert audit == [("TX00000431", None)]
    # a later snapshot applies to the adopted row
    stage(conn, [upserted("TX00000431", 2, last_name="Jansen")])
    assert _customer(conn, str(local))["full_name"] == "Anna van der Jansen"


def test_bootstrap_on_a_populated_boutique_keeps_the_shops_keys(
    boutique: psycopg.Connection[Any],
) -> None:
    conn = boutique
    population = populate_boutique(conn, 60, seed=5, local_every=10)
    conn.commit()
    orders_before = dict(
        conn.execute("SELECT customer_uuid, count(*) FROM sales.orders GROUP BY 1").fetchall()
    )
    with SimulatorServer(customers=60, seed=5) as simulator:
        truth = simulator.state.current_state()
        with TritonXClient(simulator.url, simulator.token) as client:
            report = bootstrap(conn, client, actor="ops:boot", page_size=25)
    assert report.complete
    adopted = {
        n
        for (n,) in conn.execute(
            "SELECT customer_number FROM sync.audit WHERE action = 'customer.adopted'"
        ).fetchall()
    }
    assert adopted, "no local customer was adopted"
    assert adopted <= population.local
    assert report.adopted == len(adopted)
    for number in adopted:
        key = population.keys[number]
        assert SHOP.key_of(conn, number) == key, "linking replaced the shop's key"
        assert truth[number]["snapshot"]["email"] == _customer(conn, str(key))["email"]
    orders_after = dict(
        conn.execute("SELECT customer_uuid, count(*) FROM sales.orders GROUP BY 1").fetchall()
    )
    assert orders_after == orders_before, "the shop's orders moved"
    # the report counts the mapped table: rows with a tritonX number, and the rest
    counts = conn.execute(
        "SELECT count(*) FILTER (WHERE tx_ref IS NOT NULL), count(*) FILTER (WHERE tx_ref IS NULL)"
        " FROM crm.customer"
    ).fetchone()
    assert counts == (report.linked, report.unlinked_left)
    check = dict(links.anomalies(conn))
    assert check["local customer without a tritonX number"] == report.unlinked_left
