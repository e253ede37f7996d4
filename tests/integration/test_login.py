"""sql.login: the shop's login always gets a local customer id and a clear status."""

from __future__ import annotations

import threading
from typing import Any

import psycopg

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


def test_unlinked_local_customer_with_the_same_email_is_adopted(
    conn: psycopg.Connection[Any],
) -> None:
    local = conn.execute(
        "INSERT INTO shop.customer (email) VALUES ('  Anna.de.Vries@Example.NL') RETURNING id"
    ).fetchone()
    conn.commit()
    assert local is not None
    assert login(conn, "TX00000003", "anna.de.vries@example.nl") == (
        local[0],
        "adopted",
        "TX00000003",
    )
    assert login(conn, "TX00000003", "anna.de.vries@example.nl")[1] == "linked"


def test_unicode_forms_of_one_email_are_one_email(conn: psycopg.Connection[Any]) -> None:
    decomposed = "rene\u0301@example.nl"  # e + combining acute
    local = conn.execute(
        "INSERT INTO shop.customer (email) VALUES (%s) RETURNING id", [decomposed]
    ).fetchone()
    conn.commit()
    assert local is not None
    assert login(conn, "TX00000004", "REN\u00c9@example.nl")[:2] == (local[0], "adopted")


def test_known_trouble_is_a_status_and_a_conflict_never_an_error(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("INSERT INTO shop.customer (email) VALUES ('twin@x.nl'), ('TWIN@x.nl')")
    conn.commit()
    ambiguous = login(conn, "TX00000005", "twin@x.nl")
    assert ambiguous[1] == "ambiguous" and ambiguous[0] is not None
    taken = login(conn, "TX00000006", "twin@x.nl")
    assert taken[1] == "ambiguous"
    stage(conn, [upserted("TX00000007", 1, email="owner@x.nl")])
    assert login(conn, "TX00000008", "owner@x.nl")[1] == "conflict"
    assert login(conn, "'; DROP TABLE shop.customer; --", "x")[:2] == (None, "invalid")
    assert login(conn, None, "x")[:2] == (None, "invalid")
    stage(conn, [upserted("TX00000009", 1)])
    stage(conn, [event("customer.anonymized", "TX00000009", 2, reason_code="AVG")])
    assert login(conn, "TX00000009", "x@y.nl") == (None, "erased", "TX00000009")
    assert login(conn, "TX00000009", "x@y.nl")[1] == "erased"
    kinds = [kind for kind, _ in conflicts(conn)]
    assert kinds == [
        "ambiguous_email",
        "ambiguous_email",
        "email_taken",
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
