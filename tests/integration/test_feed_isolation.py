"""One bad record never stops the feed: whatever error applying an event raises (a value too
large for an index, a constraint, index or trigger the shop added, a missing privilege), only
that event becomes a dead letter, with a reason naming the constraint or table and never a
value; the rest of the page applies and the cursor moves. On both test schemas: the shop's rules
sit on the table the mapping writes the field to (the boutique's address table included).
Values are random and incompressible (os.urandom), as a real hostile record would be."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, LiteralString

import psycopg
import pytest
from psycopg import sql

from tests.feed import event, stage, upserted
from tests.shops import Boutique, ShopSchema
from tests.shops.binding import bind


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


def ddl(
    shop: ShopSchema,
    template: LiteralString,
    fields: Mapping[str, str] | None = None,
    applier: sql.Composable | None = None,
) -> sql.Composed:
    """A statement of the shop's own about the columns the given snapshot fields are mapped to:
    {<name>_table} and {<name>} for each name=field; {customer}, {key}, {key_type}, {schema};
    {applier} a role."""
    names: dict[str, sql.Composable] = {"applier": applier or sql.SQL("")}
    for name, field in (fields or {}).items():
        names[f"{name}_table"], names[name] = shop.column_of(field)
    customer = shop.mapping["customer"]
    return sql.SQL(template).format(
        customer=sql.Identifier(customer["schema"], customer["table"]),
        key=sql.Identifier(shop.key_column),
        key_type=sql.SQL(shop.key_type),
        schema=sql.Identifier(customer["schema"]),
        **names,
    )


def test_a_value_too_large_for_a_shop_index_dead_letters_only_its_event(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    # a shop's own search index: within the contract's length, random four-byte characters
    # make an index row far over btree's ~2.7 kB. Three key columns, each compressed on its own
    # (random text does not compress), never one repeated value (which compresses)
    conn.execute(
        ddl(
            shop,
            "CREATE INDEX shop_customer_search ON {email_table} ({email}, {email}, {email})",
            {"email": "email"},
        )
    )
    conn.commit()
    big = {"email": random_text(254)}
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
    assert shop.key_of(conn, "TX00000002") is None


# a statement of the shop's (ddl's template and fields), the fields of the event it refuses, the
# name its dead letter's reason gives; every refused e-mail starts with "refuse-"
SHOP_CONSTRAINTS: dict[str, tuple[LiteralString, dict[str, str], dict[str, Any], str]] = {
    "unique index": (
        "CREATE UNIQUE INDEX shop_customer_email_unique ON {email_table} (lower({email}))",
        {"email": "email"},
        {},  # the e-mail of the customer before it (below)
        "shop_customer_email_unique",
    ),
    "check constraint": (
        "ALTER TABLE {country_table} ADD CONSTRAINT shop_customer_country_known"
        " CHECK ({country} IN ('NL', 'BE'))",
        {"country": "country_code"},
        {"country_code": "XX"},
        "shop_customer_country_known",
    ),
    "foreign key": (
        "CREATE TABLE public.town (name text PRIMARY KEY);"
        " INSERT INTO public.town VALUES ('Amsterdam');"
        " ALTER TABLE {city_table} ADD CONSTRAINT shop_customer_town_fk"
        " FOREIGN KEY ({city}) REFERENCES public.town (name)",
        {"city": "city"},
        {"city": "Nowhere"},
        "shop_customer_town_fk",
    ),
    "trigger that raises": (
        "CREATE FUNCTION public.refuse_customer() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN IF NEW.{email} LIKE 'refuse-%' THEN"
        " RAISE EXCEPTION 'refused customer %', NEW.{email}; END IF;"
        " RETURN NEW; END $$;"
        " CREATE TRIGGER refuse_customer BEFORE INSERT OR UPDATE ON {email_table}"
        " FOR EACH ROW EXECUTE FUNCTION public.refuse_customer()",
        {"email": "email"},
        {},
        "P0001",
    ),
}


@pytest.mark.parametrize("kind", SHOP_CONSTRAINTS)
def test_a_shop_constraint_dead_letters_only_the_event_it_refuses(
    conn: psycopg.Connection[Any], shop: ShopSchema, kind: str
) -> None:
    template, fields, bad_fields, named = SHOP_CONSTRAINTS[kind]
    conn.execute(ddl(shop, template, fields))
    conn.commit()
    email = f"refuse-{random_text(20)}@example.nl"
    first = upserted("TX00000001", 1, email=email if kind == "unique index" else "a@example.nl")
    bad = upserted("TX00000002", 1, **{"email": email, **bad_fields})
    after = upserted("TX00000003", 1, email="c@example.nl")
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
    # nothing of the refused event was written, the others were
    assert shop.key_of(conn, "TX00000002") is None
    assert shop.read_row(conn, "TX00000003") == shop.expected_row(after["customer"])
    # the next page goes on
    assert stage(conn, [upserted("TX00000004", 1, email="d@example.nl")]).states == {"applied": 1}


def test_a_unique_index_of_the_shops_own_and_login(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    conn.execute(
        ddl(
            shop,
            "CREATE UNIQUE INDEX shop_customer_email_unique ON {email_table} (lower({email}));"
            # and a rule of the shop's that a customer row created with the number only breaks
            " ALTER TABLE {email_table} ADD CONSTRAINT customer_has_an_email"
            " CHECK ({email} IS NOT NULL) NOT VALID",
            {"email": "email"},
        )
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
    row = conn.execute("SELECT * FROM sync.login_key('TX00000002', 'same@example.nl')").fetchone()
    conn.commit()
    assert row is not None
    customer_key, status, number = row
    # never 'linked' without a key: the row could not be written
    assert (customer_key, status, number) == (None, "unavailable", "TX00000002")
    assert shop.key_of(conn, "TX00000002") is None


def test_a_set_based_page_with_bad_events_spread_through_it(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    conn.execute(
        ddl(
            shop,
            "CREATE UNIQUE INDEX shop_customer_email_unique ON {email_table} (lower({email}))",
            {"email": "email"},
        )
    )
    conn.commit()
    records = [upserted(f"TX{n:08d}", 1) for n in range(1, 201)]
    for n in (7, 50, 51, 199):
        records[n]["customer"]["email"] = records[0]["customer"]["email"]
    # a later version of an applied customer in the same page is still decided
    records.append(upserted("TX00000002", 2, city="Delft"))
    outcome = stage(conn, records)
    assert outcome.states == {"applied": 197, "dead_letter": 4}
    assert shop.read_row(conn, "TX00000002") == shop.expected_row(records[-1]["customer"])
    assert shop.count_customers(conn) == 196


def test_a_merge_that_needs_a_privilege_the_feed_lacks_is_a_dead_letter(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)])
    old = shop.key_of(conn, "TX00000001")
    conn.execute(
        ddl(
            shop,
            "CREATE TABLE {schema}.loyalty_note (customer_ref {key_type} REFERENCES {customer}"
            " ({key})); CREATE INDEX ON {schema}.loyalty_note (customer_ref);"
            " CREATE ROLE {applier};"
            " GRANT USAGE ON SCHEMA {schema}, sync, gdpr TO {applier};"
            " GRANT ALL ON ALL TABLES IN SCHEMA {schema}, sync, gdpr TO {applier};"
            " GRANT ALL ON ALL SEQUENCES IN SCHEMA {schema}, sync, gdpr TO {applier};"
            " GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema}, sync, gdpr TO {applier};"
            " REVOKE UPDATE ON {schema}.loyalty_note FROM {applier}",
            applier=sql.Identifier(f"feed_applier_{shop.name}"),
        )
    )
    conn.execute(
        "INSERT INTO sync.pii_column VALUES (%s, 'loyalty_note', 'customer_ref',"
        " 'not_personal', NULL)",
        [shop.mapping["customer"]["schema"]],
    )
    conn.execute(
        ddl(shop, "INSERT INTO {schema}.loyalty_note VALUES (%s)"),
        [old],
    )
    conn.commit()
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(f"feed_applier_{shop.name}")))
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
    conn.execute("RESET ROLE")
    assert shop.key_of(conn, "TX00000001") == old


def skip_nowhere(
    conn: psycopg.Connection[Any], shop: ShopSchema, on: LiteralString = "INSERT OR UPDATE"
) -> None:
    """A trigger of the shop's on the table of the city's column that skips the write (returns
    NULL) of a row whose city is 'Nowhere'."""
    conn.execute(
        ddl(
            shop,
            "CREATE FUNCTION public.skip_nowhere() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN IF NEW.{city} = 'Nowhere' THEN RETURN NULL; END IF; RETURN NEW; END $$;"
            "CREATE TRIGGER skip_nowhere BEFORE " + on + " ON {city_table}"
            " FOR EACH ROW EXECUTE FUNCTION public.skip_nowhere()",
            {"city": "city"},
        )
    )
    conn.commit()


def test_a_shop_trigger_that_skips_the_write_is_a_dead_letter_not_a_retry_for_ever(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    skip_nowhere(conn, shop, "INSERT OR UPDATE")
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
    table = conn.execute(
        sql.SQL("SELECT %s::regclass::text").format(), [shop.column_of("city")[0].as_string(conn)]
    ).fetchone()
    assert reason is not None and table is not None
    assert f"trigger on {table[0]} skipped it" in reason[0]
    assert "Nowhere" not in reason[0]
    assert shop.key_of(conn, "TX00000002") is None


def test_a_deferred_constraint_of_the_shops_is_checked_in_the_page(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    conn.execute(
        ddl(
            shop,
            "ALTER TABLE {email_table} ADD CONSTRAINT customer_one_email"
            " UNIQUE ({email}) DEFERRABLE INITIALLY DEFERRED",
            {"email": "email"},
        )
    )
    conn.commit()
    outcome = stage(
        conn,
        [
            upserted("TX00000001", 1, email="one@example.nl"),
            upserted("TX00000002", 1, email="one@example.nl"),
            upserted("TX00000003", 1, email="three@example.nl"),
            event("customer.merged", "TX00000003", 2, into="TX00000001"),
        ],
    )
    assert outcome.states == {"applied": 3, "dead_letter": 1}
    reason = conn.execute(
        "SELECT d.reason FROM sync.dead_letter AS d JOIN sync.inbox AS i ON i.id = d.inbox_id"
        " WHERE i.customer_number = 'TX00000002'"
    ).fetchone()
    assert reason is not None and "customer_one_email" in reason[0]
    assert conn.execute("SELECT count(*) FROM sync.redirect").fetchone() == (1,)
    assert set(shop.numbers(conn)) == {"TX00000001"}


def test_a_shop_trigger_that_skips_an_update_is_a_dead_letter_and_the_customer_keeps_its_data(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    first = upserted("TX00000001", 1)
    stage(conn, [first])
    skip_nowhere(conn, shop, "UPDATE")
    outcome = stage(conn, [upserted("TX00000001", 2, city="Nowhere", email="new@example.nl")])
    assert outcome.states == {"dead_letter": 1}
    (reason,) = reasons(conn)
    assert "skipped it" in reason and "Nowhere" not in reason
    # nothing of the event was written: no half-applied version
    assert shop.read_row(conn, "TX00000001") == shop.expected_row(first["customer"])
    assert shop.version_of(conn, "TX00000001") == 1


def test_a_trigger_skipping_the_address_of_a_customer_without_a_foreign_key_to_it_on_the_boutique(
    conn: psycopg.Connection[Any],
) -> None:
    """Without a foreign key from the customer row to its address, a skipped address would leave
    the customer pointing to nothing."""
    shop = Boutique()
    bind(conn, shop)
    conn.execute("ALTER TABLE crm.customer DROP CONSTRAINT customer_address_id_fkey")
    skip_nowhere(conn, shop, "INSERT OR UPDATE")
    outcome = stage(conn, [upserted("TX00000001", 1, city="Nowhere"), upserted("TX00000002", 1)])
    assert outcome.states == {"applied": 1, "dead_letter": 1}
    (reason,) = reasons(conn)
    assert 'trigger on crm."CustomerAddress" skipped it' in reason
    assert shop.key_of(conn, "TX00000001") is None
    assert conn.execute(
        'SELECT count(*) FROM crm.customer c WHERE NOT EXISTS (SELECT FROM crm."CustomerAddress" a'
        " WHERE a.id = c.address_id)"
    ).fetchone() == (0,)
