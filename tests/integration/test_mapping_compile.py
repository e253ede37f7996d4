"""The mapping compiler on a shop schema the test creates (not the reference): a uuid key without
a default, the tritonX number in the shop's own varchar column, the version kept in
sync.customer_link, a full-name join, gender codes, a boolean as a character, a NOT NULL column
filled only when tritonX creates the customer, and an address table the customer row points to.
Snapshots go through the real apply path (staged into the inbox, applied by its trigger)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.feed import event, stage, upserted
from tests.truth import SNAPSHOT_FIELDS

ROOT = Path(__file__).resolve().parents[2]

SCHEMA = """
CREATE SCHEMA tshop;
CREATE TABLE tshop."Address" (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    street      text,
    zip         varchar(6),
    city        text,
    note        text
);
CREATE TABLE tshop.client (
    client_uuid uuid PRIMARY KEY,
    ext_ref     varchar(40) UNIQUE,
    full_name   varchar(200),
    sex         char(1),
    is_blocked  char(1) NOT NULL,
    email       text,
    segment     text NOT NULL,
    address_id  integer REFERENCES tshop."Address" (id),
    shop_note   text
);
CREATE INDEX ON tshop.client (address_id);
"""

MAPPING: dict[str, Any] = {
    "format": 1,
    "customer": {
        "schema": "tshop",
        "table": "client",
        "key": "client_uuid",
        "key_generate": "uuid",
        "number": {"column": "ext_ref"},
        "version": "link",
        "columns": {
            "full_name": {"join": ["first_name", "infix", "last_name"]},
            "sex": {"field": "gender", "codes": {"M": "m", "F": "f"}, "other": "u"},
            "is_blocked": {"field": "blocked", "true": "Y", "false": "N", "null_as": "N"},
            "email": "email",
        },
        "create": {"segment": "retail"},
    },
    "related": [
        {
            "name": "address",
            "schema": "tshop",
            "table": "Address",
            "key": "id",
            "key_generate": "identity",
            "via": {"customer_column": "address_id"},
            "on_anonymise": "scrub_or_detach",
            "columns": {
                "street": {"join": ["street", "house_number", "house_number_addition"]},
                "zip": "postcode",
                "city": "city",
            },
        }
    ],
    "not_stored": {
        "fields": [
            "birth_date",
            "phone",
            "mobile",
            "country_code",
            "loyalty_card",
            "home_store",
            "customer_group",
            "newsletter_opt_in",
            "updated_at",
        ]
    },
}


def _word() -> str:
    return secrets.token_hex(5)


def _number() -> str:
    return "TQ" + secrets.token_hex(6).upper()


def _fields(**extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "first_name": _word(),
        "infix": secrets.choice(["", " ", "van der", None]),
        "last_name": _word(),
        "gender": secrets.choice(["M", "F", "X", None]),
        "blocked": secrets.choice([True, False, None]),
        "email": f"{_word()}@example.nl",
        "street": _word(),
        "house_number": secrets.randbelow(999) + 1,
        "house_number_addition": secrets.choice(["", "A", None]),
        "postcode": secrets.token_hex(3)[:6].upper(),
        "city": _word(),
    }
    fields.update(extra)
    return fields


def _joined(*parts: Any) -> str | None:
    kept = [str(p).strip() for p in parts if p is not None and str(p).strip() != ""]
    return " ".join(kept) or None


def _expected_client(f: dict[str, Any]) -> tuple[Any, ...]:
    sex = None if f["gender"] is None else {"M": "m", "F": "f"}.get(f["gender"], "u")
    blocked = "Y" if f["blocked"] is True else "N"
    return (_joined(f["first_name"], f["infix"], f["last_name"]), sex, blocked, f["email"])


def _expected_address(f: dict[str, Any]) -> tuple[Any, ...]:
    street = _joined(f["street"], f["house_number"], f["house_number_addition"])
    return (street, f["postcode"], f["city"])


def _owner(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT sync.role_name('owner')").fetchone()
    assert row is not None
    return str(row[0])


def _not_stored(*used: str) -> list[str]:
    """Every contract field but the number and those a test's mapping uses."""
    fields = [*SNAPSHOT_FIELDS, "updated_at"]
    return [f for f in dict.fromkeys(fields) if f not in ("customer_number", *used)]


