"""customer.merged and merging by hand: every customer-linked table is re-pointed (found from
foreign keys, so a table the shop adds later too), unique conflicts follow the declared rule or
refuse the merge, redirects stay flat, impossible merges are dead letters (feed) or errors (by
hand), late events for a merged-away number are recorded no-ops. The tests of what every schema
has (redirects, refusals, late events, the audit) run on both test schemas; those about the
reference shop's own tables stay on it, and tests/integration/test_merge_mapped.py has the
boutique's (its address, partitioned orders, reviews, the link table)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.feed import event, stage, upserted
from tests.shops import ReferenceShop, ShopSchema

REFERENCE: ShopSchema = ReferenceShop()


def _merged(old: str, survivor: str, version: int = 2, **extra: Any) -> dict[str, Any]:
    return event("customer.merged", old, version, into=survivor, **extra)


def _id(conn: psycopg.Connection[Any], number: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM shop.customer WHERE customer_number = %s", [number]
    ).fetchone()
    return None if row is None else int(row[0])


def _customers(
    conn: psycopg.Connection[Any], *numbers: str, shop: ShopSchema = REFERENCE
) -> list[Any]:
    stage(conn, [upserted(number, 1) for number in numbers])
    keys = [shop.key_of(conn, number) for number in numbers]
    assert all(keys)
    return [k for k in keys if k is not None]


def _order(conn: psycopg.Connection[Any], customer_id: int, number: str) -> None:
    conn.execute(
        "INSERT INTO shop.orders (customer_id, order_number, total_amount) VALUES (%s, %s, 10)",
        [customer_id, number],
    )


def _each(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> None:
    for statement in sql.split(";"):
        conn.execute(statement, params)


def _dead_letters(conn: psycopg.Connection[Any]) -> dict[str, str]:
    return dict(
        conn.execute(
            "SELECT i.customer_number, d.reason FROM sync.dead_letter d "
            "JOIN sync.inbox i ON i.id = d.inbox_id"
        ).fetchall()
    )


def _merge_audit(conn: psycopg.Connection[Any], old: str) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT outcome, reason, counts, related_number FROM sync.audit "
        "WHERE action = 'customer.merged' AND customer_number = %s ORDER BY id DESC LIMIT 1",
        [old],
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_merge_repoints_every_linked_table_including_one_the_shop_added(
    conn: psycopg.Connection[Any],
) -> None:
    old, survivor = _customers(conn, "TX00000101", "TX00000102")
    conn.execute(
        "CREATE TABLE shop.gift_card (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " customer_id bigint NOT NULL REFERENCES shop.customer (id), code text NOT NULL,"
        " balance integer NOT NULL, UNIQUE (customer_id, code))"
    )
    # a table the shop adds: the engine works on it as its owner role, which a DBA grants
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON shop.gift_card TO syncctl_owner")
    conn.execute(
        "INSERT INTO sync.merge_rule (table_schema, table_name, rule, quantity_column)"
        " VALUES ('shop', 'gift_card', 'sum', 'balance')"
    )
    conn.execute(
        "INSERT INTO shop.gift_card (customer_id, code, balance) VALUES"
        " (%(o)s, 'XMAS', 10), (%(s)s, 'XMAS', 5), (%(o)s, 'BDAY', 7)",
        {"o": old, "s": survivor},
    )
    for n in range(3):
        _order(conn, old, f"O-101-{n}")
    _each(
        conn,
        "INSERT INTO shop.address (customer_id, street) VALUES (%(o)s, 'x');"
        "INSERT INTO shop.login_identity (customer_id, login_name) VALUES (%(o)s, 'old-login');"
        "INSERT INTO shop.favourite (customer_id, sku) VALUES (%(o)s, 'SKU-1')",
        {"o": old},
    )
    conn.commit()
    plan = conn.execute(
        "SELECT table_name, rows FROM sync.merge_plan('TX00000101', 'TX00000102')"
    ).fetchall()

    outcome = stage(conn, [_merged("TX00000101", "TX00000102")])

    assert outcome.states == {"applied": 1}
    assert _id(conn, "TX00000101") is None
    for table in ("orders", "address", "login_identity", "favourite", "gift_card"):
        left = conn.execute(
            f"SELECT count(*) FROM shop.{table} WHERE customer_id = %s", [old]
        ).fetchone()
        assert left == (0,), table
    assert conn.execute(
        "SELECT code, balance FROM shop.gift_card WHERE customer_id = %s ORDER BY code",
        [survivor],
    ).fetchall() == [("BDAY", 7), ("XMAS", 15)]
    assert conn.execute(
        "SELECT count(*) FROM shop.orders WHERE customer_id = %s", [survivor]
    ).fetchone() == (3,)
    result, reason, counts, related = _merge_audit(conn, "TX00000101")
    assert (result, related) == ("applied", "TX00000102")
    assert counts == {
        "shop.orders": 3,
        "shop.address": 1,
        "shop.login_identity": 1,
        "shop.favourite": 1,
        "shop.gift_card": 2,
        "shop.customer": 1,
    }
    assert counts == dict(plan)
    assert "shop.gift_card 1" in reason
    assert conn.execute(
        "SELECT sync.resolve_customer_number('TX00000101'), sync.resolve_customer('TX00000101')"
    ).fetchone() == ("TX00000102", survivor)


def test_survivor_values_win_and_blanks_are_filled_from_the_old_customer(
    conn: psycopg.Connection[Any],
) -> None:
    stage(
        conn,
        [
            upserted("TX00000111", 1, city="Delft", phone="+31 15 000"),
            upserted("TX00000112", 1, city="Gouda", phone=None, loyalty_card=None),
        ],
    )
    conn.execute(
        "UPDATE shop.customer SET preferred_language = 'nl' WHERE customer_number = 'TX00000111'"
    )
    conn.commit()
    stage(conn, [_merged("TX00000111", "TX00000112")])
    row = conn.execute(
        "SELECT city, phone, loyalty_card, preferred_language, tritonx_version FROM shop.customer"
    ).fetchall()
    assert row == [("Gouda", "+31 15 000", "LC-0001", "nl", 1)]


def test_conflicting_rows_follow_the_declared_rule(conn: psycopg.Connection[Any]) -> None:
    old, survivor = _customers(conn, "TX00000121", "TX00000122")
    _each(
        conn,
        "INSERT INTO shop.favourite (customer_id, sku) VALUES (%(o)s, 'A'), (%(s)s, 'A'),"
        " (%(o)s, 'B');"
        "INSERT INTO shop.wishlist (customer_id, sku, note, added_at) VALUES"
        " (%(o)s, 'W', 'old-newer', now()),"
        " (%(s)s, 'W', 'survivor-older', now() - interval '1 day'),"
        " (%(o)s, 'V', 'old-older', now() - interval '2 days'),"
        " (%(s)s, 'V', 'survivor-newer', now());"
        "INSERT INTO shop.cart (customer_id, items, updated_at) VALUES"
        " (%(o)s, '[1]', now() - interval '1 hour'), (%(s)s, '[2]', now())",
        {"o": old, "s": survivor},
    )
    conn.commit()
    stage(conn, [_merged("TX00000121", "TX00000122")])
    assert conn.execute(
        "SELECT sku FROM shop.favourite WHERE customer_id = %s ORDER BY sku", [survivor]
    ).fetchall() == [("A",), ("B",)]
    assert conn.execute(
        "SELECT sku, note FROM shop.wishlist WHERE customer_id = %s ORDER BY sku", [survivor]
    ).fetchall() == [("V", "survivor-newer"), ("W", "old-newer")]
    assert conn.execute("SELECT customer_id, items FROM shop.cart").fetchall() == [(survivor, [2])]
    _, reason, counts, _ = _merge_audit(conn, "TX00000121")
    assert counts["shop.favourite"] == 2 and counts["shop.wishlist"] == 2
    assert "shop.favourite 1" in reason and "shop.wishlist 2" in reason


def test_an_undeclared_conflict_is_a_dead_letter_and_deletes_nothing(
    conn: psycopg.Connection[Any],
) -> None:
    old, survivor = _customers(conn, "TX00000131", "TX00000132")
    conn.execute(
        "CREATE TABLE shop.stamp_card (customer_id bigint NOT NULL REFERENCES shop.customer (id),"
        " card text NOT NULL, stamps integer NOT NULL,"
        " CONSTRAINT stamp_card_one_per_card UNIQUE (customer_id, card))"
    )
    # a table the shop adds: the engine works on it as its owner role, which a DBA grants
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON shop.stamp_card TO syncctl_owner")
    _each(
        conn,
        "INSERT INTO shop.stamp_card VALUES (%(o)s, 'coffee', 3), (%(s)s, 'coffee', 4);"
        "INSERT INTO shop.favourite (customer_id, sku) VALUES (%(o)s, 'A'), (%(s)s, 'A')",
        {"o": old, "s": survivor},
    )
    _order(conn, old, "O-131")
    conn.commit()

    outcome = stage(conn, [_merged("TX00000131", "TX00000132")])

    assert outcome.states == {"dead_letter": 1}
    reason = _dead_letters(conn)["TX00000131"]
    assert "shop.stamp_card" in reason and "stamp_card_one_per_card" in reason
    assert _id(conn, "TX00000131") == old
    assert conn.execute("SELECT count(*) FROM shop.stamp_card").fetchone() == (2,)
    assert conn.execute("SELECT count(*) FROM shop.favourite").fetchone() == (2,)
    assert conn.execute(
        "SELECT customer_id FROM shop.orders WHERE order_number = 'O-131'"
    ).fetchone() == (old,)
    assert conn.execute("SELECT count(*) FROM sync.redirect").fetchone() == (0,)

    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT sync.merge_customer('TX00000131', 'TX00000132')")
    assert caught.value.sqlstate == "SY010"
    conn.rollback()


def test_redirect_chains_are_flat(conn: psycopg.Connection[Any], shop: ShopSchema) -> None:
    _customers(conn, "TX00000141", "TX00000142", "TX00000143", shop=shop)
    stage(conn, [_merged("TX00000141", "TX00000142")])
    stage(conn, [_merged("TX00000142", "TX00000143")])
    assert conn.execute(
        "SELECT old_number, survivor_number FROM sync.redirect ORDER BY 1"
    ).fetchall() == [("TX00000141", "TX00000143"), ("TX00000142", "TX00000143")]
    # one step: no survivor is itself an old number
    assert conn.execute(
        "SELECT count(*) FROM sync.redirect r"
        " JOIN sync.redirect s ON s.old_number = r.survivor_number"
    ).fetchone() == (0,)
    assert conn.execute("SELECT sync.resolve_customer_number('TX00000141')").fetchone() == (
        "TX00000143",
    )
    assert set(shop.numbers(conn)) == {"TX00000143"}


def test_n_way_merge_is_one_transaction(conn: psycopg.Connection[Any]) -> None:
    a, b, c = _customers(conn, "TX00000151", "TX00000152", "TX00000153")
    _order(conn, a, "O-151")
    _order(conn, b, "O-152")
    conn.commit()
    result = conn.execute(
        "SELECT sync.merge_customers(ARRAY['TX00000151', 'TX00000152'], 'TX00000153', 'ops:test')"
    ).fetchone()
    conn.commit()
    assert result is not None
    assert result[0] == {
        "merged": 2,
        "counts": {"shop.orders": 2, "shop.customer": 2},
    }
    assert conn.execute("SELECT DISTINCT customer_id FROM shop.orders").fetchall() == [(c,)]
    assert conn.execute("SELECT count(*) FROM shop.customer").fetchone() == (1,)

    # one impossible pair: nothing of the call happens
    d, _ = _customers(conn, "TX00000154", "TX00000155")
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT sync.merge_customers(ARRAY['TX00000154', 'TX00000155'], 'TX00000155')")
    assert caught.value.sqlstate == "SY001"
    conn.rollback()
    assert _id(conn, "TX00000154") == d


@pytest.mark.parametrize(
    ("setup", "old", "survivor", "code", "words"),
    [
        ([], "TX00000161", "TX00000161", "SY001", "into itself"),
        ([("TX00000161", "TX00000162")], "TX00000162", "TX00000161", "SY002", "cycle"),
        (
            [("TX00000162", "TX00000163")],
            "TX00000161",
            "TX00000162",
            "SY003",
            "was itself merged into TX00000163",
        ),
        ([], "TX00000161", "TX00000165", "SY004", "TX00000165 is anonymised"),
        ([], "TX00000161", "TX00000199", "SY005", "not a local customer"),
    ],
)
def test_impossible_merges_are_dead_letters_from_the_feed_and_errors_by_hand(
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
    setup: list[tuple[str, str]],
    old: str,
    survivor: str,
    code: str,
    words: str,
) -> None:
    _customers(conn, "TX00000161", "TX00000162", "TX00000163", "TX00000165", shop=shop)
    # a tombstoned customer (as an anonymisation leaves it: the row stays, its number blocked)
    conn.execute(
        "INSERT INTO sync.tombstone (customer_number, kind) VALUES ('TX00000165', 'anonymised')"
    )
    conn.commit()
    stage(conn, [_merged(o, s) for o, s in setup])
    before = shop.count_customers(conn)

    outcome = stage(conn, [_merged(old, survivor), upserted("TX00000164", 1)])

    assert outcome.states == {"dead_letter": 1, "applied": 1}
    assert words in _dead_letters(conn)[old]
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT sync.merge_customer(%s, %s)", [old, survivor])
    assert caught.value.sqlstate == code
    assert words in str(caught.value)
    conn.rollback()
    assert shop.count_customers(conn) == before + 1


def test_merge_into_an_anonymised_customer_is_refused(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    old, _ = _customers(conn, "TX00000171", "TX00000172", shop=shop)
    stage(conn, [event("customer.anonymized", "TX00000172", 2, reason_code="AVG")])
    assert stage(conn, [_merged("TX00000171", "TX00000172")]).states == {"dead_letter": 1}
    assert "TX00000172 is anonymised" in _dead_letters(conn)["TX00000171"]
    with pytest.raises(psycopg.Error) as caught:
        conn.execute("SELECT sync.merge_customer('TX00000171', 'TX00000172')")
    assert caught.value.sqlstate == "SY004"
    conn.rollback()
    assert shop.key_of(conn, "TX00000171") == old


def test_a_merge_of_a_number_not_held_locally_records_the_redirect_only(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    (survivor,) = _customers(conn, "TX00000182", shop=shop)
    outcome = stage(conn, [_merged("TX00000181", "TX00000182")])
    assert outcome.states == {"applied": 1}
    assert _merge_audit(conn, "TX00000181")[:3] == ("applied", "redirect_only", {})
    assert conn.execute("SELECT sync.resolve_customer_key('TX00000181')").fetchone() == (
        str(survivor),
    )
    # and a late snapshot of the old number does not bring it in
    assert stage(conn, [upserted("TX00000181", 9)]).states == {"skipped": 1}
    assert shop.key_of(conn, "TX00000181") is None


def test_late_events_for_a_merged_away_number_are_recorded_no_ops(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    _customers(conn, "TX00000191", "TX00000192", shop=shop)
    stage(conn, [_merged("TX00000191", "TX00000192")])
    outcome = stage(
        conn,
        [
            upserted("TX00000191", 5, city="Late"),
            event("customer.anonymized", "TX00000191", 6, reason_code="AVG"),
            event("customer.deleted", "TX00000191", 7),
            _merged("TX00000191", "TX00000192", 8),
        ],
    )
    assert outcome.states == {"skipped": 4}
    reasons = [
        r
        for (r,) in conn.execute(
            "SELECT reason FROM sync.audit WHERE customer_number = 'TX00000191' AND version > 4"
            " ORDER BY id"
        ).fetchall()
    ]
    assert reasons == ["merged_away", "merged_away", "merged_away", "already_merged"]
    assert set(shop.numbers(conn)) == {"TX00000192"}
    assert shop.read_row(conn, "TX00000192") == shop.expected_row(
        upserted("TX00000192", 1)["customer"]
    )
    assert conn.execute("SELECT count(*) FROM sync.tombstone").fetchone() == (0,)


def test_a_batch_applies_in_seq_order(conn: psycopg.Connection[Any], shop: ShopSchema) -> None:
    page = [
        upserted("TX00000201", 1),
        upserted("TX00000202", 1),
        _merged("TX00000201", "TX00000202"),
        upserted("TX00000201", 3, city="Too late"),
        upserted("TX00000202", 2, city="Zwolle"),
    ]
    # staged out of order: seq decides
    outcome = stage(conn, [page[4], page[2], page[0], page[3], page[1]])
    assert outcome.states == {"applied": 4, "skipped": 1}
    assert set(shop.numbers(conn)) == {"TX00000202"}
    assert shop.read_row(conn, "TX00000202") == shop.expected_row(page[4]["customer"])


def test_a_shop_write_for_the_old_customer_after_the_merge_fails_and_resolves(
    conn: psycopg.Connection[Any], dsn: str, shop: ShopSchema
) -> None:
    old, survivor = _customers(conn, "TX00000211", "TX00000212", shop=shop)
    stage(conn, [_merged("TX00000211", "TX00000212")])
    with psycopg.connect(dsn) as app, pytest.raises(psycopg.errors.ForeignKeyViolation):
        shop.place_order(app, old)
    retry = conn.execute("SELECT sync.resolve_customer_key('TX00000211')").fetchone()
    assert retry == (str(survivor),)
    if isinstance(shop, ReferenceShop):
        retry = conn.execute("SELECT sync.resolve_customer('TX00000211')").fetchone()
        assert retry == (survivor,)


def test_merge_audit_holds_no_personal_data(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    _customers(conn, "TX00000221", "TX00000222", shop=shop)
    stage(conn, [_merged("TX00000221", "TX00000222")])
    audit = json.dumps(
        conn.execute("SELECT json_agg(a) FROM sync.audit a").fetchone()[0]  # type: ignore[index]
    )
    for personal in ("example.nl", "Berg", "Keizersgracht", "1015 CJ", "1984"):
        assert personal not in audit
