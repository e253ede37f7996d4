"""Link report and repair: every anomaly counted, and the unambiguous ones fixed, audited,
without personal data in the audit. On both test schemas: the local customers, their orders and
the links are written through the ShopSchema protocol."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from syncctl import links
from tests.feed import snapshot, stage, upserted
from tests.shops import Boutique, CustomerKey, ReferenceShop, ShopSchema
from tests.shops.binding import bind


def _local(conn: psycopg.Connection[Any], shop: ShopSchema, email: str) -> CustomerKey:
    """A customer only the shop knows (no tritonX number)."""
    return shop.add_customer(conn, snapshot("TX99999999", email=email), linked=False)


def _legacy_link(conn: psycopg.Connection[Any], shop: ShopSchema, old: str, survivor: str) -> int:
    """A shop row still linked to a number tritonX merged away (the shop linked it itself,
    before syncctl knew of the merge), with an order; the order's id."""
    key = shop.add_customer(conn, snapshot(old, email="old@x.nl"))
    order = shop.place_order(conn, key)
    conn.execute(
        "INSERT INTO sync.redirect (old_number, survivor_number) VALUES (%s, %s)", [old, survivor]
    )
    conn.commit()
    return order


def test_check_counts_every_anomaly(conn: psycopg.Connection[Any], shop: ShopSchema) -> None:
    stage(conn, [upserted("TX00000001", 1, email="a@x.nl")])
    for email in (" A@X.nl", "b@x.nl", "B@x.nl"):
        _local(conn, shop, email)
    conn.commit()
    _legacy_link(conn, shop, "TX00000002", "TX00000001")
    found = dict(links.anomalies(conn))
    assert found["several local customers with one email"] == 2
    assert found["linked to a merged-away number"] == 1
    assert found["local customer without a tritonX number"] == 3


