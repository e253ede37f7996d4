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


NOTE, GIFT = _name("note"), _name("gift")
MORE = {c: _name(c) for c in ("ord", "txt", "giver", "taker", "msg", "tmsg", "book")}


def _more_names() -> tuple[dict[str, sql.Identifier], dict[str, sql.Identifier]]:
    """The columns and the tables of the hostile shop as identifiers, for sql.SQL.format."""
    columns = {k: sql.Identifier(v) for k, v in (COLUMNS | MORE).items()}
    tables = {
        "note": sql.Identifier(SCHEMA, NOTE),
        "gift": sql.Identifier(SCHEMA, GIFT),
        "orders": sql.Identifier(SCHEMA, _name("orders")),
        "client": sql.Identifier(SCHEMA, CLIENT),
        "addr": sql.Identifier(SCHEMA, ADDRESS),
        "cust": sql.Identifier(_name("cust")),
    }
    return columns, tables


def _more_ddl(conn: psycopg.Connection[Any], owner: sql.Identifier) -> None:
    """Rows one foreign key further (a note on an order), a row naming two customers (a gift,
    each column's data belonging to one of them) and the address table made an address book
    (a back-pointer to the customer), all under hostile names."""
    i, names = _more_names()
    conn.execute(
        sql.SQL(
            "CREATE TABLE {note} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " {ord} bigint NOT NULL REFERENCES {orders} (id), {txt} text);"
            "CREATE INDEX ON {note} ({ord});"
            "CREATE TABLE {gift} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " {giver} uuid REFERENCES {client} ({client_uuid}),"
            " {taker} uuid REFERENCES {client} ({client_uuid}), {msg} text, {tmsg} text);"
            "CREATE INDEX ON {gift} ({giver}); CREATE INDEX ON {gift} ({taker});"
            "ALTER TABLE {addr} ADD COLUMN {book} uuid REFERENCES {client} ({client_uuid});"
            "CREATE INDEX ON {addr} ({book});"
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {note}, {gift} TO {o}"
        ).format(o=owner, **names, **i)
    )
    conn.execute(
        "INSERT INTO sync.pii_column"
        " (table_schema, table_name, column_name, strategy, belongs_to) VALUES"
        " (%(s)s, %(note)s, 'id', 'not_personal', NULL),"
        " (%(s)s, %(note)s, %(ord)s, 'not_personal', NULL),"
        " (%(s)s, %(note)s, %(txt)s, 'null', NULL),"
        " (%(s)s, %(gift)s, 'id', 'not_personal', NULL),"
        " (%(s)s, %(gift)s, %(giver)s, 'not_personal', NULL),"
        " (%(s)s, %(gift)s, %(taker)s, 'not_personal', NULL),"
        " (%(s)s, %(gift)s, %(msg)s, 'null', %(giver)s),"
        " (%(s)s, %(gift)s, %(tmsg)s, 'null', %(taker)s),"
        " (%(s)s, %(addr)s, %(book)s, 'not_personal', NULL)",
        {"s": SCHEMA, "note": NOTE, "gift": GIFT, "addr": ADDRESS, **MORE},
    )


def test_hostile_names_on_the_further_rows_two_references_and_an_address_book(
    hostile: psycopg.Connection[Any], as_role: Any
) -> None:
    """The code added for rows one foreign key further, a row naming two customers, clearing a
    customer's pointers into its address book and the erased-customer test quotes every name:
    the feed's anonymisation and delete, the export and an erasure request run, nothing else."""
    conn = hostile
    owner = sql.Identifier("syncctl_owner")
    _more_ddl(conn, owner)
    conn.commit()
    before = _objects(conn)
    people = {_number(): _fields(gender="M") for _ in range(4)}
    numbers = sorted(people)
    outcome = stage(conn, [upserted(n, 1, **f) for n, f in people.items()])
    conn.commit()
    assert outcome.states == {"applied": 4}
    keys = {}
    for n in numbers:
        row = conn.execute("SELECT syncmap.key_of(%s)", [n]).fetchone()
        assert row is not None
        keys[n] = row[0]
    a, b, c, d = numbers
    i, names = _more_names()
    # (no parameters: psycopg would read the names' % as placeholders)
    for who in (a, d):
        conn.execute(
            sql.SQL(
                "WITH o AS (INSERT INTO {orders} ({cust}, note) VALUES ({key}::uuid, 'n')"
                " RETURNING id) INSERT INTO {note} ({ord}, {txt}) SELECT id, 'secret' FROM o"
            ).format(key=sql.Literal(keys[who]), **names, **i)
        )
    conn.execute(
        sql.SQL(
            "INSERT INTO {gift} ({giver}, {taker}, {msg}, {tmsg})"
            " VALUES ({a}::uuid, {b}::uuid, 'from a', 'for b')"
        ).format(a=sql.Literal(keys[a]), b=sql.Literal(keys[b]), **names, **i)
    )
    # c's default address is in its address book
    conn.execute(
        sql.SQL(
            "UPDATE {addr} AS r SET {book} = c.{client_uuid} FROM {client} AS c"
            " WHERE c.{address_id} = r.{id} AND c.{client_uuid} = {c}::uuid"
        ).format(c=sql.Literal(keys[c]), **names, **i)
    )
    conn.commit()
    webshop = as_role("syncctl_webshop")
    exported = str(
        webshop.execute("SELECT * FROM gdpr.subject_data(%s::text, now())", [keys[b]]).fetchall()
    )
    assert "for b" in exported and "from a" not in exported, exported
    outcome = stage(
        conn,
        [
            event("customer.anonymized", a, 2, reason_code="AVG"),
            event("customer.deleted", c, 2),
        ],
    )
    conn.commit()
    assert outcome.states == {"applied": 2}, conn.execute(
        "SELECT reason FROM sync.dead_letter"
    ).fetchall()
    texts = conn.execute(
        sql.SQL("SELECT {txt} FROM {note} ORDER BY id").format(**names, **i)
    ).fetchall()
    assert texts == [(None,), ("secret",)]
    gift = conn.execute(sql.SQL("SELECT {msg}, {tmsg} FROM {gift}").format(**names, **i))
    assert gift.fetchall() == [(None, "for b")]
    assert conn.execute(
        sql.SQL("SELECT count(*) FROM {client} WHERE {client_uuid} = {c}::uuid").format(
            c=sql.Literal(keys[c]), **names, **i
        )
    ).fetchone() == (0,)
    # the one-by-one path: an erasure request of d (note scrubbed), then b (the gift's rest)
    controller = as_role("syncctl_controller")
    for who in (d, b):
        request = webshop.execute(
            "SELECT gdpr.receive_erasure(%s::text, 'bo:test', now())", [keys[who]]
        ).fetchone()
        assert request is not None
        webshop.execute("SELECT gdpr.verify_erasure(%s, 'bo:test', now())", request)
        webshop.execute("SELECT gdpr.schedule_erasure(%s, 'bo:test', interval '0', now())", request)
        controller.execute("SELECT gdpr.execute_due_erasures('gdpr-daily', now())")
        state = conn.execute(
            "SELECT state, last_error FROM gdpr.erasure_request WHERE id = %s", request
        ).fetchone()
        assert state == ("done", None)
    texts = conn.execute(sql.SQL("SELECT {txt} FROM {note}").format(**names, **i)).fetchall()
    assert texts == [(None,), (None,)]
    gift = conn.execute(sql.SQL("SELECT {msg}, {tmsg} FROM {gift}").format(**names, **i))
    assert gift.fetchall() == [(None, None)]
    conn.execute("SELECT * FROM sync.coverage_defects()").fetchall()
    assert conn.execute("SELECT count(*) FROM public.injected").fetchone() == (0,)
    added = _objects(conn) - before
    assert {n for n, _ in added} <= {"syncmap"}, added


