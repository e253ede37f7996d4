"""customer.anonymized, customer.deleted and the back-office button: personal data is
overwritten per the PII registry in the customer and every linked table, transactions stay,
logins, carts and wishlists go, a tombstone stops later events, the engine's own copies
(inbox payloads, dead letters) are scrubbed, and a local anonymisation queues one outbox event
in the same transaction. The tests of what every schema has (tombstones, the engine's own
copies, the back-office button, refusals, failing closed) run on both test schemas; those about
the reference shop's own tables say so, and tests/integration/test_anonymise_mapped.py has the
boutique's (its address, shared or not, partitioned orders, reviews)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any, LiteralString

import psycopg
import pytest
from psycopg import sql

from tests.feed import event, snapshot, stage, upserted
from tests.shops import CustomerKey, ReferenceShop, ShopSchema

REFERENCE: ShopSchema = ReferenceShop()

PERSONAL = ("example.nl", "Anna", "Berg", "Keizersgracht", "1015 CJ", "+31 6 1234", "LC-0001")


def _id(conn: psycopg.Connection[Any], number: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM shop.customer WHERE customer_number = %s", [number]
    ).fetchone()
    return None if row is None else int(row[0])


def _shop_customer(
    conn: psycopg.Connection[Any], number: str, orders: int = 1, shop: ShopSchema = REFERENCE
) -> Any:
    stage(conn, [upserted(number, 1)])
    key = shop.key_of(conn, number)
    assert key is not None
    shop.add_rows_everywhere(conn, key, orders=orders)
    conn.commit()
    return key


def _values(conn: psycopg.Connection[Any], shop: ShopSchema, number: str) -> str:
    """Every mapped value of the customer, as one string to look for a value in."""
    return " ".join(str(v) for v in shop.read_row(conn, number).values())


def _rows(conn: psycopg.Connection[Any], table: str, cid: int) -> list[dict[str, Any]]:
    cur = conn.execute(f"SELECT * FROM shop.{table} WHERE customer_id = %s", [cid])
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _customer(conn: psycopg.Connection[Any], cid: int) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM shop.customer WHERE id = %s", [cid])
    row = cur.fetchone()
    assert row is not None
    return dict(zip([d.name for d in cur.description or []], row, strict=True))


def _audit(conn: psycopg.Connection[Any], number: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT action, outcome, reason, counts FROM sync.audit WHERE customer_number = %s"
        " ORDER BY id",
        [number],
    ).fetchall()


def _everything(conn: psycopg.Connection[Any], shop: ShopSchema = REFERENCE) -> str:
    """All shop and engine data as one string, to look for personal data in."""
    schemas = ["sync", shop.mapping["customer"]["schema"]]
    schemas += [r["schema"] for r in shop.mapping.get("related", [])]
    schemas += [r["schema"] for r in shop.mapping.get("reference", [])]
    parts = []
    for (table,) in conn.execute(
        "SELECT format('%%I.%%I', schemaname, tablename) FROM pg_tables"
        " WHERE schemaname = ANY (%s) ORDER BY 1",
        [schemas],
    ).fetchall():
        row = conn.execute(f"SELECT coalesce(json_agg(t), '[]') FROM {table} t").fetchone()
        assert row is not None
        parts.append(json.dumps(row[0]))
    return "\n".join(parts)


def test_anonymise_scrubs_personal_data_and_keeps_transactions_on_the_reference_shop(
    conn: psycopg.Connection[Any],
) -> None:
    cid = _shop_customer(conn, "TX00000301", orders=2)
    plan = conn.execute("SELECT table_name, rows FROM sync.anonymise_plan('TX00000301')").fetchall()

    outcome = stage(conn, [event("customer.anonymized", "TX00000301", 2, reason_code="AVG")])

    assert outcome.states == {"applied": 1}
    customer = _customer(conn, cid)
    assert customer["email"] == f"anon-{cid}@invalid"
    assert customer["birth_date"] == dt.date(1984, 1, 1)
    assert (
        customer["first_name"],
        customer["last_name"],
        customer["street"],
        customer["phone"],
        customer["loyalty_card"],
    ) == (None, None, None, None, None)
    assert customer["customer_number"] == "TX00000301"
    assert customer["country_code"] == "NL"
    orders = _rows(conn, "orders", cid)
    assert len(orders) == 2
    for order in orders:
        assert order["total_amount"] == Decimal("99.95") and order["placed_at"].year == 2025
        assert all(
            order[c] is None
            for c in (
                "delivery_name",
                "delivery_street",
                "delivery_postcode",
                "delivery_city",
                "contact_email",
                "contact_phone",
            )
        )
    (address,) = _rows(conn, "address", cid)
    assert (address["recipient_name"], address["street"], address["city"]) == (None, None, None)
    for table in ("login_identity", "cart", "wishlist", "newsletter_subscription"):
        assert _rows(conn, table, cid) == [], table
    assert len(_rows(conn, "favourite", cid)) == 1
    assert conn.execute("SELECT kind FROM sync.tombstone").fetchall() == [("anonymised",)]
    ((_action, result, reason, counts),) = [
        a for a in _audit(conn, "TX00000301") if a[0] == "customer.anonymized"
    ]
    assert (result, reason) == ("applied", "anonymised (reason code AVG)")
    assert counts == dict(plan)
    assert counts["shop.orders"] == 2 and counts["shop.login_identity"] == 1
    leftovers = [p for p in PERSONAL if p in _everything(conn)]
    assert leftovers == []


def test_the_tombstone_makes_later_events_recorded_no_ops(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    _shop_customer(conn, "TX00000311", shop=shop)
    stage(conn, [event("customer.anonymized", "TX00000311", 2)])
    outcome = stage(
        conn,
        [
            upserted("TX00000311", 3, last_name="Back"),
            event("customer.anonymized", "TX00000311", 4),
        ],
    )
    assert outcome.states == {"skipped": 2}
    assert "Berg" not in _values(conn, shop, "TX00000311")
    assert "Back" not in _values(conn, shop, "TX00000311")
    assert [a[2] for a in _audit(conn, "TX00000311")][-2:] == ["tombstone", "tombstone"]


def test_inbox_payloads_and_dead_letters_of_the_customer_are_scrubbed(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    _shop_customer(conn, "TX00000321", shop=shop)
    stage(conn, [upserted("TX00000322", 1, email="other@example.org", last_name="Other")])
    stage(
        conn,
        [
            upserted("TX00000321", 2, birth_date="1984-02-31"),  # dead letter, keeps its payload
            event(
                "customer.merged",
                "TX00000322",
                2,
                into="TX00000321",
                customer=snapshot("TX00000321"),
            ),
        ],
    )
    assert conn.execute("SELECT count(*) FROM sync.dead_letter").fetchone() == (1,)
    assert "Keizersgracht" in _everything(conn, shop)

    stage(conn, [event("customer.anonymized", "TX00000321", 3, reason_code="AVG")])

    everything = _everything(conn, shop)
    assert [p for p in PERSONAL if p in everything] == []
    # the merged-in customer's data was the same person's, now anonymised too
    assert "other@example.org" not in everything
    assert conn.execute("SELECT count(*) FROM sync.dead_letter").fetchone() == (0,)
    envelopes = conn.execute(
        "SELECT payload FROM sync.inbox WHERE customer_number = 'TX00000321'"
    ).fetchall()
    assert all(p["customer_number"] == "TX00000321" and "customer" not in p for (p,) in envelopes)
    states = dict(
        conn.execute("SELECT state, count(*) FROM sync.inbox_status GROUP BY state").fetchall()
    )
    assert "dead_letter" not in states and "pending" not in states


def test_delete_anonymises_when_orders_exist_on_the_reference_shop(
    conn: psycopg.Connection[Any],
) -> None:
    cid = _shop_customer(conn, "TX00000331", orders=1)
    assert stage(conn, [event("customer.deleted", "TX00000331", 2)]).states == {"applied": 1}
    assert _customer(conn, cid)["last_name"] is None
    assert len(_rows(conn, "orders", cid)) == 1
    assert conn.execute("SELECT kind FROM sync.tombstone").fetchall() == [("anonymised",)]
    assert _audit(conn, "TX00000331")[-1][2] == "anonymised: bookkeeping rows kept"


def test_delete_removes_a_customer_without_orders_on_the_reference_shop(
    conn: psycopg.Connection[Any],
) -> None:
    cid = _shop_customer(conn, "TX00000341", orders=0)
    assert stage(conn, [event("customer.deleted", "TX00000341", 2)]).states == {"applied": 1}
    assert _id(conn, "TX00000341") is None
    for table in (
        "address",
        "login_identity",
        "cart",
        "wishlist",
        "favourite",
        "newsletter_subscription",
    ):
        assert _rows(conn, table, cid) == [], table
    assert conn.execute("SELECT kind FROM sync.tombstone").fetchall() == [("deleted",)]
    counts = _audit(conn, "TX00000341")[-1][3]
    assert counts["shop.customer"] == 1 and counts["shop.favourite"] == 1
    assert stage(conn, [upserted("TX00000341", 3)]).states == {"skipped": 1}
    assert _id(conn, "TX00000341") is None
    everything = _everything(conn)
    assert [
        everything[everything.find(p) - 300 : everything.find(p) + 50]
        for p in PERSONAL
        if p in everything
    ] == []


def test_anonymise_of_a_number_never_seen_is_tombstoned(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    assert stage(conn, [event("customer.anonymized", "TX00000351", 1)]).states == {"applied": 1}
    assert stage(conn, [upserted("TX00000351", 2)]).states == {"skipped": 1}
    assert shop.key_of(conn, "TX00000351") is None


def _backoffice(shop: ShopSchema) -> LiteralString:
    """The back-office button's call for the schema's key (%s): the bigint id on the reference
    shop, the key as text on the boutique."""
    if isinstance(shop, ReferenceShop):
        return "SELECT sync.anonymise_from_backoffice(%s, 'AVG', 'backoffice:op-17')"
    return "SELECT sync.anonymise_from_backoffice_key(%s::text, 'AVG', 'backoffice:op-17')"


def test_backoffice_anonymise_queues_one_outbox_event_in_the_same_transaction(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    cid = _shop_customer(conn, "TX00000361", shop=shop)
    conn.execute(_backoffice(shop), [cid])
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM sync.outbox").fetchone() == (0,)
    assert "Berg" in _values(conn, shop, "TX00000361")

    result = conn.execute(_backoffice(shop), [cid]).fetchone()
    conn.commit()
    assert result is not None and result[0]["outcome"] == "applied"
    rows = conn.execute(
        "SELECT customer_number, event_type, payload, state, attempts, idempotency_key"
        " FROM sync.outbox"
    ).fetchall()
    assert len(rows) == 1
    number, kind, payload, state, attempts, key = rows[0]
    assert (number, kind, state, attempts) == (
        "TX00000361",
        "customer.anonymize_requested",
        "pending",
        0,
    )
    assert payload == {"reason_code": "AVG", "requested_by": "backoffice:op-17"}
    assert key is not None
    assert "Berg" not in _values(conn, shop, "TX00000361")
    assert conn.execute("SELECT kind FROM sync.tombstone").fetchall() == [("anonymised",)]
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(_backoffice(shop), [cid])
    assert caught.value.sqlstate == "SY021"
    conn.rollback()


def test_backoffice_anonymise_of_an_unlinked_customer_queues_nothing(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    local: CustomerKey = shop.add_customer(
        conn, snapshot("TX99999999", email="local@example.nl", last_name="Local"), linked=False
    )
    conn.execute(_backoffice(shop), [local])
    conn.commit()
    table, column = shop.column_of("email")
    email = conn.execute(
        sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
            column, table, sql.Identifier(shop.key_column)
        ),
        [local],
    ).fetchone()
    assert email == (f"anon-{local}@invalid",)
    assert conn.execute("SELECT count(*) FROM sync.outbox").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM sync.tombstone").fetchone() == (0,)


@pytest.mark.parametrize(
    ("call", "code"),
    [
        ("SELECT sync.anonymise_from_backoffice(-1, 'AVG', 'ops')", "SY020"),
        ("SELECT sync.anonymise_from_backoffice_key('-1', 'AVG', 'ops')", "SY020"),
        ("SELECT sync.anonymise_customer('TX00000399', 'AVG', 'ops')", "SY020"),
        ("SELECT sync.anonymise_customer('TX00000371', 'AVG', 'ops')", "SY008"),
        ("SELECT sync.anonymise_customer('TX00000372', 'free text with a name', 'ops')", "SY023"),
    ],
)
def test_impossible_anonymisations_by_hand_raise(
    conn: psycopg.Connection[Any], shop: ShopSchema, call: str, code: str
) -> None:
    _shop_customer(conn, "TX00000371", orders=0, shop=shop)
    _shop_customer(conn, "TX00000372", orders=0, shop=shop)
    stage(conn, [event("customer.merged", "TX00000371", 2, into="TX00000372")])
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(call)
    assert caught.value.sqlstate == code
    conn.rollback()


def test_anonymisation_fails_closed_while_a_column_is_unclassified(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    cid = _shop_customer(conn, "TX00000381", shop=shop)
    customer = shop.mapping["customer"]
    table = sql.Identifier(customer["schema"], customer["table"])
    nickname = sql.SQL("SELECT nickname FROM {} WHERE {} = %s").format(
        table, sql.Identifier(shop.key_column)
    )
    conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN nickname text").format(table))
    conn.execute(sql.SQL("UPDATE {} SET nickname = 'Annie'").format(table))
    conn.commit()
    outcome = stage(conn, [event("customer.anonymized", "TX00000381", 2)])
    assert outcome.states == {"dead_letter": 1}
    (reason,) = conn.execute("SELECT reason FROM sync.dead_letter").fetchone() or ("",)
    assert "1 column(s) have no PII strategy" in reason
    assert conn.execute(nickname, [cid]).fetchone() == ("Annie",)
    assert conn.execute("SELECT count(*) FROM sync.tombstone").fetchone() == (0,)

    conn.execute(
        "INSERT INTO sync.pii_column VALUES (%s, %s, 'nickname', 'null')",
        [customer["schema"], customer["table"]],
    )
    inbox_id = conn.execute("SELECT inbox_id FROM sync.dead_letter").fetchone()
    assert inbox_id is not None
    assert conn.execute("SELECT sync.retry_dead_letter(%s)", inbox_id).fetchone() == ("applied",)
    assert conn.execute(nickname, [cid]).fetchone() == (None,)


def test_a_shop_table_with_a_placeholder_strategy_keeps_its_unique_constraint(
    conn: psycopg.Connection[Any],
) -> None:
    a = _shop_customer(conn, "TX00000391", orders=0)
    b = _shop_customer(conn, "TX00000392", orders=0)
    conn.execute(
        "CREATE TABLE shop.handle (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " customer_id bigint NOT NULL REFERENCES shop.customer (id), handle text UNIQUE,"
        " since date)"
    )
    # a table the shop adds: the engine works on it as its owner role, which a DBA grants
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON shop.handle TO syncctl_owner")
    conn.execute("CREATE INDEX ON shop.handle (customer_id)")
    conn.execute(
        "INSERT INTO sync.pii_column VALUES ('shop', 'handle', 'id', 'not_personal', NULL),"
        " ('shop', 'handle', 'customer_id', 'not_personal', NULL),"
        " ('shop', 'handle', 'handle', 'placeholder', 'gone-{id}'),"
        " ('shop', 'handle', 'since', 'year', NULL)"
    )
    conn.execute(
        "INSERT INTO shop.handle (customer_id, handle, since) VALUES"
        " (%(a)s, 'anna1', '2020-06-07'), (%(a)s, 'anna2', '2021-06-07'),"
        " (%(b)s, 'bob', '2022-06-07')",
        {"a": a, "b": b},
    )
    conn.commit()
    stage(conn, [event("customer.anonymized", n, 2) for n in ("TX00000391", "TX00000392")])
    rows = conn.execute("SELECT id, handle, since FROM shop.handle ORDER BY id").fetchall()
    assert [(h, s) for _, h, s in rows] == [
        (f"gone-{rows[0][0]}", dt.date(2020, 1, 1)),
        (f"gone-{rows[1][0]}", dt.date(2021, 1, 1)),
        (f"gone-{rows[2][0]}", dt.date(2022, 1, 1)),
    ]


def test_a_rejected_merge_into_an_anonymised_customer_keeps_no_snapshot(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    _shop_customer(conn, "TX00000401", orders=0, shop=shop)
    _shop_customer(conn, "TX00000402", orders=0, shop=shop)
    stage(conn, [event("customer.anonymized", "TX00000402", 2)])
    merge = event(
        "customer.merged",
        "TX00000401",
        2,
        into="TX00000402",
        customer=snapshot("TX00000402", last_name="Survivor"),
    )
    assert stage(conn, [merge]).states == {"dead_letter": 1}
    payload = conn.execute(
        "SELECT payload FROM sync.inbox WHERE event_id = %s", [merge["event_id"]]
    ).fetchone()
    assert payload is not None and "customer" not in payload[0]
    assert payload[0]["into"] == "TX00000402"
