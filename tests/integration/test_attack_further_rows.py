"""Attacks on the rows one foreign key further from a customer-linked table (an order's gift
note via the order, on the reference shop): the engine scrubs them as the owner role on an
anonymisation, an erasure and a tritonX delete (sync._further_links). Code the shop
application's login owns that those writes run (a trigger, a CHECK constraint) is named by
coverage as it is on the linked tables; a shop trigger refusing the scrub with the person's
data in its error leaves the value out of the dead letter, the erasure request and the audit,
and the rest of the page applies; so does a further table the owner may not update."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from syncctl import engine
from tests.feed import event, stage, upserted
from tests.integration.test_attack_shop_functions import (  # noqa: F401 (a fixture)
    APP,
    app_functions,
)

SECRET = "gift.for.anna@example.nl"


@pytest.fixture
def further(
    app_functions: psycopg.Connection[Any],  # noqa: F811
) -> psycopg.Connection[Any]:
    """public.gift_note refers to shop.orders (one foreign key further), its recipient
    classified to be scrubbed, the owner role granted what the mapping check asks; the shop
    application's login's functions (app_functions) and a trigger function of its."""
    conn = app_functions
    conn.execute(
        "CREATE TABLE public.gift_note (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " order_id bigint NOT NULL REFERENCES shop.orders (id), recipient text);"
        "CREATE INDEX ON public.gift_note (order_id);"
        "GRANT SELECT, UPDATE ON public.gift_note TO syncctl_owner;"
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy) VALUES"
        " ('public', 'gift_note', 'id', 'not_personal'),"
        " ('public', 'gift_note', 'order_id', 'not_personal'),"
        " ('public', 'gift_note', 'recipient', 'null')"
    )
    conn.execute(
        "CREATE FUNCTION app.noted() RETURNS trigger LANGUAGE plpgsql AS"
        f" $$ BEGIN RETURN NEW; END $$; ALTER FUNCTION app.noted() OWNER TO {APP}"
    )
    stage(conn, [upserted(f"TX0000000{i}", 1) for i in (1, 2, 3)])
    for i in (1, 2, 3):
        conn.execute(
            "WITH o AS (INSERT INTO shop.orders (customer_id, order_number)"
            " SELECT id, %s FROM shop.customer WHERE customer_number = %s RETURNING id)"
            " INSERT INTO public.gift_note (order_id, recipient) SELECT o.id, %s FROM o",
            [f"O-{i}", f"TX0000000{i}", SECRET if i == 2 else f"someone{i}@example.nl"],
        )
    conn.commit()
    return conn


def _listed(conn: psycopg.Connection[Any], kind: str) -> list[tuple[str, str]]:
    return [(d.table, d.defect) for d in engine.coverage_defects(conn) if d.kind == kind]


def _recipients(conn: psycopg.Connection[Any]) -> dict[str, str | None]:
    rows = conn.execute(
        "SELECT o.order_number, g.recipient FROM public.gift_note AS g"
        " JOIN shop.orders AS o ON o.id = g.order_id"
    ).fetchall()
    return dict(rows)


@pytest.mark.parametrize(
    ("kind", "statement"),
    [
        (
            "trigger",
            "CREATE TRIGGER noted BEFORE UPDATE ON public.gift_note"
            " FOR EACH ROW EXECUTE FUNCTION app.noted()",
        ),
        (
            "function",
            "ALTER TABLE public.gift_note ADD CONSTRAINT recipient_ok CHECK (app.ok(recipient))",
        ),
    ],
)
def test_code_of_the_shop_login_on_a_further_table_the_engine_scrubs_is_listed(
    further: psycopg.Connection[Any], kind: str, statement: str
) -> None:
    conn = further
    assert _listed(conn, kind) == []
    conn.execute(statement)
    conn.commit()
    listed = _listed(conn, kind)
    assert [t for t, _ in listed] == ["public.gift_note"], listed
    assert f"owned by role {APP}" in listed[0][1] and "owner role's rights" in listed[0][1]


def test_the_further_scrub_runs_the_shop_logins_trigger_as_the_owner_role(
    further: psycopg.Connection[Any], as_role: Any
) -> None:
    """Why it is listed: the login replaces its trigger function with a payload, and the feed's
    anonymisation runs it with the owner role's rights."""
    conn = further
    conn.execute("CREATE TABLE public.seen (acting_as text); GRANT INSERT ON public.seen TO PUBLIC")
    conn.execute(
        "CREATE TRIGGER noted BEFORE UPDATE ON public.gift_note"
        " FOR EACH ROW EXECUTE FUNCTION app.noted()"
    )
    conn.commit()
    as_role(APP).execute(
        "CREATE OR REPLACE FUNCTION app.noted() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO public.seen VALUES (current_user); RETURN NEW; END $$"
    )
    outcome = stage(conn, [event("customer.anonymized", "TX00000002", 2, reason_code="AVG")])
    conn.commit()
    assert outcome.states == {"applied": 1}
    assert conn.execute("SELECT DISTINCT acting_as FROM public.seen").fetchall() == [
        ("syncctl_owner",)
    ]
    assert _listed(conn, "trigger")


