"""No role gains what it was not given, tried as an attacker would (in the manner of PostgreSQL
Anonymizer's elevation tests). For each of the webshop, controller and reporting roles and a
plain login, an attacker login plants shadowing objects where it can create them: domains named
like built-in types, tables and views named like the engine's tables and like catalogs, in its
temporary schema; functions, operators and a cast in a schema it owns and in `public` (made
writable on purpose). Every planted object runs `payload()`, which tries to make the attacker
superuser, to join the owner role and to write a marker table only the owner and superusers may
write. The attacker then calls every function its role may execute and writes every table it may
write (so the engine's triggers fire). Nothing may have changed: no attribute, no membership, no
marker row, and the payload never ran with anyone's rights but the attacker's own (it warns when
it does, and the warning reaches the attacker even from a statement rolled back later)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from tests.feed import event, stage, upserted

ROLES = {
    "webshop": "syncctl_webshop",
    "controller": "syncctl_controller",
    "reporting": "syncctl_reporting",
    "plain": None,
}
SCHEMAS = ["shop", "sync", "gdpr", "report"]
PASSWORD = "attack-" + uuid.uuid4().hex
# type names the engine's functions use, shadowed in pg_temp by domains that run the payload
SHADOWED_TYPES = [
    "text", "int4", "int8", "bool", "jsonb", "timestamptz", "uuid", "interval", "date",
    "numeric", "regclass", "regprocedure", "name", "bytea", "varchar",
]  # fmt: skip
# relation names: the engine's tables unqualified, catalogs, and names a function might use
SHADOWED_RELATIONS = [
    "customer", "inbox", "audit", "outbox", "redirect", "tombstone", "dead_letter", "cursor",
    "setting", "orders", "favourite", "consent", "policy", "erasure_request", "staged", "page",
    "pg_class", "pg_namespace", "pg_proc", "pg_roles", "pg_attribute", "pg_constraint",
    "pg_index", "pg_type", "pg_settings", "pg_authid", "pg_auth_members",
]  # fmt: skip
BUILTIN_FUNCTIONS = [  # (name, arguments, result)
    ("lower", "text", "text"), ("btrim", "text", "text"), ("length", "text", "text"),
    ("normalize", "text, text", "text"), ("format", "text", "text"),
    ("jsonb_build_object", "VARIADIC text[]", "jsonb"), ("now", "", "text"),
    ("to_regclass", "text", "text"), ("current_setting", "text, boolean", "text"),
    ("set_config", "text, text, boolean", "text"), ("pg_notify", "text, text", "text"),
    ("sha256", "bytea", "text"), ("gen_random_uuid", "", "text"),
]  # fmt: skip

PAYLOAD = """
CREATE FUNCTION {schema}.payload() RETURNS boolean LANGUAGE plpgsql AS $body$
BEGIN
    IF current_user <> session_user THEN
        -- seen by the attacker's session even when the statement is rolled back afterwards
        RAISE WARNING 'elevation: acting as %', current_user;
    END IF;
    BEGIN
        INSERT INTO public.elevation_marker (login, acting_as) VALUES (session_user, current_user);
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    BEGIN
        EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER CREATEROLE CREATEDB BYPASSRLS',
                                  session_user);
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    BEGIN
        EXECUTE pg_catalog.format('GRANT syncctl_owner, pg_read_server_files TO %I', session_user);
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN true;
END
$body$;
GRANT USAGE ON SCHEMA {schema} TO PUBLIC;
GRANT EXECUTE ON FUNCTION {schema}.payload() TO PUBLIC;
"""


@pytest.fixture
def attack_setup(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS public.elevation_marker (login text, acting_as text);"
        "GRANT INSERT ON public.elevation_marker TO syncctl_owner;"
        # an older installation's public schema: anybody may create there
        "GRANT CREATE ON SCHEMA public TO PUBLIC"
    )
    for kind, group in ROLES.items():
        login = f"attacker_{kind}"
        conn.execute(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{login}')"
            f" THEN CREATE ROLE {login} LOGIN; END IF; END $$"
        )
        conn.execute(f"ALTER ROLE {login} LOGIN PASSWORD '{PASSWORD}'")
        if group:
            conn.execute(f"GRANT {group} TO {login}")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {login} AUTHORIZATION {login}")
    # a populated engine: customers, orders, a merge, outbox rows, dead letters, consent
    stage(conn, [upserted(f"TX0000000{i}", 1) for i in range(1, 6)])
    stage(conn, [event("customer.merged", "TX00000001", 2, into="TX00000002")])
    stage(conn, [{"seq": 999999, "event_id": "broken"}])
    conn.execute(
        "INSERT INTO shop.orders (customer_id, order_number)"
        " SELECT id, 'O-' || id FROM shop.customer"
    )
    conn.execute("SELECT sync.anonymise_customer('TX00000005', 'AVG', 'test')")
    conn.commit()
    yield conn
    conn.rollback()
    conn.execute("DROP TABLE IF EXISTS public.elevation_marker")
    conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    conn.commit()


def _connect_as(dsn: str, login: str) -> psycopg.Connection[Any]:
    params = conninfo_to_dict(dsn)
    params.update(user=login, password=PASSWORD)
    return psycopg.connect(make_conninfo(**params))  # type: ignore[arg-type]


def _watch_elevation(c: psycopg.Connection[Any], seen: list[str]) -> None:
    """Collect the payload's warnings: they reach the session even from a rolled-back call."""

    def keep(d: psycopg.errors.Diagnostic) -> None:
        if "elevation" in (d.message_primary or ""):
            seen.append(d.message_primary or "")

    c.add_notice_handler(keep)


