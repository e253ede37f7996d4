"""Consent and policies on any mapped schema: the reference shop (integer key, the opt-in stored
as is in shop.customer.newsletter_opt_in) and the boutique (uuid key, the opt-in stored as 'J'/'N'
in crm.customer.newsletter, or not stored at all). tritonX's opt-in is recorded from the feed's
snapshots, once per change; local changes of a column that holds it as is are local decisions;
activating a policy takes the current value; the collection guard goes on any customer-linked
table; consents are recorded, read and combined by a merge with the shop's own keys."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from syncctl import errors, gdpr
from tests.feed import event, stage, upserted
from tests.shops import SHOPS, Boutique, CustomerKey, ShopSchema
from tests.shops.binding import bind_boutique

NOW = datetime(2026, 11, 22, tzinfo=UTC)
BOUTIQUE = Boutique()


@pytest.fixture(params=SHOPS, ids=[s.name for s in SHOPS])
def shop(request: pytest.FixtureRequest, conn: psycopg.Connection[Any]) -> Iterator[ShopSchema]:
    """Each test schema, bound to the engine (the reference is bound by the migrations)."""
    schema: ShopSchema = request.param
    if schema.name == "boutique":
        bind_boutique(conn, schema, classified=True)
    yield schema


def _key(conn: psycopg.Connection[Any], shop: ShopSchema, number: str) -> CustomerKey:
    key = shop.key_of(conn, number)
    assert key is not None
    return key


def _history(conn: psycopg.Connection[Any], key: CustomerKey, code: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT c.granted, c.source FROM gdpr.consent AS c JOIN gdpr.policy AS p"
        " ON p.id = c.policy_id WHERE c.customer_key = %s::text AND p.code = %s ORDER BY c.id",
        [str(key), code],
    ).fetchall()


def _current(conn: psycopg.Connection[Any], key: CustomerKey, code: str) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT granted, source FROM gdpr.current_consent WHERE customer_key = %s"
        " AND policy_code = %s",
        [str(key), code],
    ).fetchone()


def _install(conn: psycopg.Connection[Any], document: dict[str, Any]) -> None:
    conn.execute("SET ROLE syncctl_owner")
    conn.execute("SELECT sync.install_mapping(%s::jsonb, 'test')", [json.dumps(document)])
    conn.execute("RESET ROLE")
    conn.commit()


def test_tritonx_opt_in_is_recorded_from_the_feed_once_per_change(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    gdpr.activate_policy(conn, "newsletter", actor="dpo:test")
    stage(
        conn,
        [
            upserted("TX00000001", 1, newsletter_opt_in=True),
            upserted("TX00000002", 1, newsletter_opt_in=False),
            upserted("TX00000003", 1, newsletter_opt_in=None),
        ],
    )
    conn.commit()
    first, second, third = (_key(conn, shop, f"TX0000000{n}") for n in (1, 2, 3))
    assert _history(conn, first, "newsletter") == [(True, "tritonx")]
    assert _history(conn, second, "newsletter") == []
    assert _history(conn, third, "newsletter") == []

    # a later snapshot with the same opt-in (another field changed) records nothing; a flip
    # records one decision, however many events of the customer the page holds
    stage(
        conn,
        [
            upserted("TX00000001", 2, newsletter_opt_in=True, city="Delft"),
            upserted("TX00000002", 2, newsletter_opt_in=True),
            upserted("TX00000002", 3, newsletter_opt_in=True, city="Delft"),
            upserted("TX00000003", 2, newsletter_opt_in=False),
        ],
    )
    conn.commit()
    assert _history(conn, first, "newsletter") == [(True, "tritonx")]
    assert _history(conn, second, "newsletter") == [(True, "tritonx")]
    assert _history(conn, third, "newsletter") == []
    stage(conn, [upserted("TX00000001", 3, newsletter_opt_in=False)])
    conn.commit()
    assert _history(conn, first, "newsletter") == [(True, "tritonx"), (False, "tritonx")]
    assert conn.execute(
        "SELECT gdpr.has_consent(%s::text, 'newsletter')", [str(first)]
    ).fetchone() == (False,)
    assert conn.execute(
        "SELECT gdpr.has_consent(%s::text, 'newsletter')", [str(second)]
    ).fetchone() == (True,)
    # a stale or duplicate delivery records nothing
    stage(conn, [upserted("TX00000001", 2, newsletter_opt_in=True)])
    conn.commit()
    assert _history(conn, first, "newsletter") == [(True, "tritonx"), (False, "tritonx")]


def test_a_draft_policy_records_nothing_and_activation_takes_the_current_opt_in(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(
        conn,
        [
            upserted("TX00000001", 1, newsletter_opt_in=True),
            upserted("TX00000002", 1, newsletter_opt_in=False),
        ],
    )
    conn.commit()
    assert conn.execute("SELECT count(*) FROM gdpr.consent").fetchone() == (0,)
    opted_in, opted_out = _key(conn, shop, "TX00000001"), _key(conn, shop, "TX00000002")
    result = conn.execute("SELECT gdpr.activate_policy('newsletter', 'dpo', %s)", [NOW]).fetchone()
    assert result is not None
    assert result[0] == {"state": "active", "consents": 1, "consents_from": "column"}
    conn.commit()
    assert _history(conn, opted_in, "newsletter") == [(True, "tritonx")]
    assert _history(conn, opted_out, "newsletter") == []
    # tritonX then flips both: recorded against what activation took
    stage(
        conn,
        [
            upserted("TX00000001", 2, newsletter_opt_in=False),
            upserted("TX00000002", 2, newsletter_opt_in=True),
        ],
    )
    conn.commit()
    assert _current(conn, opted_in, "newsletter") == (False, "tritonx")
    assert _current(conn, opted_out, "newsletter") == (True, "tritonx")


def test_activation_reads_the_latest_snapshot_when_the_mapping_does_not_store_the_field(
    conn: psycopg.Connection[Any],
) -> None:
    bind_boutique(conn, BOUTIQUE)
    document = copy.deepcopy(BOUTIQUE.mapping)
    del document["customer"]["columns"]["newsletter"]
    document["not_stored"]["fields"].append("newsletter_opt_in")
    _install(conn, document)
    stage(
        conn,
        [
            upserted("TX00000001", 1, newsletter_opt_in=False),
            upserted("TX00000001", 2, newsletter_opt_in=True),
            upserted("TX00000002", 1, newsletter_opt_in=True),
            upserted("TX00000003", 1, newsletter_opt_in=True),
        ],
    )
    stage(conn, [upserted("TX00000002", 2, newsletter_opt_in=False)])
    conn.commit()
    # the third customer's snapshot is gone (the payload was dropped): no decision until
    # tritonX sends one
    conn.execute(
        "UPDATE sync.inbox SET payload = sync.event_envelope(payload) WHERE customer_number = %s",
        ["TX00000003"],
    )
    result = gdpr.activate_policy(conn, "newsletter", actor="dpo:test")
    assert (result.consents, result.consents_from) == (1, "snapshots")
    first, second, third = (_key(conn, BOUTIQUE, f"TX0000000{n}") for n in (1, 2, 3))
    assert _history(conn, first, "newsletter") == [(True, "tritonx")]
    assert _history(conn, second, "newsletter") == []
    assert _history(conn, third, "newsletter") == []
    stage(conn, [upserted("TX00000003", 2, newsletter_opt_in=True)])
    conn.commit()
    assert _history(conn, third, "newsletter") == [(True, "tritonx")]


def test_local_changes_of_a_column_holding_the_opt_in_as_is_are_local_decisions(
    conn: psycopg.Connection[Any],
) -> None:
    gdpr.activate_policy(conn, "newsletter", actor="dpo:test")
    stage(conn, [upserted("TX00000001", 1, newsletter_opt_in=True)])
    conn.commit()
    linked = _key(conn, SHOPS[0], "TX00000001")
    conn.execute("UPDATE shop.customer SET newsletter_opt_in = false WHERE id = %s", [linked])
    conn.commit()
    assert _history(conn, linked, "newsletter") == [(True, "tritonx"), (False, "back_office")]
    # tritonX's next snapshot, opt-in unchanged, restores the column but not the consent: the
    # local withdrawal stands until tritonX's value changes
    stage(conn, [upserted("TX00000001", 2, newsletter_opt_in=True, city="Delft")])
    conn.commit()
    assert conn.execute(
        "SELECT newsletter_opt_in FROM shop.customer WHERE id = %s", [linked]
    ).fetchone() == (True,)
    assert _history(conn, linked, "newsletter") == [(True, "tritonx"), (False, "back_office")]
    # a job names its own source; a local customer created with the opt-in is a local grant
    conn.execute("SELECT gdpr._set_consent_source('retention')")
    conn.execute(
        "UPDATE shop.customer SET newsletter_opt_in = NOT newsletter_opt_in WHERE id = %s", [linked]
    )
    conn.commit()
    local = conn.execute(
        "INSERT INTO shop.customer (email, newsletter_opt_in) VALUES ('l@example.nl', true)"
        " RETURNING id"
    ).fetchone()
    assert local is not None
    conn.commit()
    assert _history(conn, linked, "newsletter")[-1] == (False, "retention")
    assert _history(conn, local[0], "newsletter") == [(True, "back_office")]
    triggers = conn.execute(
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger"
        " WHERE tgname LIKE 'customer_consent_%' ORDER BY 2"
    ).fetchall()
    assert triggers == [
        ("shop.customer", "customer_consent_inserted"),
        ("shop.customer", "customer_consent_updated"),
    ]


def test_a_transformed_opt_in_column_changed_locally_is_no_decision(
    conn: psycopg.Connection[Any],
) -> None:
    bind_boutique(conn, BOUTIQUE)
    # the triggers follow the mapping: none on the boutique ('J'/'N' is not the field as is)
    assert conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'customer_consent_%'"
    ).fetchone() == (0,)
    gdpr.activate_policy(conn, "newsletter", actor="dpo:test")
    stage(conn, [upserted("TX00000001", 1, newsletter_opt_in=True)])
    conn.commit()
    key = _key(conn, BOUTIQUE, "TX00000001")
    conn.execute("UPDATE crm.customer SET newsletter = 'N' WHERE customer_uuid = %s", [key])
    conn.commit()
    assert _history(conn, key, "newsletter") == [(True, "tritonx")]
    gdpr.record_consent(conn, str(key).upper(), "newsletter", granted=False, source="back_office")
    assert _current(conn, key, "newsletter") == (False, "back_office")


def test_record_and_read_consent_by_the_shops_own_key(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    gdpr.activate_policy(conn, "club", actor="dpo:test")
    stage(conn, [upserted("TX00000001", 1)])
    conn.commit()
    key = _key(conn, shop, "TX00000001")
    spelled = str(key).upper() if isinstance(key, uuid.UUID) else f"00{key}"
    gdpr.record_consent(conn, spelled, "club", granted=True, at=NOW)
    assert _current(conn, key, "club") == (True, "webshop")
    assert conn.execute("SELECT gdpr.has_consent(%s::text, 'club')", [spelled]).fetchone() == (
        True,
    )
    gdpr.record_consent(conn, key if isinstance(key, int) else str(key), "club", granted=False)
    assert conn.execute("SELECT gdpr.has_consent(%s::text, 'club')", [str(key)]).fetchone() == (
        False,
    )
    # a key of nobody, or not of the key's type, is refused without being echoed
    for stranger in (str(uuid.uuid4()), "anna.berg@example.nl", "999999"):
        with pytest.raises(errors.GdprRefusal) as refused:
            gdpr.record_consent(conn, stranger, "club", granted=True)
        assert refused.value.sqlstate == "SY020"
        assert stranger not in str(refused.value)
        assert conn.execute("SELECT gdpr.has_consent(%s, 'club')", [stranger]).fetchone() == (
            False,
        )


@pytest.mark.parametrize(
    ("rule", "old", "survivor", "expected"),
    [
        ("most_restrictive", True, False, False),
        ("most_restrictive", True, None, True),
        ("most_permissive", True, False, True),
        ("survivor", True, None, False),
    ],
)
def test_a_merge_on_the_boutique_combines_consents_by_the_rule(
    conn: psycopg.Connection[Any], rule: str, old: bool, survivor: bool | None, expected: bool
) -> None:
    bind_boutique(conn, BOUTIQUE, merge_rule=True)
    conn.execute("UPDATE gdpr.policy SET merge_rule = %s WHERE code = 'club'", [rule])
    gdpr.activate_policy(conn, "club", actor="dpo:test", now=NOW)
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)])
    conn.commit()
    old_key, survivor_key = _key(conn, BOUTIQUE, "TX00000001"), _key(conn, BOUTIQUE, "TX00000002")
    gdpr.record_consent(conn, str(old_key), "club", granted=old, at=NOW)
    if survivor is not None:
        gdpr.record_consent(conn, str(survivor_key), "club", granted=survivor, at=NOW)
    stage(conn, [event("customer.merged", "TX00000001", 2, into="TX00000002")])
    conn.commit()
    assert BOUTIQUE.key_of(conn, "TX00000001") is None
    assert _current(conn, survivor_key, "club") == (expected, "merge")
    assert _history(conn, old_key, "club") == []
    audit = conn.execute(
        "SELECT actor, customer_number, customer_id, reason FROM sync.audit"
        " WHERE action = 'consent.merged'"
    ).fetchall()
    assert audit == [("merge", "TX00000002", None, f"combined by rule: club {rule}")]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [("most_restrictive", False), ("most_permissive", True), ("survivor", False)],
)
def test_several_customers_merged_into_one_on_the_boutique_combine_their_consents_in_turn(
    conn: psycopg.Connection[Any], rule: str, expected: bool
) -> None:
    """`syncctl merge OLD1 OLD2 SURVIVOR` on a uuid key: each old customer's consents are
    combined with the survivor's in turn, one merge decision and one audit row each; the last
    decision is the rule applied to all of them (a survivor without a decision of its own)."""
    bind_boutique(conn, BOUTIQUE, merge_rule=True)
    conn.execute("UPDATE gdpr.policy SET merge_rule = %s WHERE code = 'club'", [rule])
    gdpr.activate_policy(conn, "club", actor="dpo:test", now=NOW)
    numbers = ["TX00000011", "TX00000012", "TX00000013"]
    stage(conn, [upserted(n, 1) for n in numbers])
    conn.commit()
    first, second, survivor = (_key(conn, BOUTIQUE, n) for n in numbers)
    gdpr.record_consent(conn, str(first), "club", granted=False, at=NOW)
    gdpr.record_consent(conn, str(second), "club", granted=True, at=NOW)
    conn.execute("SELECT sync.merge_customers(%s, %s, 'ops:test')", [numbers[:2], numbers[2]])
    conn.commit()

    assert _current(conn, survivor, "club") == (expected, "merge")
    merges = [granted for granted, source in _history(conn, survivor, "club") if source == "merge"]
    assert len(merges) == 2
    assert _history(conn, first, "club") == _history(conn, second, "club") == []
    audit = conn.execute(
        "SELECT customer_number, reason FROM sync.audit WHERE action = 'consent.merged'"
    ).fetchall()
    assert audit == [("TX00000013", f"combined by rule: club {rule}")] * 2


def test_the_collection_guard_goes_on_any_customer_linked_table(
    conn: psycopg.Connection[Any],
) -> None:
    # the reference shop's guard was installed through the same function
    assert conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'shop.newsletter_subscription'::regclass"
        " AND tgname LIKE 'needs_consent%'"
    ).fetchall() == [("needs_consent_newsletter",)]
    gdpr.activate_policy(conn, "newsletter", actor="dpo:test")
    local = conn.execute("INSERT INTO shop.customer (email) VALUES (NULL) RETURNING id").fetchone()
    assert local is not None
    conn.commit()
    with pytest.raises(psycopg.Error) as unsubscribed:
        conn.execute(
            "INSERT INTO shop.newsletter_subscription (customer_id, list_name) VALUES (%s, 'w')",
            [local[0]],
        )
    assert unsubscribed.value.sqlstate == "SY083"
    assert unsubscribed.value.diag.message_primary == (
        f"shop.newsletter_subscription: 1 customer(s) (first id {local[0]}) have no granted"
        " consent for policy newsletter"
    )
    conn.rollback()
    bind_boutique(conn, BOUTIQUE)
    gdpr.activate_policy(conn, "club", actor="dpo:test")
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)])
    conn.commit()
    member, stranger = _key(conn, BOUTIQUE, "TX00000001"), _key(conn, BOUTIQUE, "TX00000002")
    gdpr.record_consent(conn, str(member), "club", granted=True)
    # a foreign key, a partitioned table, a declared reference without a foreign key
    guarded = {
        "crm.favourite": "INSERT INTO crm.favourite (customer_uuid, sku) VALUES (%s, 'SKU-1')",
        "sales.orders": "INSERT INTO sales.orders (customer_uuid, order_number, placed_at)"
        " VALUES (%s, gen_random_uuid()::text, now())",
        'sales."Review"': 'INSERT INTO sales."Review" (customer_ref, sku, rating)'
        " VALUES (%s, 'SKU-1', 5)",
    }
    for table, insert in guarded.items():
        assert conn.execute("SELECT gdpr.require_consent(%s, 'club')", [table]).fetchone() == (
            "needs_consent_club",
        )
        conn.commit()
        conn.execute(insert, [member])
        conn.commit()
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(insert, [stranger])
        assert refused.value.sqlstate == "SY083"
        message = str(refused.value)
        assert "1 customer(s) have no granted consent for policy club" in message
        assert str(stranger) not in message and str(stranger).upper() not in message
        conn.rollback()
    # tables that hold no customer reference of the shop's, or are the engine's own
    for table in ('crm."CustomerAddress"', "gdpr.consent", "sync.inbox"):
        with pytest.raises(psycopg.Error) as not_linked:
            conn.execute("SELECT gdpr.require_consent(%s, 'club')", [table])
        assert not_linked.value.sqlstate == "SY082"
        conn.rollback()
    with pytest.raises(psycopg.Error) as unknown:
        conn.execute("SELECT gdpr.require_consent('crm.favourite', 'nope')")
    assert unknown.value.sqlstate == "SY080"
    conn.rollback()
    # a retired policy guards nothing
    gdpr.retire_policy(conn, "club", actor="dpo:test")
    conn.execute(guarded["crm.favourite"].replace("SKU-1", "SKU-2"), [stranger])
    conn.commit()


def test_policy_categories_name_the_mapped_schemas_tables_and_columns(
    conn: psycopg.Connection[Any],
) -> None:
    bind_boutique(conn, BOUTIQUE, classified=True)
    gdpr.create_policy(
        conn,
        "boutique_club",
        name="Club",
        description="Member offers",
        legal_basis="consent",
        retention="1 year",
        retention_from="created",
        categories=["crm.customer.newsletter", "sales.Review", "sales.orders", "crm.favourite"],
        membership="consent",
        actor="dpo:test",
    )
    assert gdpr.policy(conn, "boutique_club").categories == [
        "crm.customer.newsletter",
        "crm.favourite",
        'sales."Review"',
        "sales.orders",
    ]
    for category in ("crm.customer.no_such_column", "crm.no_such_table", "shop.no_such_table"):
        with pytest.raises(errors.GdprRefusal) as refused:
            gdpr.create_policy(
                conn,
                "bad",
                name="x",
                description="x",
                legal_basis="consent",
                retention=None,
                retention_from="created",
                categories=[category],
                actor="dpo:test",
            )
        assert refused.value.sqlstate == "SY082"


def test_a_boolean_opt_in_column_of_any_shop_records_local_changes_once_it_may_have_triggers(
    conn: psycopg.Connection[Any],
) -> None:
    bind_boutique(conn, BOUTIQUE)
    conn.execute("ALTER TABLE crm.customer ADD COLUMN opt_in boolean")
    conn.commit()
    document = copy.deepcopy(BOUTIQUE.mapping)
    del document["customer"]["columns"]["newsletter"]
    document["customer"]["columns"]["opt_in"] = {"field": "newsletter_opt_in", "null_as": False}
    # without the triggers local changes would not be decisions: refused until granted
    # (tests/integration/test_mapping_check_trigger.py)
    with pytest.raises(psycopg.Error) as refused:
        _install(conn, document)
    assert "GRANT TRIGGER ON TABLE crm.customer TO syncctl_owner;" in str(refused.value)
    conn.rollback()
    conn.execute("GRANT TRIGGER ON crm.customer TO syncctl_owner")
    conn.commit()
    _install(conn, document)
    # the reference shop's table is no longer the mapped one: its triggers went
    assert conn.execute(
        "SELECT tgrelid::regclass::text, count(*) FROM pg_trigger"
        " WHERE tgname LIKE 'customer_consent_%' GROUP BY 1"
    ).fetchall() == [("crm.customer", 2)]

    gdpr.activate_policy(conn, "newsletter", actor="dpo:test")
    stage(conn, [upserted("TX00000001", 1, newsletter_opt_in=True)])
    conn.commit()
    key = _key(conn, BOUTIQUE, "TX00000001")
    conn.execute("UPDATE crm.customer SET opt_in = false WHERE customer_uuid = %s", [key])
    conn.commit()
    stage(conn, [upserted("TX00000001", 2, newsletter_opt_in=False)])
    conn.commit()
    assert _history(conn, key, "newsletter") == [
        (True, "tritonx"),
        (False, "back_office"),
        (False, "tritonx"),
    ]