def _install(conn: psycopg.Connection[Any], document: dict[str, Any]) -> int:
    owner = _owner(conn)
    conn.execute(f'SET ROLE "{owner}"')
    try:
        row = conn.execute(
            "SELECT sync.install_mapping(%s, 'test_mapping_compile')", [Jsonb(document)]
        ).fetchone()
    except psycopg.Error:
        conn.rollback()
        raise
    conn.execute("RESET ROLE")
    conn.commit()
    assert row is not None
    return int(row[0])


@pytest.fixture
def mapped(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    owner = _owner(conn)
    conn.execute(SCHEMA)
    conn.execute(
        f'GRANT USAGE ON SCHEMA tshop TO "{owner}";'
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tshop TO "{owner}";'
        f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA tshop TO "{owner}"'
    )
    conn.commit()
    _install(conn, MAPPING)
    return conn


def _client(conn: psycopg.Connection[Any], number: str) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT c.full_name, c.sex, c.is_blocked, c.email FROM tshop.client AS c"
        " WHERE c.ext_ref = %s",
        [number],
    ).fetchone()


def _address(conn: psycopg.Connection[Any], number: str) -> tuple[Any, ...] | None:
    return conn.execute(
        'SELECT a.street, a.zip, a.city FROM tshop.client AS c JOIN tshop."Address" AS a'
        " ON a.id = c.address_id WHERE c.ext_ref = %s",
        [number],
    ).fetchone()


def _outcomes(conn: psycopg.Connection[Any], records: list[dict[str, Any]]) -> list[Any]:
    return [
        conn.execute(
            "SELECT state, reason FROM sync.inbox_status WHERE event_id = %s", [r["event_id"]]
        ).fetchone()
        for r in records
    ]


def test_snapshots_are_written_through_the_mapping(mapped: psycopg.Connection[Any]) -> None:
    conn = mapped
    people = {_number(): _fields() for _ in range(6)}
    records = [upserted(n, 1, **f) for n, f in people.items()]
    stage(conn, records)
    assert [o[0] for o in _outcomes(conn, records)] == ["applied"] * len(records)
    for number, fields in people.items():
        assert _client(conn, number) == _expected_client(fields)
        assert _address(conn, number) == _expected_address(fields)
    # the create literal, the version in the link table, a uuid key of the engine's making
    rows = conn.execute(
        "SELECT c.segment, l.version, c.client_uuid IS NOT NULL FROM tshop.client AS c"
        " JOIN sync.customer_link AS l ON l.customer_key = c.client_uuid::text"
    ).fetchall()
    assert sorted(rows) == [("retail", 1, True)] * len(people)
    # the audit names no local id for a key that is not an integer
    ids = conn.execute(
        "SELECT DISTINCT customer_id FROM sync.audit WHERE action = 'customer.upserted'"
    ).fetchall()
    assert ids == [(None,)]


def test_version_guard_and_tombstone(mapped: psycopg.Connection[Any]) -> None:
    conn = mapped
    number, gone = _number(), _number()
    newer, older = _fields(), _fields()
    stage(conn, [upserted(number, 2, **newer)])
    stale = [upserted(number, 1, **older)]
    stage(conn, stale)
    assert _outcomes(conn, stale) == [("skipped", "stale")]
    assert _client(conn, number) == _expected_client(newer)
    conn.execute(
        "INSERT INTO sync.tombstone (customer_number, kind) VALUES (%s, 'deleted')", [gone]
    )
    conn.commit()
    erased = [upserted(gone, 1, **_fields())]
    stage(conn, erased)
    assert _outcomes(conn, erased) == [("skipped", "tombstone")]
    assert _client(conn, gone) is None