def _plant(c: psycopg.Connection[Any], login: str) -> None:
    """Every shadowing object the attacker can create, each running the payload."""
    for schema in (login, "public"):
        c.execute(PAYLOAD.format(schema=schema))
        for name, args, result in BUILTIN_FUNCTIONS:
            c.execute(
                f"CREATE OR REPLACE FUNCTION {schema}.{name}({args}) RETURNS {result} LANGUAGE sql"
                f" AS $$ SELECT CASE WHEN {schema}.payload() THEN NULL::{result} END $$"
            )
        c.execute(
            f"CREATE FUNCTION {schema}.text_eq(text, text) RETURNS boolean LANGUAGE sql"
            f" AS $$ SELECT {schema}.payload() $$;"
            f"CREATE OPERATOR {schema}.= (LEFTARG = text, RIGHTARG = text,"
            f" FUNCTION = {schema}.text_eq);"
            f"CREATE OPERATOR {schema}.|| (LEFTARG = text, RIGHTARG = text,"
            f" FUNCTION = {schema}.text_eq);"
            f"CREATE TYPE {schema}.hook AS (x int);"
            f"CREATE FUNCTION {schema}.hook_text({schema}.hook) RETURNS text LANGUAGE sql"
            f" AS $$ SELECT CASE WHEN {schema}.payload() THEN 'x' END $$;"
            f"CREATE CAST ({schema}.hook AS text) WITH FUNCTION {schema}.hook_text({schema}.hook)"
            " AS IMPLICIT"
        )
    for type_name in SHADOWED_TYPES:
        c.execute(
            f"CREATE DOMAIN pg_temp.{type_name} AS pg_catalog.{type_name} CHECK ({login}.payload())"
        )
    for relation in SHADOWED_RELATIONS:
        c.execute(
            f"CREATE TEMP TABLE {relation}_t (x int);"
            f"CREATE TEMP VIEW {relation} AS SELECT {login}.payload() AS payload, *"
            f" FROM pg_catalog.pg_class"
        )
    c.commit()


def _sample(type_name: str, customer_id: int) -> Any:
    return {
        "text": "TX00000002",
        "bigint": customer_id,
        "integer": 1,
        "boolean": True,
        "jsonb": Jsonb({"email": "x@example.nl"}),
        "timestamp with time zone": None,
        "interval": "1 day",
        "uuid": str(uuid.uuid4()),
        "regclass": "shop.orders",
        "date": "2020-01-01",
    }.get(type_name)