REFUSE = (
    "CREATE FUNCTION public.refuse_gift() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN IF OLD.recipient = '{secret}' THEN"
    " RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'kept for ' || OLD.recipient,"
    " DETAIL = OLD.recipient, TABLE = OLD.recipient; END IF; RETURN NEW; END $f$;"
    "CREATE TRIGGER refuse_gift BEFORE UPDATE ON public.gift_note"
    " FOR EACH ROW EXECUTE FUNCTION public.refuse_gift()"
).replace("{secret}", SECRET)


def test_a_shop_trigger_refusing_the_further_scrub_is_a_dead_letter_without_the_value(
    further: psycopg.Connection[Any],
) -> None:
    conn = further
    conn.execute(REFUSE)
    conn.commit()
    outcome = stage(
        conn,
        [
            event("customer.anonymized", "TX00000001", 2, reason_code="AVG"),
            event("customer.anonymized", "TX00000002", 2, reason_code="AVG"),
            event("customer.deleted", "TX00000003", 2),
        ],
    )
    conn.commit()
    assert outcome.states == {"applied": 2, "dead_letter": 1}
    reasons = conn.execute(
        "SELECT i.customer_number, d.reason FROM sync.dead_letter AS d"
        " JOIN sync.inbox AS i ON i.id = d.inbox_id"
    ).fetchall()
    assert [r[0] for r in reasons] == ["TX00000002"]
    # the trigger put the value into its TABLE field too: the reason holds the SQLSTATE
    assert SECRET not in reasons[0][1] and "23514" in reasons[0][1], reasons
    assert _recipients(conn) == {"O-1": None, "O-2": SECRET, "O-3": None}
    audit = conn.execute("SELECT coalesce(string_agg(reason, '|'), '') FROM sync.audit").fetchone()
    assert audit is not None and SECRET not in audit[0]


def test_a_shop_trigger_refusing_the_further_scrub_fails_the_erasure_request_clearly(
    further: psycopg.Connection[Any], as_role: Any
) -> None:
    conn = further
    key = conn.execute(
        "SELECT id FROM shop.customer WHERE customer_number = 'TX00000002'"
    ).fetchone()
    assert key is not None
    webshop = as_role("syncctl_webshop")
    request = webshop.execute(
        "SELECT gdpr.receive_erasure(%s::text, 'backoffice:test', now())", [str(key[0])]
    ).fetchone()
    assert request is not None
    webshop.execute("SELECT gdpr.verify_erasure(%s, 'backoffice:test', now())", request)
    webshop.execute(
        "SELECT gdpr.schedule_erasure(%s, 'backoffice:test', interval '0', now())", request
    )
    conn.execute(REFUSE)
    conn.commit()
    done = (
        as_role("syncctl_controller")
        .execute("SELECT gdpr.execute_due_erasures('gdpr-daily', now())")
        .fetchone()
    )
    assert done is not None and SECRET not in str(done[0])
    row = conn.execute(
        "SELECT state, last_error FROM gdpr.erasure_request WHERE id = %s", request
    ).fetchone()
    assert row is not None and row[0] == "failed", row
    assert row[1] and SECRET not in row[1], row
    audit = conn.execute("SELECT coalesce(string_agg(reason, '|'), '') FROM sync.audit").fetchone()
    assert audit is not None and SECRET not in audit[0]