def test_a_second_snapshot_updates_in_place_and_keeps_the_shops_columns(
    mapped: psycopg.Connection[Any],
) -> None:
    conn = mapped
    number = _number()
    stage(conn, [upserted(number, 1, **_fields())])
    note, segment, address_note = _word(), _word(), _word()
    conn.execute(
        "UPDATE tshop.client SET shop_note = %s, segment = %s WHERE ext_ref = %s",
        [note, segment, number],
    )
    conn.execute(
        'UPDATE tshop."Address" SET note = %s'
        " WHERE id = (SELECT address_id FROM tshop.client WHERE ext_ref = %s)",
        [address_note, number],
    )
    before = conn.execute(
        "SELECT client_uuid, address_id FROM tshop.client WHERE ext_ref = %s", [number]
    ).fetchone()
    conn.commit()
    second = _fields()
    stage(conn, [upserted(number, 2, **second)])
    assert _client(conn, number) == _expected_client(second)
    assert _address(conn, number) == _expected_address(second)
    after = conn.execute(
        "SELECT client_uuid, address_id FROM tshop.client WHERE ext_ref = %s", [number]
    ).fetchone()
    assert after == before, "the key and the address row stay the same"
    assert conn.execute(
        'SELECT c.shop_note, c.segment, a.note FROM tshop.client AS c JOIN tshop."Address" AS a'
        " ON a.id = c.address_id WHERE c.ext_ref = %s",
        [number],
    ).fetchone() == (note, segment, address_note)
    assert conn.execute('SELECT count(*) FROM tshop."Address"').fetchone() == (1,)


def test_a_shared_address_is_copied_on_write(mapped: psycopg.Connection[Any]) -> None:
    conn = mapped
    mine, household = _number(), _number()
    stage(conn, [upserted(mine, 1, **_fields()), upserted(household, 1, **_fields())])
    # the shop lets the household member live at my address
    conn.execute(
        "UPDATE tshop.client SET address_id = (SELECT address_id FROM tshop.client"
        " WHERE ext_ref = %s) WHERE ext_ref = %s",
        [mine, household],
    )
    note = _word()
    conn.execute(
        'UPDATE tshop."Address" SET note = %s'
        " WHERE id = (SELECT address_id FROM tshop.client WHERE ext_ref = %s)",
        [note, mine],
    )
    shared = conn.execute(
        'SELECT a.* FROM tshop."Address" AS a JOIN tshop.client AS c ON c.address_id = a.id'
        " WHERE c.ext_ref = %s",
        [mine],
    ).fetchone()
    assert shared is not None
    conn.commit()
    moved = _fields()
    stage(conn, [upserted(mine, 2, **moved)])
    assert _address(conn, mine) == _expected_address(moved)
    # the shared row is untouched and still the household member's
    assert conn.execute('SELECT * FROM tshop."Address" WHERE id = %s', [shared[0]]).fetchone() == (
        shared
    )
    household_address = conn.execute(
        "SELECT address_id FROM tshop.client WHERE ext_ref = %s", [household]
    ).fetchone()
    assert household_address == (shared[0],)
    # the copy is mine alone and kept the shop's own column
    assert conn.execute(
        'SELECT a.id <> %s, a.note FROM tshop."Address" AS a JOIN tshop.client AS c'
        " ON c.address_id = a.id WHERE c.ext_ref = %s",
        [shared[0], mine],
    ).fetchone() == (True, note)


def test_a_value_too_long_for_a_mapped_column_is_a_dead_letter_naming_it(
    mapped: psycopg.Connection[Any],
) -> None:
    conn = mapped
    fine, long = _number(), _number()
    records = [
        upserted(fine, 1, **_fields()),
        upserted(long, 1, **_fields(postcode="1015 CJ")),
    ]
    stage(conn, records)
    outcomes = _outcomes(conn, records)
    assert outcomes[0] == ("applied", "created")
    assert outcomes[1][0] == "dead_letter"
    assert 'tshop."Address".zip' in outcomes[1][1]
    assert "SY062" in outcomes[1][1]
    assert "1015 CJ" not in outcomes[1][1]
    assert _client(conn, long) is None


def test_installing_the_same_mapping_again_changes_nothing(
    mapped: psycopg.Connection[Any],
) -> None:
    conn = mapped
    audit = "SELECT count(*) FROM sync.audit WHERE action = 'mapping.installed'"
    version = conn.execute("SELECT version FROM sync.mapping_version WHERE active").fetchone()
    before = conn.execute(audit).fetchone()
    assert version is not None and _install(conn, MAPPING) == version[0]
    assert conn.execute(audit).fetchone() == before
    assert conn.execute("SELECT count(*) FROM sync.mapping_version WHERE active").fetchone() == (1,)


