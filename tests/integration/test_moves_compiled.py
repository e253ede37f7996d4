"""Merges, anonymisations and deletes run as compiled functions (schema syncmap, static SQL, no
dynamic SQL per event), and the compiled code follows what changes after the mapping install:
a table the shop links to the customer, a classification, a merge rule. On both test schemas."""

from __future__ import annotations

import re
from typing import Any

import psycopg

from tests.feed import event, stage, upserted
from tests.shops import ShopSchema


def _key_type(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT key_type::text FROM sync.mapped_customer()").fetchone()
    assert row is not None
    return str(row[0])


def _link_a_table(conn: psycopg.Connection[Any], shop: ShopSchema) -> None:
    """A table the shop adds after the install: a foreign key to the customer that cascades
    (a merge that forgot it would delete its rows with the old customer), a personal column
    classified `null`, the owner role granted what it needs."""
    conn.execute(
        f"CREATE TABLE public.gift_message (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        f" customer {_key_type(conn)} NOT NULL"
        f" REFERENCES {shop.customer_table} ({shop.key_column}) ON DELETE CASCADE,"
        f" greeting text)"
    )
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON public.gift_message TO syncctl_owner")
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy) VALUES"
        " ('public', 'gift_message', 'id', 'not_personal'),"
        " ('public', 'gift_message', 'customer', 'not_personal'),"
        " ('public', 'gift_message', 'greeting', 'null')"
    )


def _messages(conn: psycopg.Connection[Any], key: Any) -> list[Any]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT greeting FROM public.gift_message WHERE customer = %s ORDER BY id", [key]
        ).fetchall()
    ]