def _call_everything(c: psycopg.Connection[Any], role: str | None, customer_id: int) -> int:
    """Call every function of the engine the role may execute; returns how many ran."""
    functions = c.execute(
        "SELECT p.oid::regprocedure::text, n.nspname, p.proname,"
        "       ARRAY(SELECT pg_catalog.format_type(t, NULL)"
        "             FROM unnest(p.proargtypes) AS t)"
        " FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_namespace AS n"
        "   ON n.oid = p.pronamespace"
        " WHERE n.nspname = ANY(%s) AND p.prokind = 'f'"
        "   AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype"
        "   AND pg_catalog.has_function_privilege(p.oid, 'EXECUTE')"
        " ORDER BY 1",
        [SCHEMAS],
    ).fetchall()
    c.commit()
    ran = 0
    for _signature, schema, name, types in functions:
        placeholders = ", ".join(
            "now()" if t == "timestamp with time zone" else f"%s::{t}" for t in types
        )
        values = [_sample(t, customer_id) for t in types if t != "timestamp with time zone"]
        try:
            c.execute(f"SELECT * FROM {schema}.{name}({placeholders})", values)
            c.commit()
            ran += 1
        except psycopg.Error:
            c.rollback()
    assert role is None or ran > 0, f"{role} ran none of its functions"
    return ran


def _write_everything(c: psycopg.Connection[Any], kind: str, customer_id: int) -> None:
    """Write every table the role may write, so that the engine's triggers fire."""
    writes = {
        "webshop": [
            "INSERT INTO shop.customer (email, first_name) VALUES ('new@example.nl', 'Nieuw')",
            f"UPDATE shop.customer SET last_login_at = now() WHERE id = {customer_id}",
            f"INSERT INTO shop.orders (customer_id, order_number) VALUES ({customer_id}, 'E-1')",
            f"INSERT INTO shop.newsletter_subscription (customer_id, list_name)"
            f" VALUES ({customer_id}, 'weekly')",
            f"INSERT INTO shop.favourite (customer_id, sku) VALUES ({customer_id}, 'SKU-1')",
            "DELETE FROM shop.favourite WHERE sku = 'SKU-1'",
        ],
        "controller": [
            "INSERT INTO sync.cursor (source) VALUES ('attack') ON CONFLICT DO NOTHING",
            "UPDATE sync.cursor SET pages = pages WHERE source = 'attack'",
        ],
    }.get(kind, [])
    for statement in writes:
        try:
            c.execute(statement)
            c.commit()
        except psycopg.Error:
            c.rollback()
    if kind == "controller":
        # the feed as the controller stages it: upserts, a merge, an anonymisation, a deletion
        try:
            stage(
                c,
                [
                    upserted("TX00000031", 1),
                    upserted("TX00000032", 1),
                    event("customer.merged", "TX00000031", 2, into="TX00000032"),
                    event("customer.anonymized", "TX00000032", 3, reason_code="AVG"),
                    event("customer.deleted", "TX00000003", 4),
                ],
            )
            c.commit()
        except psycopg.Error:
            c.rollback()


