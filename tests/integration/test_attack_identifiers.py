"""Hostile names and literals in a mapping and the shop schema it binds: every schema, table and
column name and every literal of the mapping holds a double quote, a single quote, `$$`, a
semicolon, a line break, a backslash and `%s`/`%I` (format's own placeholders). The compiled
code quotes each: snapshots are written as sent, the literals arrive as written, merges,
anonymisation, coverage, the subject access export and the erasure proof run, and nothing
outside the mapping's tables changes (a marker table stays empty, no extra object appears)."""

from __future__ import annotations

import copy
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.feed import event, stage, upserted
from tests.integration.test_mapping_compile import MAPPING, _fields, _number

HOSTILE = "\"$$';\n\\%s%I--"


def _name(base: str) -> str:
    return base + HOSTILE


SCHEMA, CLIENT, ADDRESS = _name("s"), _name("client"), _name("addr")
COLUMNS = {
    c: _name(c)
    for c in ("client_uuid", "ext_ref", "full_name", "sex", "is_blocked", "email", "segment",
              "address_id", "id", "street", "zip", "city")
}  # fmt: skip


def _mapping() -> dict[str, Any]:
    m = copy.deepcopy(MAPPING)
    customer = m["customer"]
    customer.update(schema=SCHEMA, table=CLIENT, key=COLUMNS["client_uuid"])
    customer["number"] = {"column": COLUMNS["ext_ref"]}
    customer["columns"] = {
        COLUMNS["full_name"]: {"join": ["first_name", "infix", "last_name"]},
        COLUMNS["sex"]: {"field": "gender", "codes": {"M": "m'$$", "F": "f;"}, "other": "u\\"},
        COLUMNS["is_blocked"]: {"field": "blocked", "true": "Y", "false": "N", "null_as": "N"},
        COLUMNS["email"]: "email",
    }
    customer["create"] = {COLUMNS["segment"]: "re'tail$$;\n%s"}
    related = m["related"][0]
    related.update(schema=SCHEMA, table=ADDRESS, key=COLUMNS["id"])
    related["via"] = {"customer_column": COLUMNS["address_id"]}
    related["columns"] = {
        COLUMNS["street"]: {"join": ["street", "house_number", "house_number_addition"]},
        COLUMNS["zip"]: "postcode",
        COLUMNS["city"]: "city",
    }
    return m


def _ddl(conn: psycopg.Connection[Any]) -> None:
    i = {k: sql.Identifier(v) for k, v in COLUMNS.items()}
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {addr} ({id} integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " {street} text, {zip} varchar(6), {city} text)"
        ).format(addr=sql.Identifier(SCHEMA, ADDRESS), **i)
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE {client} ({client_uuid} uuid PRIMARY KEY, {ext_ref} varchar(40) UNIQUE,"
            " {full_name} varchar(200), {sex} varchar(4), {is_blocked} char(1) NOT NULL,"
            " {email} text, {segment} text NOT NULL,"
            " {address_id} integer REFERENCES {addr} ({id}));"
            "CREATE INDEX ON {client} ({address_id})"
        ).format(client=sql.Identifier(SCHEMA, CLIENT), addr=sql.Identifier(SCHEMA, ADDRESS), **i)
    )
    conn.execute(
        sql.SQL(
            "CREATE TABLE {orders} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " {cust} uuid REFERENCES {client} ({client_uuid}), note text);"
            "CREATE INDEX ON {orders} ({cust})"
        ).format(
            orders=sql.Identifier(SCHEMA, _name("orders")),
            cust=sql.Identifier(_name("cust")),
            client=sql.Identifier(SCHEMA, CLIENT),
            client_uuid=i["client_uuid"],
        )
    )


@pytest.fixture
def hostile(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    owner_row = conn.execute("SELECT sync.role_name('owner')").fetchone()
    assert owner_row is not None
    owner = sql.Identifier(owner_row[0])
    conn.execute("CREATE TABLE public.injected (x int); GRANT ALL ON public.injected TO PUBLIC")
    _ddl(conn)
    schema = sql.Identifier(SCHEMA)
    conn.execute(
        sql.SQL(
            "GRANT USAGE ON SCHEMA {s} TO {o};"
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {o};"
            "GRANT USAGE ON ALL SEQUENCES IN SCHEMA {s} TO {o}"
        ).format(s=schema, o=owner)
    )
    # classify every column of the three tables (scrubbed: null, the key columns kept)
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
        " SELECT n.nspname, c.relname, a.attname,"
        "        CASE WHEN a.attnotnull OR a.attname = ANY(%s) THEN 'keep' ELSE 'null' END"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " WHERE n.nspname = %s AND c.relkind = 'r'"
        " ON CONFLICT DO NOTHING",
        [
            [
                COLUMNS["client_uuid"],
                COLUMNS["ext_ref"],
                COLUMNS["address_id"],
                COLUMNS["id"],
                _name("cust"),
                "id",
            ],
            SCHEMA,
        ],
    )
    conn.commit()
    conn.execute(sql.SQL("SET ROLE {}").format(owner))
    conn.execute("SELECT sync.install_mapping(%s, 'hostile')", [Jsonb(_mapping())])
    conn.execute("RESET ROLE")
    conn.commit()
    return conn


