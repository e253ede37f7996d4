"""A shop trigger that raises with the customer's e-mail: whatever way it puts the value into
its error (the message, a SQLSTATE of class SY, the TABLE, SCHEMA or CONSTRAINT field of its
RAISE), the value reaches no dead letter's reason, no erasure request's error and no audit row.
PostgreSQL hands those fields on as the trigger set them; only the engine's own refusals (raised
by its own functions) may be repeated as they are."""

from __future__ import annotations

from typing import Any, LiteralString

import psycopg
import pytest
from psycopg import sql

from tests.feed import snapshot, stage, upserted
from tests.integration.test_feed_isolation import server_log
from tests.shops import ShopSchema

VICTIM = "anna.victim@example.nl"
ADOPTED = "eva.adopt@example.nl"

RAISES: dict[str, LiteralString] = {
    "message": "RAISE EXCEPTION 'customer % is blocked', {value}",
    "sy-class": "RAISE EXCEPTION USING ERRCODE = 'SY500', MESSAGE = 'blocked: ' || {value}",
    "engine-code": "RAISE EXCEPTION USING ERRCODE = 'SY001', MESSAGE = {value}",
    "table-field": (
        "RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'no', TABLE = {value}"
    ),
    "schema-field": (
        "RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = 'no',"
        " SCHEMA = {value}, TABLE = 'customer'"
    ),
    "constraint-field": (
        "RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = 'no', CONSTRAINT = {value}"
    ),
}


def _trigger(
    conn: psycopg.Connection[Any], shop: ShopSchema, raise_: LiteralString, row: LiteralString
) -> None:
    """A trigger of the shop's on the e-mail's table raising `raise_` with {value} the row's
    e-mail (row: NEW or OLD), for the victim only."""
    table, column = shop.column_of("email")
    value = sql.SQL(row + ".") + column
    conn.execute(
        sql.SQL(
            "CREATE FUNCTION public.refuse_victim() RETURNS trigger LANGUAGE plpgsql AS $f$"
            " BEGIN IF {value} = {victim} THEN " + raise_ + "; END IF;"
            " RETURN NEW; END $f$;"
            "CREATE TRIGGER refuse_victim BEFORE INSERT OR UPDATE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION public.refuse_victim()"
        ).format(value=value, victim=sql.Literal(VICTIM), table=table)
    )
    conn.commit()


@pytest.mark.parametrize("form", list(RAISES))
def test_a_shop_trigger_raising_with_the_email_leaves_it_out_of_the_dead_letter(
    conn: psycopg.Connection[Any], shop: ShopSchema, form: str
) -> None:
    _trigger(conn, shop, RAISES[form], "NEW")
    outcome = stage(
        conn,
        [
            upserted("TX00000001", 1),
            upserted("TX00000002", 1, email=VICTIM),
            upserted("TX00000003", 1),
        ],
    )
    conn.commit()
    assert outcome.states == {"applied": 2, "dead_letter": 1}
    reasons = conn.execute("SELECT reason FROM sync.dead_letter").fetchall()
    assert reasons and not any(VICTIM in r[0] for r in reasons), reasons
    # retrying it (the trigger still refuses) keeps it out too
    inbox_id = conn.execute("SELECT inbox_id FROM sync.dead_letter").fetchone()
    assert inbox_id is not None
    assert conn.execute("SELECT sync.retry_dead_letter(%s)", inbox_id).fetchone() == (
        "dead_letter",
    )
    reason = conn.execute("SELECT reason FROM sync.dead_letter").fetchone()
    assert reason is not None and VICTIM not in reason[0]