def test_a_broken_mapping_is_refused_and_changes_nothing(
    mapped: psycopg.Connection[Any],
) -> None:
    conn = mapped
    state = (
        "SELECT (SELECT json_agg(v ORDER BY v.version)::text FROM sync.mapping_version AS v),"
        " pg_get_functiondef('syncmap.write_customers(text[], integer[], jsonb[],"
        " boolean[])'::regprocedure), pg_get_viewdef('syncmap.customer_map'::regclass),"
        " (SELECT count(*) FROM sync.audit)"
    )
    before = conn.execute(state).fetchone()
    broken = {
        **MAPPING,
        "customer": {**MAPPING["customer"], "columns": {"no_such_column": "email"}},
    }
    with pytest.raises(psycopg.Error) as refused:
        _install(conn, broken)
    assert refused.value.sqlstate == "SY060"
    assert "customer.columns.no_such_column" in str(refused.value)
    assert conn.execute(state).fetchone() == before


def test_generated_functions_pass_the_security_rules(mapped: psycopg.Connection[Any]) -> None:
    conn = mapped
    assert conn.execute("SELECT * FROM sync.function_defects()").fetchall() == []
    generated = conn.execute(
        "SELECT p.oid::regprocedure::text, pg_get_userbyid(p.proowner), p.proconfig"
        " FROM pg_proc AS p WHERE p.pronamespace = 'syncmap'::regnamespace ORDER BY 1"
    ).fetchall()
    owner = _owner(conn)
    assert [g[0] for g in generated] == [
        "syncmap.create_stub(text)",
        "syncmap.erase_customer(text,boolean)",
        "syncmap.erase_customers(text[],boolean[])",
        "syncmap.has_bookkeeping(text)",
        "syncmap.key_of(text)",
        "syncmap.lock_customers(text[])",
        "syncmap.move_customer(text,text)",
        "syncmap.moves_fingerprint()",
        "syncmap.moves_relations()",
        "syncmap.number_of(text)",
        "syncmap.sharing_customers(text[])",
        "syncmap.snapshot_defect(jsonb)",
        "syncmap.unclassified_count()",
        "syncmap.write_customers(text[],integer[],jsonb[],boolean[])",
        "syncmap.write_fingerprint()",
    ]
    assert all(g[1] == owner for g in generated)
    assert all(g[2][0] == "search_path=pg_catalog, pg_temp" for g in generated)
    # the page's write is planned for its own arrays, never a session's generic plan
    assert {g[0]: g[2][1:] for g in generated if len(g[2]) > 1} == {
        "syncmap.write_customers(text[],integer[],jsonb[],boolean[])": [
            "plan_cache_mode=force_custom_plan"
        ]
    }


def test_the_feed_without_a_snapshot_field_writes_null(mapped: psycopg.Connection[Any]) -> None:
    conn = mapped
    number = _number()
    fields = _fields(first_name=" ", infix=None, last_name="", gender=None, blocked=None)
    records = [
        event("customer.upserted", number, 1, customer={"customer_number": number, **fields})
    ]
    stage(conn, records)
    assert _client(conn, number) == (None, None, "N", fields["email"])


