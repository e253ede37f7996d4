"""sql.login: the shop's login always gets a local customer id and a clear status."""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from syncctl import links
from tests.feed import event, stage, upserted


def login(conn: psycopg.Connection[Any], number: str | None, email: str) -> tuple[Any, ...]:
    row = conn.execute("SELECT * FROM sync.login(%s, %s)", [number, email]).fetchone()
    conn.commit()
    assert row is not None
    return tuple(row)


def conflicts(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT kind, customer_number FROM sync.link_conflict ORDER BY id"
    ).fetchall()


def test_linked_customer_is_found_and_refresh_requested(conn: psycopg.Connection[Any]) -> None:
    stage(conn, [upserted("TX00000001", 1)])
    cid = conn.execute("SELECT id FROM shop.customer").fetchone()
    assert login(conn, "TX00000001", "whatever@x.nl") == (
        cid[0] if cid else None,
        "linked",
        "TX00000001",
    )
    queued = conn.execute("SELECT customer_number FROM sync.refresh_request").fetchall()
    assert queued == [("TX00000001",)]


def test_merged_away_number_logs_in_as_the_survivor(conn: psycopg.Connection[Any]) -> None:
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)])
    stage(conn, [event("customer.merged", "TX00000001", 2, into="TX00000002")])
    survivor = conn.execute(
        "SELECT id FROM shop.customer WHERE customer_number = 'TX00000002'"
    ).fetchone()
    assert login(conn, "TX00000001", "a@b.nl") == (
        survivor[0] if survivor else None,
        "redirected",
        "TX00000002",
    )


def _local_customer_with_an_order(conn: psycopg.Connection[Any], email: str, order: str) -> int:
    row = conn.execute(
        "INSERT INTO shop.customer (email) VALUES (%s) RETURNING id", [email]
    ).fetchone()
    assert row is not None
    conn.execute(
        "INSERT INTO shop.orders (customer_id, order_number) VALUES (%s, %s)", [row[0], order]
    )
    conn.commit()
    return int(row[0])


def _owner_of_order(conn: psycopg.Connection[Any], order: str) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT c.id, c.customer_number FROM shop.orders o JOIN shop.customer c"
        " ON c.id = o.customer_id WHERE o.order_number = %s",
        [order],
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_typed_email_takes_over_no_one(conn: psycopg.Connection[Any]) -> None:
    victim = _local_customer_with_an_order(conn, "victim@x.nl", "o-victim")
    # the attacker's own number, known to tritonX with the attacker's own e-mail, or not yet
    stage(conn, [upserted("TX00000020", 1, email="attacker@x.nl")])
    for number in ("TX00000020", "TX00000021"):
        for _ in range(2):
            status = login(conn, number, " Victim@X.nl")[1]
            assert status in ("linked", "created"), status
    assert _owner_of_order(conn, "o-victim") == (victim, None), "the victim's order moved"
    typed = conn.execute(
        "SELECT count(*) FROM shop.customer WHERE customer_number IS NOT NULL"
        " AND sync.normalise_email(email) = 'victim@x.nl'"
    ).fetchone()
    assert typed == (0,), "the typed e-mail was stored in a tritonX-owned column"
    # nor can an operator's repair (or bootstrap) adopt on it later
    assert links.repair_plan(conn).adopt == []
    assert _owner_of_order(conn, "o-victim") == (victim, None)


def test_tritonx_email_adopts_the_unlinked_local_customer(conn: psycopg.Connection[Any]) -> None:
    local = _local_customer_with_an_order(conn, "  Anna.de.Vries@Example.NL", "o-anna")
    first = login(conn, "TX00000003", "anything@x.nl")
    assert first[1:] == ("created", "TX00000003"), "adopted before tritonX answered"
    assert _owner_of_order(conn, "o-anna") == (local, None)
    # the refresh (or the feed) brings tritonX's own e-mail for the number
    stage(conn, [upserted("TX00000003", 1, email="anna.de.vries@example.nl")])
    adopted = login(conn, "TX00000003", "typed-something-else@x.nl")
    assert adopted == (local, "adopted", "TX00000003"), "the shop's key was replaced"
    assert _owner_of_order(conn, "o-anna") == (local, "TX00000003")
    gone = conn.execute("SELECT count(*) FROM shop.customer WHERE id = %s", (first[0],))
    assert gone.fetchone() == (0,), "the login's stub row is absorbed into the local customer"
    assert login(conn, "TX00000003", "")[1] == "linked"
    actors = conn.execute("SELECT actor FROM sync.audit WHERE action = 'customer.adopted'")
    assert actors.fetchall() == [("login",)]


