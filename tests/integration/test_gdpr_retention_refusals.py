"""Retention refuses what it cannot do on a mapped schema, saying what to add, and pages by any
key type: a policy needing a fact the mapping's [gdpr] table does not declare is refused when it
is activated and when retention runs (SY089, naming the mapping key); the bigint forms refuse a
uuid key, and a key to page by that is not of the key's type is refused without being echoed
(SY020); a text key is paged in its own (collation) order, every customer examined once."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from syncctl import gdpr
from syncctl.errors import GdprRefusal
from tests.shops import Boutique
from tests.shops.binding import bind_boutique

START = datetime(2026, 1, 1, tzinfo=UTC)
SHOP = Boutique()


def _install(conn: psycopg.Connection[Any], document: dict[str, Any]) -> None:
    conn.execute("SET ROLE syncctl_owner")
    conn.execute("SELECT sync.install_mapping(%s::jsonb, 'test')", [json.dumps(document)])
    conn.execute("RESET ROLE")
    conn.commit()


def _without(*keys: str) -> dict[str, Any]:
    """The boutique's mapping without some [gdpr] declarations."""
    document = copy.deepcopy(SHOP.mapping)
    for key in keys:
        del document["gdpr"][key]
    if not document["gdpr"]:
        del document["gdpr"]
    return document


def _create(
    conn: psycopg.Connection[Any],
    code: str,
    categories: tuple[str, ...] = ("crm.favourite",),
    **definition: Any,
) -> None:
    """A draft policy: one year from the created time unless `definition` says otherwise."""
    gdpr.create_policy(
        conn,
        code,
        name=code,
        description=code,
        legal_basis="contract",
        categories=list(categories),
        actor="dpo:test",
        **{"retention": "1 year", "retention_from": "created", **definition},
    )


@pytest.mark.parametrize(
    ("definition", "missing"),
    [
        ({"retention_from": "created"}, "gdpr.created_column"),
        ({"retention_from": "last_activity"}, "gdpr.created_column"),
        ({"retention_from": "last_order"}, "gdpr.created_column"),
        (
            {"membership": "customer_group", "customer_group": "employee", "retention": None},
            "gdpr.group_column",
        ),
    ],
)
def test_activating_a_policy_the_mapping_does_not_serve_is_refused(
    conn: psycopg.Connection[Any], definition: dict[str, Any], missing: str
) -> None:
    bind_boutique(conn, SHOP, classified=True)
    _install(conn, _without("created_column", "last_activity_column", "group_column", "last_order"))
    _create(conn, "wishes", **definition)
    with pytest.raises(GdprRefusal) as refused:
        gdpr.activate_policy(conn, "wishes", actor="dpo:test", now=START)
    assert refused.value.sqlstate == "SY089"
    assert "policy wishes " in str(refused.value) and missing in str(refused.value)
    assert gdpr.policy(conn, "wishes").state == "draft"
    # a policy with no period and no group needs no fact
    _create(conn, "forever", retention=None)
    assert gdpr.activate_policy(conn, "forever", actor="dpo:test", now=START).state == "active"


def test_each_retention_anchor_names_its_own_key(conn: psycopg.Connection[Any]) -> None:
    bind_boutique(conn, SHOP, classified=True)
    _install(conn, _without("last_activity_column", "last_order"))
    for code, retention_from, missing in (
        ("active", "last_activity", "gdpr.last_activity_column"),
        ("ordered", "last_order", "gdpr.last_order"),
    ):
        _create(conn, code, retention_from=retention_from)
        with pytest.raises(GdprRefusal, match=re.escape(missing)) as refused:
            gdpr.activate_policy(conn, code, actor="dpo:test", now=START)
        assert refused.value.sqlstate == "SY089"


def test_retention_refuses_to_run_when_the_mapping_lost_a_declaration(
    conn: psycopg.Connection[Any],
) -> None:
    bind_boutique(conn, SHOP, classified=True)
    key = SHOP.add_customer(conn, {"customer_number": "TX00000001"})
    SHOP.add_favourite(conn, key, "SKU-1")
    conn.commit()
    _create(conn, "ordered", retention_from="last_order")
    gdpr.activate_policy(conn, "ordered", actor="dpo:test", now=START)
    _install(conn, _without("last_order"))

    later = START + timedelta(days=3000)
    for run in (
        lambda: gdpr.purge(conn, now=later),
        lambda: gdpr.purge_plan(conn, now=later),
        lambda: gdpr.expiry_warnings(conn, now=later, within_days=30),
    ):
        with pytest.raises(GdprRefusal, match=r"gdpr\.last_order") as refused:
            run()
        assert refused.value.sqlstate == "SY089"
    assert conn.execute("SELECT count(*) FROM crm.favourite").fetchone() == (1,)


def test_the_bigint_forms_and_a_malformed_key_are_refused_without_echo(
    conn: psycopg.Connection[Any],
) -> None:
    bind_boutique(conn, SHOP, classified=True)
    for query in (
        "SELECT gdpr.purge_batch(now(), 0)",
        "SELECT * FROM gdpr.retention_plan(now(), 0::bigint)",
        "SELECT * FROM gdpr.retention_status(now(), 0::bigint)",
    ):
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(query)
        conn.rollback()
        assert refused.value.sqlstate == "SY020"
        assert "uuid" in str(refused.value)
    secret = "anna.berg@example.nl"
    for query in (
        "SELECT gdpr.purge_batch(now(), %s::text)",
        "SELECT * FROM gdpr.retention_status(now(), %s::text)",
    ):
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(query, [secret])
        conn.rollback()
        assert refused.value.sqlstate == "SY020"
        diagnostic = refused.value.diag
        assert secret not in f"{diagnostic.message_primary} {diagnostic.message_detail}"