def test_hostile_names_on_a_partitioned_customer_table_and_a_partition_attached_later(
    conn: psycopg.Connection[Any],
) -> None:
    """The shop's delete and truncate triggers bound on every partition (sync._rebind_triggers,
    sync._bind_shop_key_changes) quote the partition's name, a 63-byte one attached after the
    install too: installing the mapping again binds them there, and a delete or truncate naming
    a partition forgets the customers' links."""
    from tests.integration.test_mapping_compile import _install, _not_stored, _owner

    owner = sql.Identifier(_owner(conn))
    schema, table, key = _name("ps"), _name("Klant"), _name("Code")
    first, later = _name("a-l"), "x" * (63 - len(HOSTILE.encode())) + HOSTILE
    assert len(later.encode()) == 63
    ident = {
        "t": sql.Identifier(schema, table),
        "p1": sql.Identifier(schema, first),
        "p2": sql.Identifier(schema, later),
        "k": sql.Identifier(key),
        "s": sql.Identifier(schema),
        "o": owner,
    }
    conn.execute("CREATE TABLE public.injected (x int); GRANT ALL ON public.injected TO PUBLIC")
    conn.execute(
        sql.SQL(
            "CREATE SCHEMA {s}; CREATE TABLE {t} ({k} text PRIMARY KEY, mail text)"
            " PARTITION BY RANGE ({k});"
            "CREATE TABLE {p1} PARTITION OF {t} FOR VALUES FROM (MINVALUE) TO ('m');"
            "GRANT USAGE ON SCHEMA {s} TO {o};"
            "GRANT SELECT, INSERT, UPDATE, DELETE, TRIGGER ON {t}, {p1} TO {o}"
        ).format(**ident)
    )
    conn.commit()
    document = {
        "format": 1,
        "customer": {
            "schema": schema,
            "table": table,
            "key": key,
            "key_generate": "uuid",
            "number": "link",
            "version": "link",
            "columns": {"mail": "email"},
        },
        "not_stored": {"fields": _not_stored("email")},
    }
    _install(conn, document)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {p2} (LIKE {t}); ALTER TABLE {t} ATTACH PARTITION {p2}"
            " FOR VALUES FROM ('m') TO (MAXVALUE); GRANT ALL ON {p2} TO {o}"
        ).format(**ident)
    )
    conn.commit()
    _install(conn, document)
    bound = conn.execute(
        "SELECT c.relname, array_agg(t.tgname::text ORDER BY t.tgname) FROM pg_trigger t"
        " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND NOT t.tgisinternal GROUP BY 1",
        [schema],
    ).fetchall()
    expected = [
        "customer_deleted_by_shop",
        "customer_key_changed",
        "customer_keys_changed",
        "customer_truncated_by_shop",
        "zz_customer_key_changing",
    ]
    assert dict(bound) == {table: expected, first: expected, later: expected}, bound
    stage(conn, [upserted(f"TX0000000{i}", 1) for i in (1, 2, 3)])
    conn.commit()
    one = conn.execute("SELECT syncmap.key_of('TX00000001')").fetchone()
    assert one is not None
    conn.execute(sql.SQL("DELETE FROM {p1} WHERE {k} = {v}").format(v=sql.Literal(one[0]), **ident))
    conn.commit()
    assert conn.execute("SELECT count(*) FROM sync.customer_link").fetchone() == (2,)
    conn.execute(sql.SQL("TRUNCATE {p1}").format(**ident))
    conn.commit()
    assert conn.execute("SELECT count(*) FROM sync.customer_link").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM public.injected").fetchone() == (0,)