def test_a_number_kept_in_the_link_table(conn: psycopg.Connection[Any]) -> None:
    """An integer key made by the column's default, the number in sync.customer_link, the
    version in a column of the shop's; the audit names the local id."""
    owner = _owner(conn)
    conn.execute(
        "CREATE SCHEMA lshop;"
        "CREATE TABLE lshop.person (pid serial PRIMARY KEY, mail text, ver integer,"
        " remark text);"
        f'GRANT USAGE ON SCHEMA lshop TO "{owner}";'
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON lshop.person TO "{owner}";'
        f'GRANT USAGE ON SEQUENCE lshop.person_pid_seq TO "{owner}"'
    )
    conn.commit()
    _install(
        conn,
        {
            "format": 1,
            "customer": {
                "schema": "lshop",
                "table": "person",
                "key": "pid",
                "key_generate": "default",
                "number": "link",
                "version": {"column": "ver"},
                "columns": {"mail": "email"},
            },
            "not_stored": {"fields": _not_stored("email")},
        },
    )
    number, mail = _number(), f"{_word()}@example.nl"
    stage(conn, [upserted(number, 1, email=_word())])
    conn.execute("UPDATE lshop.person SET remark = 'the shop''s'")
    conn.commit()
    stage(conn, [upserted(number, 3, email=mail)])
    stale = [upserted(number, 2, email=_word())]
    stage(conn, stale)
    assert _outcomes(conn, stale) == [("skipped", "stale")]
    person = conn.execute(
        "SELECT p.pid, p.mail, p.ver, p.remark FROM lshop.person AS p"
        " JOIN sync.customer_link AS l ON l.customer_key = p.pid::text"
        " WHERE l.customer_number = %s",
        [number],
    ).fetchone()
    assert person is not None and person[1:] == (mail, 3, "the shop's")
    assert conn.execute("SELECT count(*) FROM lshop.person").fetchone() == (1,)
    assert conn.execute(
        "SELECT DISTINCT customer_id FROM sync.audit WHERE customer_number = %s"
        " AND outcome = 'applied'",
        [number],
    ).fetchall() == [(person[0],)]
    # the shop deletes the customer row itself: tritonX's next snapshot creates it again and
    # the link moves to the new row (it was a dead letter: the dead link row held the number)
    conn.execute("DELETE FROM lshop.person WHERE pid = %s", [person[0]])
    conn.commit()
    again = [upserted(number, 4, email=mail)]
    stage(conn, again)
    assert _outcomes(conn, again) == [("applied", "created")]
    moved = conn.execute(
        "SELECT p.pid, p.ver FROM lshop.person AS p"
        " JOIN sync.customer_link AS l ON l.customer_key = p.pid::text"
        " WHERE l.customer_number = %s",
        [number],
    ).fetchone()
    assert moved is not None and moved[0] != person[0] and moved[1] == 4


def test_only_the_owner_installs_a_mapping(conn: psycopg.Connection[Any]) -> None:
    """Not even a superuser: what it created would not be the owner's."""
    with pytest.raises(psycopg.Error) as refused:
        conn.execute(
            "SELECT sync.install_mapping(document, 'x') FROM sync.mapping_version WHERE active"
        )
    conn.rollback()
    assert refused.value.sqlstate == "SY024"


def test_an_upgrade_recompiles_the_active_mapping_and_keeps_its_version(
    mapped: psycopg.Connection[Any],
) -> None:
    conn = mapped
    versions = "SELECT version, sha256, active FROM sync.mapping_version ORDER BY version"
    audit = "SELECT count(*) FROM sync.audit"
    before = (conn.execute(versions).fetchall(), conn.execute(audit).fetchone())
    conn.execute("DROP FUNCTION syncmap.snapshot_defect(jsonb)")
    owner = _owner(conn)
    conn.execute(f'SET ROLE "{owner}"')
    conn.execute(ROOT.joinpath("sql", "96_mapping_recompile.sql").read_text(encoding="utf-8"))
    conn.execute("RESET ROLE")
    conn.commit()
    assert (conn.execute(versions).fetchall(), conn.execute(audit).fetchone()) == before
    # the test's own mapping is still the active one, and its code is whole again
    assert conn.execute(
        "SELECT to_regprocedure('syncmap.snapshot_defect(jsonb)') IS NOT NULL,"
        " pg_get_viewdef('syncmap.customer_map'::regclass) LIKE '%tshop.client%'"
    ).fetchone() == (True, True)


@pytest.mark.parametrize(
    ("path", "place"),
    [
        ("customer.create.is_blocked", {"create": {"segment": "retail", "is_blocked": "YES"}}),
        ("customer.columns.sex", {"columns": {"sex": {"field": "gender", "other": "unknown"}}}),
    ],
)
def test_a_literal_that_does_not_fit_its_column_is_refused(
    mapped: psycopg.Connection[Any], path: str, place: dict[str, Any]
) -> None:
    conn = mapped
    broken = {**MAPPING, "customer": {**MAPPING["customer"], **place}}
    defects = conn.execute(
        "SELECT path, problem FROM sync.mapping_defects(%s)", [Jsonb(broken)]
    ).fetchall()
    paths = [d[0] for d in defects if not d[1].startswith("warning: ")]
    assert any(p == path or p.startswith(f"{path}.") for p in paths), paths
    with pytest.raises(psycopg.Error) as refused:
        _install(conn, broken)
    assert refused.value.sqlstate == "SY060"