def test_the_moves_are_compiled_without_dynamic_sql(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    compiled = dict(
        conn.execute(
            "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n"
            " ON n.oid = p.pronamespace WHERE n.nspname = 'syncmap'"
        ).fetchall()
    )
    assert {"move_customer", "erase_customer", "has_bookkeeping", "moves_fingerprint"} <= set(
        compiled
    )
    # the event path: the decision, the merge and anonymisation around the compiled moves
    path = dict(
        conn.execute(
            "SELECT p.proname, p.prosrc FROM pg_proc p JOIN pg_namespace n"
            " ON n.oid = p.pronamespace WHERE n.nspname = 'sync'"
            " AND p.proname IN ('_decide_event', '_apply_event', '_merge', '_anonymise')"
        ).fetchall()
    )
    assert len(path) == 4
    for name, source in {**compiled, **path}.items():
        assert not re.search(r"\bEXECUTE\b", source, re.IGNORECASE), name


def test_a_table_linked_after_the_install_is_moved_by_a_feed_merge(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000701", 1), upserted("TX00000702", 1)])
    old, survivor = shop.key_of(conn, "TX00000701"), shop.key_of(conn, "TX00000702")
    _link_a_table(conn, shop)
    conn.execute("INSERT INTO public.gift_message (customer, greeting) VALUES (%s, 'hello')", [old])
    conn.commit()

    outcome = stage(conn, [event("customer.merged", "TX00000701", 2, into="TX00000702")])

    assert outcome.states == {"applied": 1}
    assert _messages(conn, survivor) == ["hello"]
    counts = conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'customer.merged'"
        " AND customer_number = 'TX00000701'"
    ).fetchone()
    assert counts is not None and counts[0]["public.gift_message"] == 1


def test_a_table_linked_after_the_install_is_scrubbed_by_a_feed_anonymisation(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000711", 1)])
    key = shop.key_of(conn, "TX00000711")
    _link_a_table(conn, shop)
    conn.execute(
        "INSERT INTO public.gift_message (customer, greeting) VALUES (%s, 'dear friend')", [key]
    )
    conn.commit()

    outcome = stage(conn, [event("customer.anonymized", "TX00000711", 2, reason_code="AVG")])

    assert outcome.states == {"applied": 1}
    assert _messages(conn, key) == [None]


def test_a_column_added_and_left_unclassified_after_the_install_refuses_an_anonymisation(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000721", 1)])
    conn.execute(f"ALTER TABLE {shop.customer_table} ADD COLUMN nickname text")
    conn.commit()

    outcome = stage(conn, [event("customer.anonymized", "TX00000721", 2, reason_code="AVG")])

    assert outcome.states == {"dead_letter": 1}
    reason = conn.execute("SELECT reason FROM sync.dead_letter").fetchone()
    assert reason is not None and "no PII strategy" in reason[0]

    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy, value)"
        " SELECT n.nspname, c.relname, 'nickname', 'fixed', 'x' FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE c.oid = '{shop.customer_table}'::regclass"
    )
    conn.commit()
    inbox_id = conn.execute("SELECT inbox_id FROM sync.dead_letter").fetchone()
    assert inbox_id is not None
    assert conn.execute("SELECT sync.retry_dead_letter(%s)", [inbox_id[0]]).fetchone() == (
        "applied",
    )
    nickname = conn.execute(
        f"SELECT nickname FROM {shop.customer_table} WHERE {shop.key_column} = %s",
        [shop.key_of(conn, "TX00000721")],
    ).fetchone()
    assert nickname == ("x",)


def test_the_compiled_moves_are_made_again_only_when_their_inputs_change(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    def installed() -> tuple[Any, ...]:
        row = conn.execute(
            "SELECT syncmap.moves_fingerprint(), p.xmin::text FROM pg_proc p"
            " WHERE p.oid = 'syncmap.move_customer(text, text)'::regprocedure"
        ).fetchone()
        assert row is not None
        return tuple(row)

    before = installed()
    conn.execute("SELECT sync._moves_current()")
    assert installed() == before
    conn.execute(
        "UPDATE sync.merge_rule SET rule = rule WHERE false"
    )  # nothing changed: nothing made again
    conn.execute("SELECT sync._moves_current()")
    assert installed() == before
    _link_a_table(conn, shop)
    assert conn.execute("SELECT sync._moves_are_current()").fetchone() == (False,)
    # called by a superuser: the new code is still the owner role's (SECURITY DEFINER)
    conn.execute("SELECT sync._moves_current()")
    assert installed()[0] != before[0]
    assert conn.execute("SELECT sync._moves_are_current()").fetchone() == (True,)
    assert "gift_message" in str(
        conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'move_customer'").fetchone()
    )
    owner = conn.execute(
        "SELECT pg_get_userbyid(proowner) FROM pg_proc"
        " WHERE oid = 'syncmap.move_customer(text, text)'::regprocedure"
    ).fetchone()
    assert owner == ("syncctl_owner",)


def test_hostile_names_and_values_are_quoted_in_the_compiled_moves(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000731", 1), upserted("TX00000732", 1), upserted("TX00000733", 1)])
    old, survivor = shop.key_of(conn, "TX00000731"), shop.key_of(conn, "TX00000732")
    table = "pg_temp'; DROP TABLE sync.audit; --"
    column = 'note"); DROP TABLE sync.inbox; --'
    value = "O'Brien $$ \"); DROP TABLE sync.tombstone; --"
    conn.execute(
        psycopg.sql.SQL(
            "CREATE TABLE public.{} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " {} {} NOT NULL REFERENCES {} ({}), {} text, remark text, UNIQUE ({}, {}))"
        ).format(
            psycopg.sql.Identifier(table),
            psycopg.sql.Identifier("who"),
            psycopg.sql.SQL(_key_type(conn)),
            psycopg.sql.SQL(shop.customer_table),
            psycopg.sql.SQL(shop.key_column),
            psycopg.sql.Identifier(column),
            psycopg.sql.Identifier("who"),
            psycopg.sql.Identifier(column),
        )
    )
    conn.execute(
        psycopg.sql.SQL(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON public.{} TO syncctl_owner"
        ).format(psycopg.sql.Identifier(table))
    )
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy, value)"
        " VALUES ('public', %(t)s, 'id', 'not_personal', NULL),"
        " ('public', %(t)s, 'who', 'not_personal', NULL),"
        " ('public', %(t)s, %(c)s, 'null', NULL),"
        " ('public', %(t)s, 'remark', 'fixed', %(v)s)",
        {"t": table, "c": column, "v": value},
    )
    conn.execute(
        "INSERT INTO sync.merge_rule (table_schema, table_name, rule) VALUES ('public', %s,"
        " 'keep_survivor')",
        [table],
    )
    insert = psycopg.sql.SQL("INSERT INTO public.{} (who, {}) VALUES (%s, %s)").format(
        psycopg.sql.Identifier(table), psycopg.sql.Identifier(column)
    )
    conn.execute(insert, [old, "same"])
    conn.execute(insert, [survivor, "same"])
    conn.execute(insert, [old, "only the old one's"])
    conn.commit()

    outcome = stage(
        conn,
        [
            event("customer.merged", "TX00000731", 2, into="TX00000732"),
            event("customer.anonymized", "TX00000732", 2, reason_code="AVG"),
        ],
    )

    reasons = conn.execute("SELECT reason FROM sync.dead_letter").fetchall()
    assert outcome.states == {"applied": 2}, reasons
    left = conn.execute(
        psycopg.sql.SQL("SELECT who, {}, remark FROM public.{} ORDER BY id").format(
            psycopg.sql.Identifier(column), psycopg.sql.Identifier(table)
        )
    ).fetchall()
    # the old customer's clashing row went (keep_survivor), its other row moved; both scrubbed
    assert left == [(survivor, None, value), (survivor, None, value)]
    for kept in ("sync.audit", "sync.inbox", "sync.tombstone"):
        assert conn.execute("SELECT to_regclass(%s)", [kept]).fetchone() == (kept,)


