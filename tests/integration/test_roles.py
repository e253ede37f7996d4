"""Least privilege: each role is refused what it must not do, PUBLIC has nothing, SECURITY
DEFINER functions pin search_path, and a search_path hijack changes nothing."""

from __future__ import annotations

import os
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from syncctl import links
from tests.feed import event, stage, upserted
from tests.roles import refused


@pytest.fixture
def populated(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1), upserted("TX00000003", 1)])
    stage(conn, [event("customer.merged", "TX00000001", 2, into="TX00000002")])
    return conn


def test_reporting_reads_reports_and_no_personal_data(populated: Any, as_role: Any) -> None:
    reporting = as_role("syncctl_reporting")
    rows = reporting.execute("SELECT action, actions FROM report.actions_per_day").fetchall()
    assert rows, "the report is empty"
    moved = reporting.execute("SELECT table_name FROM report.merge_rows_moved").fetchall()
    assert ("shop.customer",) in moved
    for table in ("shop.customer", "shop.orders", "sync.inbox", "sync.audit", "sync.dead_letter"):
        assert refused(reporting, f"SELECT * FROM {table} LIMIT 1"), table


def test_report_views_expose_no_personal_column(populated: Any) -> None:
    columns = {
        r[0]
        for r in populated.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'report'"
        )
    }
    personal = {
        r[0]
        for r in populated.execute(
            "SELECT column_name FROM sync.pii_column WHERE strategy <> 'not_personal'"
        )
    }
    assert columns and not columns & personal, columns & personal


def test_webshop_uses_the_api_and_cannot_touch_the_engine(populated: Any, as_role: Any) -> None:
    shop = as_role("syncctl_webshop")
    row = shop.execute("SELECT status FROM sync.login('TX00000001', 'x@y.nl')").fetchone()
    assert row == ("redirected",)
    cid = shop.execute("SELECT sync.resolve_customer('TX00000003')").fetchone()
    assert cid is not None
    shop.execute("SELECT sync.anonymise_from_backoffice(%s, 'AVG', 'bo:1')", [cid[0]])
    assert refused(shop, "SELECT * FROM sync.inbox LIMIT 1")
    assert refused(shop, "DELETE FROM sync.audit")
    assert refused(shop, "SELECT sync.merge_customer('TX00000002', 'TX00000003')")
    assert refused(shop, "INSERT INTO sync.redirect VALUES ('TX1', 'TX2')")


def test_controller_stages_and_applies_but_cannot_rewrite_the_audit(
    populated: Any, as_role: Any
) -> None:
    controller = as_role("syncctl_controller")
    stage(controller, [upserted("TX00000009", 1)], source="controller-test")
    assert controller.execute(
        "SELECT count(*) FROM shop.customer WHERE customer_number = 'TX00000009'"
    ).fetchone() == (1,)
    assert refused(controller, "UPDATE sync.audit SET actor = 'x'")
    assert refused(controller, "DELETE FROM sync.audit")
    assert refused(controller, "SELECT * FROM report.actions_per_day")


def test_public_has_nothing(populated: Any, as_role: Any, conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nobody_in')"
        " THEN CREATE ROLE nobody_in NOLOGIN; END IF; END $$"
    )
    conn.commit()
    stranger = as_role("nobody_in")
    for statement in (
        "SELECT * FROM shop.customer",
        "SELECT * FROM report.actions_per_day",
        "SELECT sync.resolve_customer_number('TX1')",
        "SELECT * FROM sync.login('TX1', 'a')",
    ):
        assert refused(stranger, statement), statement


def _unpinned_definers(conn: psycopg.Connection[Any]) -> tuple[int, list[str]]:
    definers = conn.execute(
        "SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname IN ('shop', 'sync', 'report', 'gdpr') AND p.prosecdef"
    ).fetchall()
    unpinned = [
        name
        for name, config in definers
        if not any(c.startswith("search_path=") for c in config or [])
    ]
    return len(definers), unpinned


def test_every_security_definer_function_pins_search_path(conn: psycopg.Connection[Any]) -> None:
    definers, unpinned = _unpinned_definers(conn)
    assert definers, "no SECURITY DEFINER function: the webshop API should have some"
    assert unpinned == []


def test_the_search_path_check_finds_an_unpinned_definer(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE FUNCTION sync.careless(p text) RETURNS text LANGUAGE sql SECURITY DEFINER"
        " AS $$ SELECT lower(p) $$"
    )
    assert _unpinned_definers(conn)[1] == ["sync.careless(text)"]


