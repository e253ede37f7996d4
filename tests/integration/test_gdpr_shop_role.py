"""The shop's side of GDPR, as the webshop role: its own writes to shop tables still work while
the consent triggers write gdpr tables on its behalf; it records consent, reads consent,
exports a subject and files an erasure request through the API functions, and reads or
changes nothing in gdpr directly."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.feed import stage, upserted
from tests.roles import refused

SHOP = "syncctl_webshop"
SUBSCRIBE = (
    "INSERT INTO shop.newsletter_subscription (customer_id, list_name) VALUES (%s, 'weekly')"
)


@pytest.fixture
def newsletter_active(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute("SELECT gdpr.activate_policy('newsletter', 'dpo')")
    conn.commit()
    return conn


def test_shop_records_consent_through_the_api_and_the_triggers_keep_history(
    newsletter_active: psycopg.Connection[Any], as_role: Any
) -> None:
    shop = as_role(SHOP)
    row = shop.execute(
        "INSERT INTO shop.customer (email) VALUES ('a@example.nl') RETURNING id"
    ).fetchone()
    assert row is not None
    cid = row[0]
    consent = "SELECT gdpr.record_consent(%s, 'newsletter', %s, 'webshop', 'shop:web', now())"
    shop.execute(consent, [cid, True])
    assert shop.execute("SELECT gdpr.has_consent(%s, 'newsletter')", [cid]).fetchone() == (True,)
    shop.execute(SUBSCRIBE, [cid])
    shop.execute(consent, [cid, False])
    assert shop.execute("SELECT gdpr.has_consent(%s, 'newsletter')", [cid]).fetchone() == (False,)
    history = newsletter_active.execute(
        "SELECT granted, source FROM gdpr.consent WHERE customer_key = %s::text ORDER BY id", [cid]
    ).fetchall()
    assert history == [(True, "webshop"), (False, "webshop")]
    # tritonX's opt-in is tritonX's: the shop changes it only through consent
    assert refused(shop, "UPDATE shop.customer SET newsletter_opt_in = true WHERE id = %s", cid)


def test_shop_is_refused_a_subscription_without_consent(
    newsletter_active: psycopg.Connection[Any], as_role: Any
) -> None:
    shop = as_role(SHOP)
    row = shop.execute(
        "INSERT INTO shop.customer (email) VALUES ('b@example.nl') RETURNING id"
    ).fetchone()
    assert row is not None
    with pytest.raises(psycopg.Error) as refusal:
        shop.execute(SUBSCRIBE, [row[0]])
    assert refusal.value.sqlstate == "SY083"
    assert "b@example.nl" not in str(refusal.value)
    shop.execute(
        "SELECT gdpr.record_consent(%s, 'newsletter', true, 'webshop', 'webshop')", [row[0]]
    )
    shop.execute(SUBSCRIBE, [row[0]])


def test_shop_exports_and_requests_erasure_through_the_api_only(
    newsletter_active: psycopg.Connection[Any], as_role: Any
) -> None:
    stage(newsletter_active, [upserted("TX00000042", 1, email="c@example.nl")])
    newsletter_active.commit()
    shop = as_role(SHOP)
    cid = shop.execute("SELECT sync.resolve_customer('TX00000042')").fetchone()[0]
    sources = {r[0] for r in shop.execute("SELECT source FROM gdpr.subject_data(%s)", [cid])}
    assert {"shop.customer", "sync.audit", "gdpr.policy"} <= sources
    request = shop.execute("SELECT gdpr.receive_erasure(%s, 'backoffice:op-17')", [cid]).fetchone()
    assert request is not None
    shop.execute("SELECT gdpr.verify_erasure(%s, 'backoffice:op-17')", [request[0]])
    shop.execute("SELECT gdpr.schedule_erasure(%s, 'backoffice:op-17', '14 days')", [request[0]])
    shop.execute("SELECT gdpr.cancel_erasure(%s, 'backoffice:op-17')", [request[0]])
    state = newsletter_active.execute(
        "SELECT state, digests FROM gdpr.erasure_request WHERE id = %s", [request[0]]
    ).fetchone()
    assert state == ("cancelled", None)
    for statement in (
        "SELECT * FROM gdpr.consent",
        "SELECT * FROM gdpr.erasure_request",
        "INSERT INTO gdpr.consent (customer_key, policy_id, granted, source, text_version, actor)"
        " VALUES (1, 1, true, 'webshop', 1, 'x')",
        "SELECT gdpr.execute_erasure(1, 'x')",
        "SELECT gdpr.purge_batch(now(), 0, 10, 'x')",
        "SELECT gdpr.activate_policy('club', 'x')",
        "SELECT * FROM gdpr.residue_search(ARRAY['x'])",
    ):
        assert refused(shop, statement), statement


def test_the_shop_cannot_name_its_own_consent_change_another_source(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    """Which engine job changes the customer table is the owner's to say: a session setting the
    shop may set itself makes no change of its go unrecorded, nor recorded as tritonX's."""
    conn.execute("SELECT gdpr.activate_policy('newsletter', 'dpo')")
    cid = conn.execute(
        "INSERT INTO shop.customer (email) VALUES ('shop@example.nl') RETURNING id"
    ).fetchone()[0]  # type: ignore[index]
    conn.commit()
    shop = as_role("syncctl_webshop")
    for forged in ("tritonx", "retention"):
        shop.execute("SELECT set_config('gdpr.consent_source', %s, false)", [forged])
        shop.execute(
            "SELECT gdpr.rectify(%s, jsonb_build_object('newsletter_opt_in', %s::boolean), 'bo:1')",
            [cid, forged == "tritonx"],
        )
    recorded = conn.execute(
        "SELECT granted, source FROM gdpr.consent WHERE customer_key = %s::text ORDER BY id",
        [cid],
    ).fetchall()
    # recorded as what they are: rectifications (a forged setting changes nothing)
    assert recorded == [(True, "rectification"), (False, "rectification")]