def test_a_rule_never_deletes_a_clashing_row_that_other_rows_reference(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """The losing row of a unique clash is deleted by the table's merge rule; rows of another
    table that reference it (a payment of a rental) would cascade away or block the delete. The
    merge is refused instead (SY011, naming the referencing table), and nothing changes."""
    stage(conn, [upserted("TX00000741", 1), upserted("TX00000742", 1)])
    old, survivor = shop.key_of(conn, "TX00000741"), shop.key_of(conn, "TX00000742")
    customer = f"{shop.customer_table} ({shop.key_column})"
    conn.execute(
        f"CREATE TABLE public.voucher (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        f" customer {_key_type(conn)} NOT NULL REFERENCES {customer},"
        f" code text NOT NULL, UNIQUE (customer, code))"
    )
    conn.execute(
        "CREATE TABLE public.voucher_use (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " voucher_id bigint NOT NULL REFERENCES public.voucher (id) ON DELETE CASCADE,"
        " amount integer NOT NULL)"
    )
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON public.voucher TO syncctl_owner")
    conn.execute("GRANT SELECT ON public.voucher_use TO syncctl_owner")
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy) VALUES"
        " ('public', 'voucher', 'id', 'not_personal'),"
        " ('public', 'voucher', 'customer', 'not_personal'),"
        " ('public', 'voucher', 'code', 'not_personal')"
    )
    conn.execute(
        "INSERT INTO sync.merge_rule (table_schema, table_name, rule)"
        " VALUES ('public', 'voucher', 'keep_survivor')"
    )
    conn.execute(
        "INSERT INTO public.voucher (customer, code) VALUES (%s, 'XMAS'), (%s, 'XMAS')",
        [old, survivor],
    )
    conn.execute(
        "INSERT INTO public.voucher_use (voucher_id, amount)"
        " SELECT id, 25 FROM public.voucher WHERE customer = %s",
        [old],
    )
    conn.commit()

    outcome = stage(conn, [event("customer.merged", "TX00000741", 2, into="TX00000742")])

    assert outcome.states == {"dead_letter": 1}
    reason = conn.execute("SELECT reason FROM sync.dead_letter").fetchone()
    assert reason is not None
    assert "public.voucher_use" in reason[0] and "public.voucher" in reason[0]
    assert conn.execute("SELECT count(*) FROM public.voucher_use").fetchone() == (1,)
    assert shop.key_of(conn, "TX00000741") == old