def test_a_search_path_hijack_is_ignored(
    populated: Any, as_role: Any, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS evil")
    conn.execute(
        "CREATE OR REPLACE FUNCTION evil.lower(text) RETURNS text LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'hijacked'; END $$"
    )
    conn.execute(
        "CREATE OR REPLACE FUNCTION evil.coalesce(text, text) RETURNS text"
        " LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked'; END $$"
    )
    conn.execute("GRANT USAGE ON SCHEMA evil TO PUBLIC")
    conn.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA evil TO PUBLIC")
    conn.commit()
    shop = as_role("syncctl_webshop")
    shop.execute("SET search_path = evil, pg_catalog, public")
    row = shop.execute("SELECT status FROM sync.login('TX00000002', 'A@B.nl')").fetchone()
    assert row == ("linked",)
    assert shop.execute("SELECT sync.resolve_customer_number('TX00000001')").fetchone() == (
        "TX00000002",
    )


def test_the_audit_is_append_only_for_every_role_but_the_owner(
    populated: Any, as_role: Any
) -> None:
    for role in ("syncctl_controller", "syncctl_webshop", "syncctl_reporting"):
        c = as_role(role)
        for statement in (
            "UPDATE sync.audit SET actor = 'x'",
            "DELETE FROM sync.audit",
            "TRUNCATE sync.audit",
        ):
            assert refused(c, statement), (role, statement)
    count = populated.execute("SELECT count(*) FROM sync.audit").fetchone()
    assert count is not None and count[0] >= 4


def test_hijacked_operators_and_functions_are_ignored_by_invoker_functions_too(
    populated: Any, as_role: Any, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS evil")
    conn.execute(
        "CREATE OR REPLACE FUNCTION evil.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'hijacked'; END $$"
    )
    conn.execute(
        "CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq)"
    )
    conn.execute(
        "CREATE OR REPLACE FUNCTION evil.lower(text) RETURNS text LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'hijacked'; END $$"
    )
    conn.execute("GRANT USAGE ON SCHEMA evil TO PUBLIC")
    conn.execute("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA evil TO PUBLIC")
    conn.commit()
    controller = as_role("syncctl_controller")
    controller.execute("SET search_path = evil, pg_catalog, public")
    # the hijack is live for unqualified SQL in this session ...
    with pytest.raises(psycopg.errors.RaiseException, match="hijacked"):
        controller.execute("SELECT 'a'::text = 'b'::text")
    # ... and changes nothing in the engine's SECURITY INVOKER functions
    assert controller.execute("SELECT sync.normalise_email(' Jan@Example.NL ')").fetchone() == (
        "jan@example.nl",
    )
    # the apply trigger too (the controller's own queries pin nothing: they are the daemon's
    # session, which an attacker who could set its search_path would own already)
    record = upserted("TX00000004", 1)
    controller.execute(
        "INSERT INTO sync.inbox (seq, event_id, event_type, customer_number, version,"
        " occurred_at, payload) VALUES (%s, %s, %s, %s, 1, now(), %s)",
        [record["seq"], record["event_id"], record["type"], "TX00000004", Jsonb(record)],
    )
    controller.execute("RESET search_path")
    assert controller.execute(
        "SELECT outcome FROM sync.audit WHERE customer_number = 'TX00000004'"
    ).fetchone() == ("applied",)


ENGINE_STATE = (
    "sync.webshop_function",
    "sync.setting",
    "sync.pii_column",
    "sync.merge_rule",
    "sync.anonymise_rule",
    "sync.tombstone",
    "sync.redirect",
    "sync.audit",
    "sync.dead_letter",
    "sync.outbox",
    "sync.link_conflict",
    "sync.refresh_request",
    "gdpr.policy",
    "gdpr.policy_category",
    "gdpr.consent",
    "gdpr.erasure_request",
)


@pytest.mark.parametrize("role", ["syncctl_controller", "syncctl_webshop", "syncctl_reporting"])
def test_no_role_but_the_owner_writes_the_engines_state(
    populated: Any, as_role: Any, role: str
) -> None:
    """Registries, the shop-function list, settings, tombstones, policies, erasure requests and
    the audit change only inside the owner's functions, which audit who changed what."""
    c = as_role(role)
    for table in ENGINE_STATE:
        for statement in (
            f"INSERT INTO {table} DEFAULT VALUES",
            f"UPDATE {table} SET {{}} = {{}}",
            f"DELETE FROM {table}",
            f"TRUNCATE {table}",
        ):
            column = populated.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND attidentity = '' AND NOT attisdropped ORDER BY attnum DESC LIMIT 1",
                [table],
            ).fetchone()
            assert column is not None
            sql_text = statement.format(column[0], column[0])
            assert refused(c, sql_text), (role, sql_text)
    for function in (
        "sync.merge_customer('TX00000002', 'TX00000003')",
        "sync.anonymise_customer('TX00000002', 'AVG', 'ops')",
        "sync.apply_privileges()",
        "gdpr.create_policy('x', 'x', 'x', 'contract', '1 day', 'created', '{}')",
        "gdpr.execute_erasure(1, 'ops')",
    ):
        assert refused(c, f"SELECT {function}"), (role, function)


def test_the_webshop_cannot_write_tritonx_fields_the_version_guard_or_remove_a_customer(
    populated: Any, as_role: Any
) -> None:
    shop = as_role("syncctl_webshop")
    for statement in (
        "UPDATE shop.customer SET email = 'mine@example.nl'",
        "UPDATE shop.customer SET customer_number = 'TX99999999'",
        "UPDATE shop.customer SET tritonx_version = 1000000",
        "UPDATE shop.customer SET newsletter_opt_in = true",
        "INSERT INTO shop.customer (customer_number) VALUES ('TX00000077')",
        "INSERT INTO shop.customer (tritonx_version) VALUES (5)",
        "DELETE FROM shop.customer",
        "TRUNCATE shop.customer CASCADE",
    ):
        assert refused(shop, statement), statement
    # its own columns, and a local customer of its own, it may write
    shop.execute("UPDATE shop.customer SET last_login_at = now(), preferred_language = 'nl'")
    shop.execute("INSERT INTO shop.customer (email) VALUES ('local@example.nl')")


def _login_in(conn: psycopg.Connection[Any], dsn: str, login: str, group: str) -> Any:
    """A real login in the group (SET ROLE would keep the superuser as the session user)."""
    conn.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{login}')"
        f" THEN CREATE ROLE {login} LOGIN PASSWORD 'x'; END IF; END $$"
    )
    conn.execute(f"GRANT {group} TO {login}")
    conn.commit()
    params = conninfo_to_dict(dsn)
    params.update(user=login, password="x")
    return psycopg.connect(make_conninfo(**params), autocommit=True)  # type: ignore[arg-type]