def _objects(conn: psycopg.Connection[Any]) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname NOT LIKE 'pg_%%'"
        " UNION SELECT n.nspname, p.proname FROM pg_proc p JOIN pg_namespace n"
        " ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    return set(rows)


def test_hostile_names_and_literals_are_quoted_everywhere(
    hostile: psycopg.Connection[Any], as_role: Any
) -> None:
    conn = hostile
    before = _objects(conn)
    people = {_number(): _fields(gender="M") for _ in range(3)}
    records = [upserted(n, 1, **f) for n, f in people.items()]
    outcome = stage(conn, records)
    conn.commit()
    assert outcome.states == {"applied": 3}, conn.execute(
        "SELECT reason FROM sync.dead_letter"
    ).fetchall()
    client = sql.Identifier(SCHEMA, CLIENT)
    rows = conn.execute(
        sql.SQL("SELECT {ext}, {sex}, {segment}, {email} FROM {client} ORDER BY 1").format(
            ext=sql.Identifier(COLUMNS["ext_ref"]),
            sex=sql.Identifier(COLUMNS["sex"]),
            segment=sql.Identifier(COLUMNS["segment"]),
            email=sql.Identifier(COLUMNS["email"]),
            client=client,
        )
    ).fetchall()
    assert rows == sorted((n, "m'$$", "re'tail$$;\n%s", f["email"]) for n, f in people.items())
    numbers = sorted(people)
    key = conn.execute("SELECT syncmap.key_of(%s)", [numbers[0]]).fetchone()
    assert key is not None
    # (no parameters: psycopg would read the names' % as placeholders)
    conn.execute(
        sql.SQL("INSERT INTO {orders} ({cust}, note) VALUES ({key}::uuid, 'n')").format(
            orders=sql.Identifier(SCHEMA, _name("orders")),
            cust=sql.Identifier(_name("cust")),
            key=sql.Literal(key[0]),
        )
    )
    conn.commit()
    # a merge moves the order, an anonymisation scrubs, a delete removes
    outcome = stage(
        conn,
        [
            event("customer.merged", numbers[0], 2, into=numbers[1]),
            event("customer.anonymized", numbers[1], 2, reason_code="AVG"),
            event("customer.deleted", numbers[2], 2),
        ],
    )
    conn.commit()
    assert outcome.states == {"applied": 3}, conn.execute(
        "SELECT reason FROM sync.dead_letter"
    ).fetchall()
    # coverage, subject access and the erasure path run over the same names
    conn.execute("SELECT * FROM sync.coverage_defects()").fetchall()
    stage(conn, [upserted("TQHOSTILE01", 1, **_fields())])
    conn.commit()
    subject = conn.execute("SELECT syncmap.key_of('TQHOSTILE01')").fetchone()
    assert subject is not None
    webshop = as_role("syncctl_webshop")
    assert webshop.execute("SELECT gdpr.subject_data(%s::text, now())", subject).fetchone()
    request = webshop.execute(
        "SELECT gdpr.receive_erasure(%s::text, 'bo:test', now())", subject
    ).fetchone()
    assert request is not None
    webshop.execute("SELECT gdpr.verify_erasure(%s, 'bo:test', now())", request)
    webshop.execute("SELECT gdpr.schedule_erasure(%s, 'bo:test', interval '0', now())", request)
    as_role("syncctl_controller").execute("SELECT gdpr.execute_due_erasures('gdpr-daily', now())")
    state = conn.execute(
        "SELECT state, last_error FROM gdpr.erasure_request WHERE id = %s", request
    ).fetchone()
    assert state == ("done", None)
    assert conn.execute("SELECT count(*) FROM public.injected").fetchone() == (0,)
    added = _objects(conn) - before
    assert {n for n, _ in added} <= {"syncmap"}, added