@pytest.mark.parametrize("form", list(RAISES))
def test_a_shop_trigger_refusing_an_erasure_leaves_the_email_out_of_request_and_audit(
    conn: psycopg.Connection[Any],
    as_role: Any,
    shop: ShopSchema,
    form: str,
) -> None:
    stage(conn, [upserted("TX00000002", 1, email=VICTIM)])
    key = shop.key_of(conn, "TX00000002")
    # the back office receives, verifies and schedules the request; it is due at once
    webshop = as_role("syncctl_webshop")
    request = webshop.execute(
        "SELECT gdpr.receive_erasure(%s::text, 'backoffice:test', now())", [str(key)]
    ).fetchone()
    assert request is not None
    webshop.execute("SELECT gdpr.verify_erasure(%s, 'backoffice:test', now())", request)
    webshop.execute(
        "SELECT gdpr.schedule_erasure(%s, 'backoffice:test', interval '0', now())", request
    )
    conn.commit()
    _trigger(conn, shop, RAISES[form], "OLD")
    # the daily job, as the controller runs it
    done = (
        as_role("syncctl_controller")
        .execute("SELECT gdpr.execute_due_erasures('gdpr-daily', now())")
        .fetchone()
    )
    assert done is not None and VICTIM not in str(done[0])
    row = conn.execute(
        "SELECT state, last_error FROM gdpr.erasure_request WHERE id = %s", request
    ).fetchone()
    assert row is not None and row[0] == "failed"
    assert row[1] and VICTIM not in row[1]
    audit = conn.execute(
        "SELECT coalesce(string_agg(reason, ' | '), '') FROM sync.audit"
    ).fetchone()
    assert audit is not None and VICTIM not in audit[0]


def _no_victim(error: psycopg.Error, value: str = VICTIM) -> None:
    """Nothing of the error the caller (and the server log) sees holds the victim's e-mail."""
    d = error.diag
    for part in (d.message_primary, d.message_detail, d.message_hint, d.context, d.table_name,
                 d.schema_name, d.constraint_name, d.column_name, d.datatype_name):  # fmt: skip
        assert value not in (part or ""), (part, d.sqlstate)


@pytest.mark.parametrize("form", list(RAISES))
def test_the_shop_api_passes_on_no_value_a_shop_trigger_raises_with(
    conn: psycopg.Connection[Any], as_role: Any, shop: ShopSchema, form: str
) -> None:
    """rectify, the back office's anonymisation and a login's adoption write the customer row;
    a shop trigger refusing that write with the person's e-mail in its error is passed on by
    SQLSTATE and names, the value left out."""
    stage(conn, [upserted("TX00000002", 1, email=VICTIM), upserted("TX00000003", 1)])
    key = shop.key_of(conn, "TX00000002")
    # the login case: an unlinked local customer with the e-mail tritonX has for TX00000003
    local = shop.add_customer(
        conn, snapshot("TX00000003", email="tx00000003@example.nl"), linked=False
    )
    table, column = shop.column_of("email")
    conn.execute(
        sql.SQL(
            "CREATE FUNCTION public.refuse_victim() RETURNS trigger LANGUAGE plpgsql AS $f$"
            " BEGIN IF OLD.{c} IN ({victim}, 'tx00000003@example.nl') THEN "
            + RAISES[form].replace("{value}", "{victim}")
            + "; END IF; RETURN NEW; END $f$;"
            "CREATE TRIGGER refuse_victim BEFORE UPDATE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION public.refuse_victim()"
        ).format(c=column, victim=sql.Literal(VICTIM), table=table)
    )
    conn.commit()
    log_before = server_log(conn) or ""
    webshop = as_role("syncctl_webshop")
    calls: list[tuple[str, list[Any]]] = [
        (
            "SELECT gdpr.rectify(%s::text, %s::jsonb, 'backoffice:test')",
            [str(key), f'{{"{shop.own_column}": "x"}}'],
        ),
        ("SELECT sync.anonymise_from_backoffice_key(%s, 'AVG', 'backoffice:test')", [str(key)]),
        ("SELECT * FROM sync.login_key('TX00000003', 'typed@example.nl')", []),
    ]
    refused = 0
    for statement, arguments in calls:
        try:
            webshop.execute(statement, arguments)
        except psycopg.Error as error:
            refused += 1
            _no_victim(error)
    assert refused >= 2 and local is not None
    # nor does the server log: a caught error is not logged, the one passed on holds names
    assert VICTIM not in (server_log(conn) or "")[len(log_before) :]


