"""Code the engine runs on the shop's tables besides triggers: a CHECK constraint, an index
expression or predicate, a column default, a row-level security policy or a domain of a column
that calls a function the shop application's login owns. That login may replace the function
at will, and the engine evaluates it inside its own writes with the owner role's rights (a
feed upsert reads the proof key here). `syncctl coverage` names each one, as it names triggers,
so a DBA sees it before the engine runs it; a function of a superuser (an extension's) or of the
owner role is not listed."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from syncctl import engine
from tests.feed import stage, upserted

APP = "attack_shop_app"

# (label, the DBA's statement on a customer-linked table, the defect's wording)
ATTACHED = [
    (
        "check",
        "ALTER TABLE shop.customer ADD CONSTRAINT email_ok CHECK (app.ok(email))",
        ("shop.customer", "CHECK constraint email_ok calls app.ok(text)"),
    ),
    (
        "index-expression",
        "CREATE INDEX orders_ok ON shop.orders ((app.ok(order_number)))",
        ("shop.orders", "index orders_ok calls app.ok(text)"),
    ),
    (
        "index-predicate",
        "CREATE INDEX favourite_ok ON shop.favourite (sku) WHERE app.ok(sku)",
        ("shop.favourite", "index favourite_ok calls app.ok(text)"),
    ),
    (
        "default",
        "ALTER TABLE shop.customer ADD COLUMN note text DEFAULT app.note()",
        ("shop.customer", "default of column note calls app.note()"),
    ),
    (
        "policy",
        "ALTER TABLE shop.wishlist ENABLE ROW LEVEL SECURITY;"
        " CREATE POLICY wishlist_ok ON shop.wishlist USING (app.ok('x'))",
        ("shop.wishlist", "policy wishlist_ok calls app.ok(text)"),
    ),
    (
        "domain",
        "CREATE DOMAIN public.checked_sku AS text CHECK (app.ok(VALUE));"
        " ALTER TABLE shop.favourite ALTER COLUMN sku TYPE public.checked_sku",
        ("shop.favourite", "domain public.checked_sku of column sku calls app.ok(text)"),
    ),
]


@pytest.fixture
def app_functions(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """Functions of a schema the shop application's login owns (a webshop login)."""
    conn.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP}')"
        f" THEN CREATE ROLE {APP} LOGIN IN ROLE syncctl_webshop; END IF; END $$"
    )
    conn.execute(f"CREATE SCHEMA app AUTHORIZATION {APP}; GRANT USAGE ON SCHEMA app TO PUBLIC")
    conn.execute(
        "CREATE FUNCTION app.ok(text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;"
        "CREATE FUNCTION app.note() RETURNS text LANGUAGE sql AS $$ SELECT 'n' $$;"
        f"ALTER FUNCTION app.ok(text) OWNER TO {APP}; ALTER FUNCTION app.note() OWNER TO {APP}"
    )
    conn.commit()
    return conn


def _listed(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(d.table, d.defect) for d in engine.coverage_defects(conn) if d.kind == "function"]


@pytest.mark.parametrize(("label", "statement", "expected"), ATTACHED, ids=[a[0] for a in ATTACHED])
def test_a_function_another_role_owns_in_a_linked_tables_expressions_is_listed(
    app_functions: psycopg.Connection[Any], label: str, statement: str, expected: tuple[str, str]
) -> None:
    conn = app_functions
    assert _listed(conn) == []
    conn.execute(statement)
    conn.commit()
    listed = _listed(conn)
    assert len(listed) == 1, listed
    table, defect = listed[0]
    assert (table, defect.split(",")[0]) == expected
    assert f"owned by role {APP}" in defect and "owner role's rights" in defect


def test_the_function_runs_with_the_owner_roles_rights_which_is_why_it_is_listed(
    app_functions: psycopg.Connection[Any], as_role: Any
) -> None:
    conn = app_functions
    conn.execute("CREATE TABLE public.seen (acting_as text, read_key bigint)")
    conn.execute("GRANT INSERT ON public.seen TO PUBLIC")
    conn.execute(ATTACHED[0][1])
    conn.commit()
    # the application's login replaces its own function with a payload
    app = as_role(APP)
    app.execute(
        "CREATE OR REPLACE FUNCTION app.ok(text) RETURNS boolean LANGUAGE plpgsql AS $$"
        " BEGIN INSERT INTO public.seen SELECT current_user, count(*) FROM gdpr.proof_key;"
        " RETURN true; END $$"
    )
    stage(conn, [upserted("TX00000001", 1)])
    conn.commit()
    assert conn.execute("SELECT acting_as FROM public.seen").fetchall() == [("syncctl_owner",)]
    assert any(APP in defect for _, defect in _listed(conn))


def test_a_superusers_or_the_owner_roles_function_is_not_listed(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        "CREATE FUNCTION public.dba_ok(text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;"
        "ALTER TABLE shop.customer ADD CONSTRAINT dba_ok CHECK (public.dba_ok(email));"
        "CREATE INDEX customer_lower ON shop.customer (lower(email))"
    )
    conn.commit()
    assert _listed(conn) == []