def test_an_empty_tritonx_email_adopts_no_one(conn: psycopg.Connection[Any]) -> None:
    local = _local_customer_with_an_order(conn, " ", "o-blank")
    stage(conn, [upserted("TX00000030", 1, email="")])
    assert login(conn, "TX00000030", " ")[1] == "linked"
    assert links.repair_plan(conn).adopt == []
    assert _owner_of_order(conn, "o-blank") == (local, None)


def test_unicode_forms_of_one_email_are_one_email(conn: psycopg.Connection[Any]) -> None:
    decomposed = "rene\u0301@example.nl"  # e + combining acute
    local = _local_customer_with_an_order(conn, decomposed, "o-rene")
    stage(conn, [upserted("TX00000004", 1, email="REN\u00c9@example.nl")])
    linked = login(conn, "TX00000004", "x@y.nl")
    assert linked[1] == "adopted"
    assert _owner_of_order(conn, "o-rene") == (linked[0], "TX00000004")
    assert local == linked[0], "the shop's key was replaced"


def test_two_local_customers_with_one_email_are_a_conflict_everywhere(
    conn: psycopg.Connection[Any],
) -> None:
    twins = [
        _local_customer_with_an_order(conn, "twin@x.nl", "o-twin-1"),
        _local_customer_with_an_order(conn, "TWIN@x.nl ", "o-twin-2"),
    ]
    stage(conn, [upserted("TX00000005", 1, email="twin@x.nl")])
    # bootstrap and `links repair` adopt neither and record the conflict
    assert links.repair_plan(conn).adopt == []
    assert links.repair(conn, links.repair_plan(conn), "ops:8").changed == 0
    assert conflicts(conn) == [("ambiguous_email", "TX00000005")]
    # login adopts neither either, and adds no second conflict
    assert login(conn, "TX00000005", "twin@x.nl")[1] == "ambiguous"
    assert login(conn, "TX00000005", "twin@x.nl")[1] == "ambiguous"
    assert conflicts(conn) == [("ambiguous_email", "TX00000005")]
    assert [_owner_of_order(conn, o) for o in ("o-twin-1", "o-twin-2")] == [
        (twins[0], None),
        (twins[1], None),
    ]
    candidates = conn.execute("SELECT candidate_ids FROM sync.link_conflict").fetchone()
    assert candidates == (twins,)


def test_known_trouble_is_a_status_and_a_conflict_never_an_error(
    conn: psycopg.Connection[Any],
) -> None:
    assert login(conn, "'; DROP TABLE shop.customer; --", "x")[:2] == (None, "invalid")
    assert login(conn, None, "x")[:2] == (None, "invalid")
    assert login(conn, "../../admin/x", "x")[:2] == (None, "invalid")
    stage(conn, [upserted("TX00000009", 1)])
    stage(conn, [event("customer.anonymized", "TX00000009", 2, reason_code="AVG")])
    assert login(conn, "TX00000009", "x@y.nl") == (None, "erased", "TX00000009")
    assert login(conn, "TX00000009", "x@y.nl")[1] == "erased"
    kinds = [kind for kind, _ in conflicts(conn)]
    assert kinds == [
        "invalid_number",
        "invalid_number",
        "invalid_number",
        "erased",  # once, though the person tried twice
    ]
    text = " ".join(str(v) for row in conn.execute("SELECT * FROM sync.link_conflict") for v in row)
    assert "@" not in text, "a link conflict recorded an email"


def test_concurrent_first_logins_create_one_customer(dsn: str) -> None:
    results: list[tuple[Any, ...]] = []

    def attempt() -> None:
        with psycopg.connect(dsn) as c:
            results.append(login(c, "TX00000010", "new@x.nl"))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with psycopg.connect(dsn) as c:
        count = c.execute(
            "SELECT count(*) FROM shop.customer WHERE customer_number = 'TX00000010'"
        ).fetchone()
    assert count == (1,)
    assert sorted(r[1] for r in results) == ["created"] + ["linked"] * 5
    assert len({r[0] for r in results}) == 1


def test_a_login_racing_the_feed_for_the_same_new_number_answers_linked(dsn: str) -> None:
    feed = psycopg.connect(dsn)
    feed.execute(
        "INSERT INTO shop.customer (customer_number, email) VALUES ('TX00000011', 'f@x.nl')"
    )
    results: list[tuple[Any, ...]] = []

    def attempt() -> None:
        with psycopg.connect(dsn) as c:
            results.append(login(c, "TX00000011", "racer@x.nl"))

    racer = threading.Thread(target=attempt)
    racer.start()
    racer.join(timeout=1.0)  # the login now waits on the feed's uncommitted row
    feed.commit()
    feed.close()
    racer.join(timeout=30)
    assert len(results) == 1 and results[0][1:] == ("linked", "TX00000011")
