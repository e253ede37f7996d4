"""Objects a later revision adds follow the conventions once it calls sync.apply_privileges():
PUBLIC gets nothing, the gdpr schema is the engine's, a function registered for the shop runs as
its owner, and one that does not pin its search_path is refused."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.roles import refused

LATER_REVISION = """
CREATE SCHEMA IF NOT EXISTS gdpr;  -- revision 0013_gdpr creates it too
CREATE TABLE gdpr.later_consent (
    customer_id bigint NOT NULL, purpose text NOT NULL, given boolean NOT NULL);
CREATE FUNCTION gdpr.later_record_consent(p_customer_id bigint, p_purpose text, p_given boolean)
RETURNS void LANGUAGE sql VOLATILE SECURITY INVOKER SET search_path = ''
AS $$ INSERT INTO gdpr.later_consent VALUES (p_customer_id, p_purpose, p_given) $$;
CREATE FUNCTION gdpr.run_retention() RETURNS bigint LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path = '' AS $$ SELECT count(*) FROM gdpr.later_consent $$;
CREATE FUNCTION sync.shop_hint(p_number text) RETURNS text LANGUAGE sql STABLE
AS $$ SELECT p_number $$;
INSERT INTO sync.webshop_function VALUES ('gdpr.later_record_consent(bigint, text, boolean)');
"""


@pytest.fixture
def later(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute(LATER_REVISION)
    conn.execute("SELECT sync.apply_privileges()")
    conn.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stranger')"
        " THEN CREATE ROLE stranger NOLOGIN; END IF; END $$"
    )
    conn.commit()
    return conn


def test_the_shop_calls_a_registered_function_as_its_owner(later: Any, as_role: Any) -> None:
    shop = as_role("syncctl_webshop")
    shop.execute("SELECT gdpr.later_record_consent(1, 'newsletter', true)")
    assert refused(shop, "SELECT * FROM gdpr.later_consent")
    assert refused(shop, "SELECT gdpr.run_retention()")
    assert refused(shop, "SELECT sync.shop_hint('TX1')")
    definer = later.execute(
        "SELECT prosecdef FROM pg_proc WHERE oid = 'gdpr.later_record_consent'::regproc"
    ).fetchone()
    assert definer == (True,)


def test_the_controller_works_in_gdpr_and_reporting_does_not(later: Any, as_role: Any) -> None:
    controller = as_role("syncctl_controller")
    assert controller.execute("SELECT gdpr.run_retention()").fetchone() == (0,)
    controller.execute("DELETE FROM gdpr.later_consent")
    reporting = as_role("syncctl_reporting")
    assert refused(reporting, "SELECT * FROM gdpr.later_consent")
    assert refused(reporting, "SELECT gdpr.run_retention()")


def test_public_gets_nothing_created_later(later: Any, as_role: Any) -> None:
    stranger = as_role("stranger")
    for statement in (
        "SELECT * FROM gdpr.later_consent",
        "SELECT gdpr.later_record_consent(1, 'x', true)",
        "SELECT sync.shop_hint('TX1')",
    ):
        assert refused(stranger, statement), statement


def test_it_is_idempotent(later: psycopg.Connection[Any]) -> None:
    # ordered by name and identity: a GRANT rewrites catalog rows, which moves them
    acl = (
        "SELECT relname, relacl::text FROM pg_class"
        " WHERE relnamespace = 'gdpr'::regnamespace ORDER BY relname"
    )
    functions = (
        "SELECT oid::regprocedure::text, proacl::text, prosecdef FROM pg_proc"
        " WHERE pronamespace IN ('gdpr'::regnamespace, 'sync'::regnamespace) ORDER BY 1"
    )
    before = later.execute(acl).fetchall(), later.execute(functions).fetchall()
    later.execute("SELECT sync.apply_privileges()")
    later.execute("SELECT sync.apply_privileges()")
    assert (later.execute(acl).fetchall(), later.execute(functions).fetchall()) == before


def test_a_shop_function_without_a_pinned_search_path_is_refused(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        "CREATE FUNCTION sync.loose(p text) RETURNS text LANGUAGE sql AS $$ SELECT lower(p) $$"
    )
    conn.execute("INSERT INTO sync.webshop_function VALUES ('sync.loose(text)')")
    with pytest.raises(psycopg.Error, match="does not pin its search_path") as refusal:
        conn.execute("SELECT sync.apply_privileges()")
    assert refusal.value.sqlstate == "SY024"
