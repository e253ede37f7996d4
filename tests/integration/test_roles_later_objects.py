"""Objects a later revision adds follow the rules once it calls sync.apply_privileges() as the
owner role: PUBLIC and the engine's roles get nothing unless the grants name it, a function
registered for the shop is granted only when it is SECURITY DEFINER in its own source, and a
function that does not pin its search_path (or one a login created outside the owner role) is
refused."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.roles import refused

OWNER = "syncctl_owner"
LATER_REVISION = """
SET ROLE syncctl_owner;
CREATE TABLE gdpr.later_consent (
    customer_id bigint NOT NULL, purpose text NOT NULL, given boolean NOT NULL);
CREATE FUNCTION gdpr.later_record_consent(p_customer_id bigint, p_purpose text, p_given boolean)
RETURNS void LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ INSERT INTO gdpr.later_consent VALUES (p_customer_id, p_purpose, p_given) $$;
CREATE FUNCTION gdpr.run_retention() RETURNS bigint LANGUAGE sql VOLATILE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp AS $$ SELECT count(*) FROM gdpr.later_consent $$;
INSERT INTO sync.webshop_function VALUES ('gdpr.later_record_consent(bigint, text, boolean)');
"""


@pytest.fixture
def later(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute(LATER_REVISION)
    conn.execute("SELECT sync.apply_privileges()")
    conn.execute("RESET ROLE")
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
    assert later.execute("SELECT count(*) FROM gdpr.later_consent").fetchone() == (1,)


def test_nothing_unlisted_reaches_the_controller_or_reporting(later: Any, as_role: Any) -> None:
    for role in ("syncctl_controller", "syncctl_reporting", "stranger"):
        c = as_role(role)
        for statement in (
            "SELECT gdpr.run_retention()",
            "DELETE FROM gdpr.later_consent",
            "SELECT * FROM gdpr.later_consent",
        ):
            assert refused(c, statement), (role, statement)
    assert refused(as_role("stranger"), "SELECT gdpr.later_record_consent(1, 'x', true)")


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
    later.execute(f"SET ROLE {OWNER}")
    later.execute("SELECT sync.apply_privileges()")
    later.execute("SELECT sync.apply_privileges()")
    later.execute("RESET ROLE")
    assert (later.execute(acl).fetchall(), later.execute(functions).fetchall()) == before


@pytest.mark.parametrize(
    ("definition", "defect"),
    [
        (
            "CREATE FUNCTION sync.loose(p text) RETURNS text LANGUAGE sql SECURITY DEFINER"
            " AS $$ SELECT lower(p) $$",
            "does not pin search_path",
        ),
        (
            "CREATE FUNCTION sync.loose(p text) RETURNS text LANGUAGE sql SECURITY DEFINER"
            " SET search_path = '' AS $$ SELECT pg_catalog.lower(p) $$",
            "does not pin search_path",
        ),
        (
            "CREATE FUNCTION sync.loose(p text) RETURNS text LANGUAGE sql SECURITY DEFINER"
            " SET search_path = pg_temp, pg_catalog AS $$ SELECT pg_catalog.lower(p) $$",
            "does not pin search_path",
        ),
        (
            "CREATE FUNCTION sync.loose(p text) RETURNS text LANGUAGE sql SECURITY INVOKER"
            " SET search_path = pg_catalog, pg_temp AS $$ SELECT pg_catalog.lower(p) $$",
            "not SECURITY DEFINER",
        ),
    ],
)
def test_a_function_that_breaks_the_rules_is_refused(
    conn: psycopg.Connection[Any], definition: str, defect: str
) -> None:
    conn.execute(f"SET ROLE {OWNER}")
    conn.execute(definition)
    conn.execute("INSERT INTO sync.webshop_function VALUES ('sync.loose(text)')")
    with pytest.raises(psycopg.Error, match=defect) as refusal:
        conn.execute("SELECT sync.apply_privileges()")
    assert refusal.value.sqlstate == "SY024"


def test_a_function_a_login_created_is_refused(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE FUNCTION sync.planted(p text) RETURNS text LANGUAGE sql"
        " SET search_path = pg_catalog, pg_temp AS $$ SELECT p $$"
    )
    conn.execute(f"SET ROLE {OWNER}")
    with pytest.raises(psycopg.Error, match=r"sync\.planted\(text\) not owned by") as refusal:
        conn.execute("SELECT sync.apply_privileges()")
    assert refusal.value.sqlstate == "SY024"


def test_privileges_are_applied_only_as_the_owner(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.Error, match="privileges are applied as syncctl_owner"):
        conn.execute("SELECT sync.apply_privileges()")