def test_repair_moves_a_merged_away_link_into_its_local_survivor(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000001", 1)])
    order = _legacy_link(conn, shop, "TX00000002", "TX00000001")
    plan = links.repair_plan(conn)
    assert plan.merge == [("TX00000002", "TX00000001")]
    assert links.repair(conn, plan, "ops:7").changed == 1
    assert shop.number_of_order(conn, order) == "TX00000001"
    assert shop.key_of(conn, "TX00000002") is None
    assert dict(links.anomalies(conn))["linked to a merged-away number"] == 0
    audit = conn.execute(
        "SELECT actor, action, outcome, customer_number, related_number, reason, counts::text"
        " FROM sync.audit WHERE actor = 'ops:7'"
    ).fetchall()
    assert [a[:5] for a in audit] == [
        ("ops:7", "customer.relinked", "applied", "TX00000002", "TX00000001")
    ]
    assert "@" not in " ".join(str(v) for v in audit[0])
    assert links.repair_plan(conn).merge == [], "repair is not idempotent"


def test_repair_re_points_a_merged_away_link_when_the_survivor_is_not_local(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    order = _legacy_link(conn, shop, "TX00000003", "TX00000004")
    key = shop.key_of(conn, "TX00000003")
    assert dict(links.anomalies(conn))["linked to a merged-away number"] == 1
    plan = links.repair_plan(conn)
    assert [tuple(m) for m in plan.merge] == [("TX00000003", "TX00000004")]
    assert links.repair(conn, plan, "ops:7").changed == 1
    assert shop.number_of_order(conn, order) == "TX00000004"
    assert shop.key_of(conn, "TX00000004") == key, "the link moved, the key stayed"
    assert dict(links.anomalies(conn))["linked to a merged-away number"] == 0
    # tritonX's data for the survivor's number is asked for
    assert conn.execute("SELECT customer_number FROM sync.refresh_request").fetchall() == [
        ("TX00000004",)
    ]
    assert conn.execute(
        "SELECT sync.resolve_customer_key('TX00000003') = sync.resolve_customer_key('TX00000004')"
    ).fetchone() == (True,)


def test_repair_leaves_a_link_whose_survivor_was_erased_and_says_so(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    stage(conn, [upserted("TX00000005", 1)])
    conn.execute(
        "SELECT sync.anonymise_from_backoffice_key(sync.resolve_customer_key('TX00000005'),"
        " 'AVG', 'bo:1')"
    )
    conn.commit()
    order = _legacy_link(conn, shop, "TX00000006", "TX00000005")
    result = conn.execute("SELECT sync.repair_redirected_link('TX00000006', 'ops:7')").fetchone()
    conn.commit()
    assert result is not None and result[0]["outcome"] == "skipped"
    assert shop.number_of_order(conn, order) == "TX00000006"


def test_repair_adopts_an_unambiguous_local_customer_and_dry_run_plans_only(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    tritonx = upserted("TX00000007", 1, email="eva@x.nl", city="Delft", postcode="2611 AA")
    stage(conn, [tritonx])
    local = _local(conn, shop, "EVA@x.nl ")
    order = shop.place_order(conn, local)
    conn.commit()
    plan = links.repair_plan(conn)
    assert [(a.local_key, a.number) for a in plan.adopt] == [(str(local), "TX00000007")]
    assert shop.number_of_order(conn, order) is None, "planning changed something"
    outcome = links.repair(conn, plan, "ops:8")
    assert (outcome.changed, outcome.planned) == (1, 1)
    assert shop.number_of_order(conn, order) == "TX00000007"
    assert shop.key_of(conn, "TX00000007") == local, "linking replaced the shop's key"
    # the adopted customer holds what tritonX holds, its address too
    assert shop.read_row(conn, "TX00000007") == shop.expected_row(tritonx["customer"])
    assert links.repair_plan(conn).adopt == []


def _addresses(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The boutique's addresses: how many, and how many no customer points to."""
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT FROM crm.customer AS c"
        ' WHERE c.address_id = a.id)) FROM crm."CustomerAddress" AS a'
    ).fetchone()
    assert row is not None
    return {"addresses": row[0], "unused": row[1]}


def test_an_adopted_customer_takes_tritonx_address_and_a_shared_one_stays_on_the_boutique(
    conn: psycopg.Connection[Any],
) -> None:
    shop = Boutique()
    bind(conn, shop)
    tritonx = [
        upserted("TX00000008", 1, email="eva@x.nl", city="Delft", postcode="2611 AA"),
        upserted("TX00000009", 1, email="bas@x.nl", city="Breda", postcode="4811 AA"),
    ]
    stage(conn, tritonx)
    eva = _local(conn, shop, "EVA@x.nl")
    bas = _local(conn, shop, "Bas@x.nl")
    # bas shares his address with a household member the shop keeps (no tritonX number)
    household = _local(conn, shop, "home@x.nl")
    conn.execute(
        "UPDATE crm.customer SET address_id = (SELECT address_id FROM crm.customer"
        " WHERE customer_uuid = %s) WHERE customer_uuid = %s",
        [bas, household],
    )
    conn.execute(
        'DELETE FROM crm."CustomerAddress" a WHERE NOT EXISTS (SELECT FROM crm.customer c'
        " WHERE c.address_id = a.id)"
    )
    conn.commit()
    assert links.repair(conn, links.repair_plan(conn), "ops:9").changed == 2
    assert (shop.key_of(conn, "TX00000008"), shop.key_of(conn, "TX00000009")) == (eva, bas)
    for record in tritonx:
        number = record["customer_number"]
        assert shop.read_row(conn, number) == shop.expected_row(record["customer"])
    # the household keeps the shared address as the shop had it
    kept = conn.execute(
        'SELECT a.city, a.zip FROM crm.customer c JOIN crm."CustomerAddress" a'
        " ON a.id = c.address_id WHERE c.customer_uuid = %s",
        [household],
    ).fetchone()
    assert kept == ("Amsterdam", "1015 CJ")
    # eva's own address took tritonX's values, the one tritonX's row had went with it; bas took
    # that one instead of the shared address: none is left unused
    assert _addresses(conn) == {"addresses": 3, "unused": 0}


def test_adoption_takes_keys_in_any_text_form_and_moves_the_gdpr_rows_on_the_reference_shop(
    conn: psycopg.Connection[Any],
) -> None:
    """A key written '007' names customer 7: what the engine keeps under the customer's key (its
    consents, its erasure requests) moves with it, and no message echoes a key."""
    stage(conn, [upserted("TX00000007", 1, email="eva@x.nl")])
    linked = conn.execute("SELECT id FROM shop.customer WHERE customer_number = 'TX00000007'")
    linked_id = linked.fetchone()[0]  # type: ignore[index]
    local = _local(conn, ReferenceShop(), "eva@x.nl")
    conn.execute("SELECT gdpr.activate_policy('club', 'dpo')")
    conn.execute("SELECT gdpr.record_consent(%s::text, 'club', true)", [linked_id])
    conn.execute("SELECT gdpr.receive_erasure(%s::text, 'dpo')", [linked_id])
    conn.commit()
    conn.execute(
        "SELECT sync.adopt_local_customer_key(%s, %s, 'ops:8')",
        [f"00{local}", f"000{linked_id}"],
    )
    conn.commit()
    kept = conn.execute(
        "SELECT (SELECT array_agg(DISTINCT customer_key) FROM gdpr.consent),"
        " (SELECT array_agg(customer_key) FROM gdpr.erasure_request)"
    ).fetchone()
    assert kept == ([str(local)], [str(local)])
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("SELECT sync.adopt_local_customer_key('eva@x.nl', %s::text, 'ops:8')", [local])
    conn.rollback()
    assert refused.value.sqlstate == "SY050"
    assert "eva@x.nl" not in str(refused.value)