def test_the_controller_cannot_bring_jobs_forward_or_adopt_by_ids(
    populated: psycopg.Connection[Any], dsn: str
) -> None:
    local = populated.execute(
        "INSERT INTO shop.customer (email) VALUES ('stranger@example.nl') RETURNING id"
    ).fetchone()
    linked = populated.execute(
        "SELECT id FROM shop.customer WHERE customer_number = 'TX00000003'"
    ).fetchone()
    assert local is not None and linked is not None
    with _login_in(populated, dsn, "daemon_login", "syncctl_controller") as daemon:
        for job in (
            "SELECT gdpr.purge_batch(now() + interval '10 years', NULL::text, 500, 'retention')",
            "SELECT gdpr.execute_due_erasures('scheduler', now() + interval '1 day')",
        ):
            with pytest.raises(psycopg.Error) as refusal:
                daemon.execute(job)
            assert refusal.value.sqlstate == "SY026", job
        daemon.execute("SELECT gdpr.purge_batch(now(), NULL::text, 500, 'retention')")
        # the stranger's e-mail is not tritonX's e-mail of TX00000003: no move by ids alone
        with pytest.raises(psycopg.Error) as refusal:
            daemon.execute(
                "SELECT sync.adopt_local_customer(%s, %s, 'ops:repair')", [local[0], linked[0]]
            )
        assert refusal.value.sqlstate == "SY052"
    assert populated.execute(
        "SELECT customer_number FROM shop.customer WHERE id = %s", [local[0]]
    ).fetchone() == (None,)


def test_the_shops_lookups_refuse_an_oversized_number(as_role: Any) -> None:
    shop = as_role("syncctl_webshop")
    huge = os.urandom(5_000_000).hex()
    for function in ("sync.resolve_customer", "sync.resolve_customer_number"):
        with pytest.raises(psycopg.Error) as refusal:
            shop.execute(f"SELECT {function}(%s)", [huge])
        assert refusal.value.sqlstate == "SY025", function
        assert huge[:40] not in str(refusal.value)


def test_the_controller_repairs_links_and_adopts_as_the_daemon_does(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    """`syncctl links repair` and bootstrap run as the daemon's login: planning, recording
    conflicts and adopting need nothing the controller role lacks."""
    stage(conn, [upserted("TX00000007", 1, email="eva@x.nl"), upserted("TX00000008", 1)])
    local = conn.execute(
        "INSERT INTO shop.customer (email) VALUES ('EVA@x.nl') RETURNING id"
    ).fetchone()
    assert local is not None
    with _login_in(conn, dsn, "daemon_links", "syncctl_controller") as daemon:
        daemon.autocommit = False
        plan = links.repair_plan(daemon)
        assert [(a.local_key, a.number) for a in plan.adopt] == [(str(local[0]), "TX00000007")]
        outcome = links.repair(daemon, plan, "ops:daemon")
        assert (outcome.changed, outcome.planned) == (1, 1)
        anomalies = {a.anomaly: a.customers for a in links.anomalies(daemon)}
        assert anomalies["local customer without a tritonX number"] == 0
    assert conn.execute(
        "SELECT id FROM shop.customer WHERE customer_number = 'TX00000007'"
    ).fetchone() == (local[0],)