@pytest.mark.parametrize("form", ["message", "sy-class", "table-field"])
def test_an_operators_merge_or_anonymisation_passes_on_no_value_a_shop_trigger_raises_with(
    conn: psycopg.Connection[Any], shop: ShopSchema, form: str
) -> None:
    """`syncctl merge` and `syncctl anonymise` (sync.merge_customer, sync.merge_customers,
    sync.anonymise_customer) write the customer rows as the owner: a shop trigger refusing
    that write with the person's e-mail reaches neither the operator nor the server log."""
    stage(conn, [upserted("TX00000002", 1, email=VICTIM), upserted("TX00000003", 1)])
    table, column = shop.column_of("email")
    conn.execute(
        sql.SQL(
            "CREATE FUNCTION public.refuse_victim() RETURNS trigger LANGUAGE plpgsql AS $f$"
            " BEGIN IF OLD.{c} = {victim} THEN "
            + RAISES[form].replace("{value}", "OLD.{c}")
            + "; END IF; RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END; END $f$;"
            "CREATE TRIGGER refuse_victim BEFORE UPDATE OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION public.refuse_victim()"
        ).format(c=column, victim=sql.Literal(VICTIM), table=table)
    )
    conn.commit()
    log_before = server_log(conn) or ""
    calls = [
        "SELECT sync.anonymise_customer('TX00000002', 'AVG', 'ops:test')",
        "SELECT sync.merge_customer('TX00000002', 'TX00000003', NULL, 'ops:test')",
        "SELECT sync.merge_customers(ARRAY['TX00000002'], 'TX00000003', 'ops:test')",
    ]
    for statement in calls:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(statement)
        conn.rollback()
        _no_victim(refused.value)
        _no_victim(refused.value, ADOPTED)
    logged = (server_log(conn) or "")[len(log_before) :]
    assert VICTIM not in logged and ADOPTED not in logged


@pytest.mark.parametrize("form", ["message", "sy-class", "table-field"])
def test_link_repair_and_adoption_pass_on_no_value_a_shop_trigger_raises_with(
    conn: psycopg.Connection[Any], shop: ShopSchema, form: str
) -> None:
    """`syncctl links repair` (sync.repair_redirected_link) and an adoption by keys
    (sync.adopt_local_customer_key, which the controller may call itself) write the customer
    rows as the owner: a shop trigger refusing that write with the person's e-mail reaches
    neither the caller nor the server log."""
    # a customer still linked to a number tritonX merged away, the survivor local too
    stage(conn, [upserted("TX00000003", 1)])
    shop.add_customer(conn, snapshot("TX00000002", email=VICTIM))
    conn.execute(
        "INSERT INTO sync.redirect (old_number, survivor_number)"
        " VALUES ('TX00000002', 'TX00000003')"
    )
    # tritonX's customer whose e-mail only one unlinked local row has
    stage(conn, [upserted("TX00000004", 1, email=ADOPTED)])
    local = shop.add_customer(conn, snapshot("TX99999999", email=ADOPTED), linked=False)
    linked = shop.key_of(conn, "TX00000004")
    table, column = shop.column_of("email")
    conn.execute(
        sql.SQL(
            "CREATE FUNCTION public.refuse_victim() RETURNS trigger LANGUAGE plpgsql AS $f$"
            " BEGIN IF OLD.{c} IN ({victim}, {adopted}) THEN "
            + RAISES[form].replace("{value}", "OLD.{c}")
            + "; END IF; RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END; END $f$;"
            "CREATE TRIGGER refuse_victim BEFORE UPDATE OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION public.refuse_victim()"
        ).format(c=column, victim=sql.Literal(VICTIM), adopted=sql.Literal(ADOPTED), table=table)
    )
    conn.commit()
    log_before = server_log(conn) or ""
    calls: list[tuple[str, list[Any]]] = [
        ("SELECT sync.repair_redirected_link('TX00000002', 'ops:test')", []),
        (
            "SELECT sync.adopt_local_customer_key(%s::text, %s::text, 'ops:test')",
            [str(local), str(linked)],
        ),
    ]
    for statement, arguments in calls:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(statement, arguments)
        conn.rollback()
        _no_victim(refused.value)
        _no_victim(refused.value, ADOPTED)
    logged = (server_log(conn) or "")[len(log_before) :]
    assert VICTIM not in logged and ADOPTED not in logged
