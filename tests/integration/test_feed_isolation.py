"""One bad record never stops the feed: whatever error applying an event raises (a value too
large for an index, a constraint, index or trigger the shop added, a missing privilege), only
that event becomes a dead letter, with a reason naming the constraint or table and never a
value; the rest of the page applies and the cursor moves. Values are random and incompressible
(os.urandom), as a real hostile record would be."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.feed import event, stage, upserted


def random_text(length: int) -> str:
    """`length` random characters of four UTF-8 bytes each: nothing compresses them."""
    raw = os.urandom(3 * length)
    return "".join(
        chr(0x10000 + int.from_bytes(raw[3 * k : 3 * k + 3], "big") % 0xFFFF0)
        for k in range(length)
    )


def cursor_position(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("SELECT position FROM sync.cursor WHERE source = 'tritonx'").fetchone()
    return None if row is None else row[0]


def states(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """customer number -> state of its (last) staged event."""
    return {
        number: state
        for number, state in conn.execute(
            "SELECT customer_number, state FROM sync.inbox_status ORDER BY inbox_id"
        )
    }


def server_log(conn: psycopg.Connection[Any]) -> str | None:
    """The test server's log (the embedded server writes it to <data directory>/log), or None
    where it cannot be read (a server named by SYNCCTL_TEST_DSN)."""
    (data_directory,) = conn.execute("SELECT current_setting('data_directory')").fetchone() or ("",)
    conn.commit()
    log = Path(data_directory) / "log"
    return log.read_text(encoding="utf-8", errors="replace") if log.is_file() else None


def reasons(conn: psycopg.Connection[Any]) -> list[str]:
    return [r for (r,) in conn.execute("SELECT reason FROM sync.dead_letter ORDER BY inbox_id")]


def test_a_value_too_large_for_a_shop_index_dead_letters_only_its_event(
    conn: psycopg.Connection[Any],
) -> None:
    # a shop's own search index over several fields: within the contract's lengths, random
    # four-byte characters make an index row far over btree's ~2.7 kB
    conn.execute(
        "CREATE INDEX shop_customer_search ON shop.customer"
        " ((email || first_name || infix || last_name || street || city || home_store"
        " || customer_group))"
    )
    conn.commit()
    big = {
        "email": random_text(254),
        "first_name": random_text(100),
        "infix": random_text(30),
        "last_name": random_text(100),
        "street": random_text(100),
        "city": random_text(100),
        "home_store": random_text(100),
        "customer_group": random_text(50),
    }
    outcome = stage(
        conn,
        [upserted("TX00000001", 1), upserted("TX00000002", 1, **big), upserted("TX00000003", 1)],
    )
    assert outcome.states == {"applied": 2, "dead_letter": 1}
    assert states(conn) == {
        "TX00000001": "applied",
        "TX00000002": "dead_letter",
        "TX00000003": "applied",
    }
    (reason,) = reasons(conn)
    assert "shop_customer_search" in reason and "54000" in reason
    assert not any(value[:10] in reason for value in big.values())
    assert cursor_position(conn) is not None


SHOP_CONSTRAINTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "unique index": (
        "CREATE UNIQUE INDEX shop_customer_email_unique ON shop.customer (lower(email))",
        {},  # the e-mail of the customer before it (below)
        "shop_customer_email_unique",
    ),
    "check constraint": (
        "ALTER TABLE shop.customer ADD CONSTRAINT shop_customer_country_known"
        " CHECK (country_code IN ('NL', 'BE'))",
        {"country_code": "XX"},
        "shop_customer_country_known",
    ),
    "foreign key": (
        "CREATE TABLE shop.store (name text PRIMARY KEY);"
        " INSERT INTO shop.store VALUES ('Utrecht');"
        " ALTER TABLE shop.customer ADD CONSTRAINT shop_customer_home_store_fk"
        " FOREIGN KEY (home_store) REFERENCES shop.store (name)",
        {"home_store": "Nowhere"},
        "shop_customer_home_store_fk",
    ),
    "trigger that raises": (
        "CREATE FUNCTION shop.refuse_blocked() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.blocked THEN RAISE EXCEPTION 'blocked customer %', NEW.email; END IF;"
        " RETURN NEW; END $$;"
        " CREATE TRIGGER refuse_blocked BEFORE INSERT OR UPDATE ON shop.customer"
        " FOR EACH ROW EXECUTE FUNCTION shop.refuse_blocked()",
        {"blocked": True},
        "P0001",
    ),
}


@pytest.mark.parametrize("kind", SHOP_CONSTRAINTS)
def test_a_shop_constraint_dead_letters_only_the_event_it_refuses(
    conn: psycopg.Connection[Any], kind: str
) -> None:
    ddl, bad_fields, named = SHOP_CONSTRAINTS[kind]
    conn.execute(ddl)
    conn.commit()
    email = f"{random_text(20)}@example.nl"
    first = upserted("TX00000001", 1, email=email if kind == "unique index" else "a@example.nl")
    bad = upserted("TX00000002", 1, **{"email": email, **bad_fields})
    after = upserted("TX00000003", 1)
    log_before = server_log(conn)
    outcome = stage(conn, [first, bad, after])
    assert outcome.states == {"applied": 2, "dead_letter": 1}
    assert states(conn)["TX00000002"] == "dead_letter"
    (reason,) = reasons(conn)
    assert named in reason and email not in reason
    # no DETAIL line (nor any other) quoted the value into the server log
    if log_before is not None:
        assert email not in (server_log(conn) or "")[len(log_before) :]
    assert cursor_position(conn) is not None
    # the next page goes on
    assert stage(conn, [upserted("TX00000004", 1)]).states == {"applied": 1}


def test_a_unique_index_of_the_shops_own_and_login(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE UNIQUE INDEX shop_customer_email_unique ON shop.customer (lower(email))")
    # and a rule of the shop's that a customer row created with the number only breaks
    conn.execute(
        "ALTER TABLE shop.customer ADD CONSTRAINT customer_has_a_name"
        " CHECK (last_name IS NOT NULL) NOT VALID"
    )
    conn.commit()
    outcome = stage(
        conn,
        [
            upserted("TX00000001", 1, email="Same@example.nl"),
            upserted("TX00000002", 1, email="same@example.nl"),
        ],
    )
    assert outcome.states == {"applied": 1, "dead_letter": 1}
    row = conn.execute("SELECT * FROM sync.login('TX00000002', 'same@example.nl')").fetchone()
    conn.commit()
    assert row is not None
    customer_id, status, number = row
    # never 'linked' without an id: the row could not be written
    assert (customer_id, status, number) == (None, "unavailable", "TX00000002")


def test_a_set_based_page_with_bad_events_spread_through_it(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("CREATE UNIQUE INDEX shop_customer_email_unique ON shop.customer (lower(email))")
    conn.commit()
    records = [upserted(f"TX{n:08d}", 1) for n in range(1, 201)]
    for n in (7, 50, 51, 199):
        records[n]["customer"]["email"] = records[0]["customer"]["email"]
    # a later version of an applied customer in the same page is still decided
    records.append(upserted("TX00000002", 2, city="Delft"))
    outcome = stage(conn, records)
    assert outcome.states == {"applied": 197, "dead_letter": 4}
    city = conn.execute("SELECT city FROM shop.customer WHERE customer_number = 'TX00000002'")
    assert city.fetchone() == ("Delft",)


def test_a_merge_that_needs_a_privilege_the_feed_lacks_is_a_dead_letter(
    conn: psycopg.Connection[Any],
) -> None:
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)])
    conn.execute(
        "CREATE TABLE shop.loyalty_note (customer_id bigint REFERENCES shop.customer (id));"
        " CREATE INDEX ON shop.loyalty_note (customer_id);"
        " INSERT INTO sync.pii_column VALUES ('shop', 'loyalty_note', 'customer_id',"
        " 'not_personal', NULL);"
        " INSERT INTO shop.loyalty_note"
        " SELECT id FROM shop.customer WHERE customer_number = 'TX00000001';"
        " CREATE ROLE feed_applier;"
        " GRANT USAGE ON SCHEMA shop, sync, gdpr TO feed_applier;"
        " GRANT ALL ON ALL TABLES IN SCHEMA shop, sync, gdpr TO feed_applier;"
        " GRANT ALL ON ALL SEQUENCES IN SCHEMA shop, sync, gdpr TO feed_applier;"
        " GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA shop, sync, gdpr TO feed_applier;"
        " REVOKE UPDATE ON shop.loyalty_note FROM feed_applier"
    )
    conn.commit()
    conn.execute("SET ROLE feed_applier")
    outcome = stage(
        conn,
        [
            event("customer.merged", "TX00000001", 2, into="TX00000002"),
            upserted("TX00000003", 1),
        ],
    )
    assert outcome.states == {"applied": 1, "dead_letter": 1}
    (reason,) = reasons(conn)
    assert "42501" in reason and "loyalty_note" in reason


def test_a_shop_trigger_that_skips_the_write_is_a_dead_letter_not_a_retry_for_ever(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        "CREATE FUNCTION public.skip_nowhere() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN IF NEW.city = 'Nowhere' THEN RETURN NULL; END IF; RETURN NEW; END $$;"
        "CREATE TRIGGER skip_nowhere BEFORE INSERT OR UPDATE ON shop.customer"
        " FOR EACH ROW EXECUTE FUNCTION public.skip_nowhere()"
    )
    conn.commit()
    outcome = stage(
        conn,
        [
            upserted("TX00000001", 1),
            upserted("TX00000002", 1, city="Nowhere"),
            upserted("TX00000003", 1),
        ],
    )
    assert outcome.states == {"applied": 2, "dead_letter": 1}
    reason = conn.execute(
        "SELECT d.reason FROM sync.dead_letter AS d JOIN sync.inbox AS i ON i.id = d.inbox_id"
        " WHERE i.customer_number = 'TX00000002'"
    ).fetchone()
    assert reason is not None and "trigger on shop.customer skipped it" in reason[0]
    assert "Nowhere" not in reason[0]


def test_a_deferred_constraint_of_the_shops_is_checked_in_the_page(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        "ALTER TABLE shop.customer ADD CONSTRAINT customer_one_loyalty_card"
        " UNIQUE (loyalty_card) DEFERRABLE INITIALLY DEFERRED"
    )
    conn.commit()
    outcome = stage(
        conn,
        [
            upserted("TX00000001", 1, loyalty_card="LC-1"),
            upserted("TX00000002", 1, loyalty_card="LC-1"),
            upserted("TX00000003", 1, loyalty_card="LC-3"),
            event("customer.merged", "TX00000003", 2, into="TX00000001"),
        ],
    )
    assert outcome.states == {"applied": 3, "dead_letter": 1}
    reason = conn.execute(
        "SELECT d.reason FROM sync.dead_letter AS d JOIN sync.inbox AS i ON i.id = d.inbox_id"
        " WHERE i.customer_number = 'TX00000002'"
    ).fetchone()
    assert reason is not None and "customer_one_loyalty_card" in reason[0]
    assert conn.execute("SELECT count(*) FROM sync.redirect").fetchone() == (1,)