# a shop whose key is text: its order is the collation's, not a number's
TEXT_KEY_SHOP = """
CREATE SCHEMA tk;
CREATE TABLE tk.member (
    code      text PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid()::text,
    tx_ref    text UNIQUE,
    email     text,
    joined_at timestamptz NOT NULL DEFAULT now()
);
GRANT USAGE ON SCHEMA tk TO syncctl_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON tk.member TO syncctl_owner;
"""
CODES = ["10", "9", "a", "B", "zz", "100", "Ωmega"]


def test_a_text_key_is_paged_in_its_own_order_and_each_customer_examined_once(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(TEXT_KEY_SHOP)
    every = [
        "first_name", "infix", "last_name", "gender", "birth_date", "phone", "mobile", "street",
        "house_number", "house_number_addition", "postcode", "city", "country_code",
        "loyalty_card", "home_store", "customer_group", "newsletter_opt_in", "blocked",
        "updated_at",
    ]  # fmt: skip
    document = {
        "format": 1,
        "customer": {
            "schema": "tk",
            "table": "member",
            "key": "code",
            "key_generate": "default",
            "number": {"column": "tx_ref"},
            "version": "link",
            "columns": {"email": "email"},
        },
        "not_stored": {"fields": every},
        "gdpr": {"created_column": "joined_at"},
    }
    conn.execute("SET ROLE syncctl_owner")
    for column, strategy in (
        ("code", "not_personal"),
        ("tx_ref", "not_personal"),
        ("email", "null"),
        ("joined_at", "not_personal"),
    ):
        conn.execute(
            "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
            " VALUES ('tk', 'member', %s, %s)",
            [column, strategy],
        )
    conn.execute("RESET ROLE")
    _install(conn, document)
    for n, code in enumerate(CODES):
        conn.execute(
            "INSERT INTO tk.member (code, tx_ref, email, joined_at) VALUES (%s, %s, %s, %s)",
            [code, f"TX{n + 1:08d}", f"m{n}@example.nl", START],
        )
    conn.commit()
    _create(conn, "members", ("tk.member",))
    gdpr.activate_policy(conn, "members", actor="dpo:test", now=START)

    ordered = [c for (c,) in conn.execute("SELECT code FROM tk.member ORDER BY code")]
    expired = START + timedelta(days=400)
    # a text key may be an e-mail address: the operator's lists name these customers by number
    warned = conn.execute(
        "SELECT customer_key, customer_number FROM gdpr.retention_warnings(%s, '1000 days')",
        [START],
    ).fetchall()
    assert len(warned) == len(CODES) and all(k is None and n for k, n in warned)
    assert conn.execute("SELECT sync.shown_key('a')").fetchone() == (None,)
    conn.execute("SAVEPOINT listed")
    conn.execute("SELECT gdpr.receive_erasure('a'::text, 'dpo:test')")
    assert conn.execute(
        "SELECT customer_key, customer_number FROM gdpr.erasure_overview"
    ).fetchone() == (None, "TX00000003")
    conn.execute("ROLLBACK TO SAVEPOINT listed")
    after: str | None = None
    last_keys: list[str] = []
    while True:
        row = conn.execute(
            "SELECT gdpr.purge_batch(%s, %s::text, 2, 'retention')", [expired, after]
        ).fetchone()
        conn.commit()
        assert row is not None
        if row[0]["last_key"] is None:
            break
        after = row[0]["last_key"]
        # the caller gets a position, never the key; the position stands for the key
        assert after.startswith("position:"), after
        held = conn.execute(
            "SELECT last_key FROM gdpr.purge_position WHERE id = %s",
            [int(after.removeprefix("position:"))],
        ).fetchone()
        assert held is not None
        last_keys.append(held[0])
    # every second key of the table's own order, then the last one
    assert last_keys == ordered[1::2] + ([ordered[-1]] if len(ordered) % 2 else [])
    anonymised = conn.execute(
        "SELECT customer_number FROM sync.audit WHERE action = 'customer.anonymized'"
        " AND actor = 'retention' ORDER BY 1"
    ).fetchall()
    assert [n for (n,) in anonymised] == [f"TX{n + 1:08d}" for n in range(len(CODES))]
    assert conn.execute("SELECT count(email) FROM tk.member").fetchone() == (0,)
    assert gdpr.purge(conn, now=expired).customers == 0
    # a text key may be anything, an e-mail address too: the audit and the reports name these
    # customers by their number only
    shown = conn.execute(
        "SELECT count(*) FILTER (WHERE customer_key IS NOT NULL) FROM sync.audit"
    ).fetchone()
    assert shown == (0,)
    assert conn.execute(
        "SELECT count(*) FROM report.anonymisations WHERE customer_key IS NOT NULL"
    ).fetchone() == (0,)


def test_a_table_the_customer_points_to_is_released_only_with_the_whole_customer(
    conn: psycopg.Connection[Any],
) -> None:
    """An address may be a household's: retention never releases it by itself (it would have
    done nothing, silently); with the whole customer, the anonymisation scrubs or detaches it."""
    bind_boutique(conn, SHOP, classified=True)
    _create(conn, "addresses", ("crm.CustomerAddress", "crm.favourite"))
    with pytest.raises(GdprRefusal) as refused:
        gdpr.activate_policy(conn, "addresses", actor="dpo:test", now=START)
    assert refused.value.sqlstate == "SY089"
    assert "policy addresses covers crm.CustomerAddress, a table the customer row points to" in (
        str(refused.value)
    )
    assert "add crm.customer to the policy's categories" in str(refused.value)
    _create(conn, "accounts", ("crm.customer", "crm.CustomerAddress"))
    assert gdpr.activate_policy(conn, "accounts", actor="dpo:test", now=START).state == "active"