def test_a_further_table_the_owner_may_not_update_is_a_dead_letter_naming_it(
    further: psycopg.Connection[Any],
) -> None:
    conn = further
    conn.execute("REVOKE UPDATE ON public.gift_note FROM syncctl_owner")
    conn.commit()
    outcome = stage(
        conn,
        [
            upserted("TX00000004", 1),
            event("customer.anonymized", "TX00000002", 2, reason_code="AVG"),
            upserted("TX00000005", 1),
        ],
    )
    conn.commit()
    assert outcome.states == {"applied": 2, "dead_letter": 1}
    (reason,) = conn.execute("SELECT reason FROM sync.dead_letter").fetchone() or ("",)
    assert "gift_note" in reason and SECRET not in reason, reason
    assert _recipients(conn)["O-2"] == SECRET


def test_a_further_table_without_an_index_on_its_foreign_key_is_listed(
    further: psycopg.Connection[Any],
) -> None:
    """Each anonymisation or erasure of one customer reaches the rows through the foreign key:
    without an index leading with it, every one reads the whole table. Coverage lists it as
    it lists a linked table's, with the statement; the feed goes on either way."""
    conn = further
    assert _listed(conn, "unindexed") == []
    conn.execute("DROP INDEX public.gift_note_order_id_idx")
    conn.commit()
    listed = _listed(conn, "unindexed")
    assert [t for t, _ in listed] == ["public.gift_note"], listed
    assert "CREATE INDEX ON public.gift_note (order_id);" in listed[0][1]
    outcome = stage(conn, [event("customer.anonymized", "TX00000002", 2, reason_code="AVG")])
    conn.commit()
    assert outcome.states == {"applied": 1}
    assert _recipients(conn)["O-2"] is None


def test_a_policy_on_a_further_table_the_export_only_reads_is_listed(
    further: psycopg.Connection[Any], as_role: Any
) -> None:
    """The subject access export reads every table one foreign key further as the owner role,
    scrubbed or not (shop.order_line holds nothing to scrub): a row-level security policy there
    runs its function with the owner role's rights on every export."""
    conn = further
    conn.execute("CREATE TABLE public.seen (acting_as text); GRANT INSERT ON public.seen TO PUBLIC")
    conn.execute(
        "ALTER TABLE shop.order_line ENABLE ROW LEVEL SECURITY;"
        "ALTER TABLE shop.order_line FORCE ROW LEVEL SECURITY;"
        "CREATE POLICY order_line_ok ON shop.order_line USING (app.ok(sku))"
    )
    conn.execute(
        "INSERT INTO shop.order_line (order_id, sku, quantity, unit_price)"
        " SELECT id, 'SKU-1', 1, 1 FROM shop.orders WHERE order_number = 'O-1'"
    )
    conn.commit()
    as_role(APP).execute(
        "CREATE OR REPLACE FUNCTION app.ok(text) RETURNS boolean LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO public.seen VALUES (current_user); RETURN true; END $$"
    )
    key = conn.execute("SELECT id FROM shop.customer WHERE customer_number = 'TX00000001'")
    row = key.fetchone()
    assert row is not None
    as_role("syncctl_webshop").execute(
        "SELECT * FROM gdpr.subject_data(%s::text, now())", [str(row[0])]
    ).fetchall()
    assert ("syncctl_owner",) in conn.execute("SELECT DISTINCT acting_as FROM public.seen")
    listed = _listed(conn, "function")
    assert [t for t, _ in listed] == ["shop.order_line"], listed
    assert "policy order_line_ok calls app.ok(text)" in listed[0][1]