def test_related_rows_that_point_to_the_customer_one_per_kind(
    conn: psycopg.Connection[Any],
) -> None:
    owner = _owner(conn)
    conn.execute(
        "CREATE SCHEMA kshop;"
        "CREATE TABLE kshop.customer (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " nr text UNIQUE, v integer, mail text);"
        "CREATE TABLE kshop.contact (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " customer_id bigint NOT NULL REFERENCES kshop.customer (id), kind text NOT NULL,"
        " phone varchar(32), source text NOT NULL, UNIQUE (customer_id, kind));"
        f'GRANT USAGE ON SCHEMA kshop TO "{owner}";'
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA kshop TO "{owner}";'
        f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA kshop TO "{owner}"'
    )
    conn.commit()

    def contact(kind: str, field: str) -> dict[str, Any]:
        return {
            "name": kind,
            "schema": "kshop",
            "table": "contact",
            "key": "id",
            "key_generate": "identity",
            "via": {"column": "customer_id", "kind": {"column": "kind", "value": kind}},
            "on_anonymise": "scrub_or_detach",
            "columns": {"phone": field},
            "create": {"source": "tritonx"},
        }

    _install(
        conn,
        {
            "format": 1,
            "customer": {
                "schema": "kshop",
                "table": "customer",
                "key": "id",
                "key_generate": "identity",
                "number": {"column": "nr"},
                "version": {"column": "v"},
                "columns": {"mail": "email"},
            },
            "related": [contact("mobile", "mobile"), contact("home", "phone")],
            "not_stored": {"fields": _not_stored("email", "mobile", "phone")},
        },
    )
    number = _number()
    stage(conn, [upserted(number, 1, mobile="+31 6 1", phone="+31 20 1")])
    rows = "SELECT kind, phone, source, id FROM kshop.contact ORDER BY kind"
    first = conn.execute(rows).fetchall()
    assert [r[:3] for r in first] == [
        ("home", "+31 20 1", "tritonx"),
        ("mobile", "+31 6 1", "tritonx"),
    ]
    conn.execute(
        "INSERT INTO kshop.contact (customer_id, kind, phone, source)"
        " SELECT id, 'work', '+31 30 9', 'shop' FROM kshop.customer"
    )
    conn.execute("UPDATE kshop.contact SET source = 'checked' WHERE kind = 'home'")
    conn.execute("DELETE FROM kshop.contact WHERE kind = 'mobile'")
    conn.commit()
    stage(conn, [upserted(number, 2, mobile="+31 6 2", phone="+31 20 2")])
    second = conn.execute(rows).fetchall()
    assert [r[:3] for r in second] == [
        ("home", "+31 20 2", "checked"),
        ("mobile", "+31 6 2", "tritonx"),
        ("work", "+31 30 9", "shop"),
    ]
    assert second[0][3] == first[0][3], "the home row is updated in place"


def test_a_customer_is_named_by_its_key_as_text(mapped: psycopg.Connection[Any]) -> None:
    """The generated accessors the generic steps use: number to key and back, and the lock."""
    conn = mapped
    number = _number()
    records = [upserted(number, 1, **_fields())]
    stage(conn, records)
    assert [o[0] for o in _outcomes(conn, records)] == ["applied"]
    key = conn.execute("SELECT syncmap.key_of(%s)", [number]).fetchone()
    assert key is not None and key[0] is not None
    assert conn.execute("SELECT syncmap.number_of(%s)", [key[0]]).fetchone() == (number,)
    assert conn.execute("SELECT syncmap.key_of('TX99999999')").fetchone() == (None,)
    conn.execute("SELECT syncmap.lock_customers(ARRAY[%s])", [key[0]])
    locks = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND granted"
        " AND pid = pg_backend_pid()"
    ).fetchone()
    assert locks == (1,), "the row lock took the transaction's id"
    conn.rollback()