@pytest.mark.parametrize("kind", list(ROLES))
def test_no_role_gains_what_it_was_not_given(
    attack_setup: psycopg.Connection[Any], dsn: str, kind: str
) -> None:
    admin = attack_setup
    login = f"attacker_{kind}"
    row = admin.execute(
        "SELECT id FROM shop.customer WHERE customer_number = 'TX00000002'"
    ).fetchone()
    assert row is not None
    customer_id = int(row[0])
    attributes = (
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication"
        " FROM pg_roles WHERE rolname = %s"
    )
    memberships = (
        "SELECT pg_catalog.array_agg(m.roleid::regrole::text ORDER BY 1)"
        " FROM pg_auth_members AS m WHERE m.member = %s::regrole"
    )
    before = (
        admin.execute(attributes, [login]).fetchone(),
        admin.execute(memberships, [login]).fetchone(),
    )
    admin.commit()

    elevated: list[str] = []
    with _connect_as(dsn, login) as attacker:
        _watch_elevation(attacker, elevated)
        _plant(attacker, login)
        for search_path in ("pg_temp, pg_catalog", f"{login}, public, pg_catalog"):
            attacker.execute(f"SET search_path = {search_path}")
            attacker.commit()
            _call_everything(attacker, ROLES[kind], customer_id)
            _write_everything(attacker, kind, customer_id)

    assert elevated == []
    assert admin.execute(attributes, [login]).fetchone() == before[0] == (
        False, False, False, False, False,
    )  # fmt: skip
    assert admin.execute(memberships, [login]).fetchone() == before[1]
    assert admin.execute("SELECT count(*) FROM public.elevation_marker").fetchone() == (0,)
    admin.commit()


def test_the_attack_would_be_seen(attack_setup: psycopg.Connection[Any], dsn: str) -> None:
    """The payload does its harm when something runs it with the owner's rights: the test above
    would see it."""
    with _connect_as(dsn, "attacker_plain") as attacker:
        _plant(attacker, "attacker_plain")
    attack_setup.execute("SET ROLE syncctl_owner;SELECT attacker_plain.payload();RESET ROLE")
    assert attack_setup.execute("SELECT acting_as FROM public.elevation_marker").fetchall() == [
        ("syncctl_owner",)
    ]


def test_a_policy_on_a_strangers_table_never_runs_as_the_owner(
    attack_setup: psycopg.Connection[Any], dsn: str
) -> None:
    """The erasure proof reads the tables of the whole database. A table of the attacker's own
    with row-level security, readable by everyone, whose policy runs the payload, must not be
    read with the owner's rights (a policy runs as the reader): the daily job (the controller)
    carries out a due erasure while it stands there."""
    admin = attack_setup
    login = "attacker_plain"
    elevated: list[str] = []
    with _connect_as(dsn, login) as attacker:
        _watch_elevation(attacker, elevated)
        attacker.execute(PAYLOAD.format(schema=login))
        attacker.execute(
            f"CREATE TABLE {login}.notes (body text);"
            f"INSERT INTO {login}.notes VALUES ('Anna van der Berg');"
            f"ALTER TABLE {login}.notes ENABLE ROW LEVEL SECURITY;"
            f"CREATE POLICY everyone ON {login}.notes USING ({login}.payload());"
            f"GRANT SELECT ON {login}.notes TO PUBLIC"
        )
        attacker.commit()
    row = admin.execute(
        "SELECT id FROM shop.customer WHERE customer_number = 'TX00000004'"
    ).fetchone()
    assert row is not None
    request = admin.execute(
        "SELECT gdpr.receive_erasure(%s, 'bo:1', now() - interval '2 days')", [row[0]]
    ).fetchone()
    assert request is not None
    admin.execute("SELECT gdpr.verify_erasure(%s, 'bo:1', now() - interval '2 days')", [request[0]])
    admin.execute(
        "SELECT gdpr.schedule_erasure(%s, 'bo:1', '1 day', now() - interval '2 days')", [request[0]]
    )
    admin.commit()
    notices: list[str] = []
    with _connect_as(dsn, "attacker_controller") as daemon:
        daemon.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        done = daemon.execute("SELECT gdpr.execute_due_erasures('scheduler', now())").fetchone()
        daemon.commit()
    last_error = admin.execute(
        "SELECT state, last_error FROM gdpr.erasure_request WHERE id = %s", [request[0]]
    ).fetchone()
    assert done is not None and done[0]["done"] == 1, (done, last_error, notices)
    assert [n for n in notices if "elevation" in n] == [] and elevated == []
    assert admin.execute("SELECT count(*) FROM public.elevation_marker").fetchone() == (0,)
