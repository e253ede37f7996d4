"""sync.mapping_defects against the live catalog: the reference shop's mapping fits a fresh
install; on a schema of the test's own (quoted mixed-case names, a uuid key, NOT NULL shop
columns, an address table the customer row points to, a reference without a foreign key) a
correct mapping has no defect and each kind of mistake is reported at its key path."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from syncctl import mapping

Document = dict[str, Any]

SCHEMA = """
CREATE SCHEMA "CrmTest";
CREATE TABLE "CrmTest"."CustomerAddress" (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    street      text,
    postcode    varchar(10),
    city        text,
    country     char(2),
    created_by  text NOT NULL
);
CREATE TABLE "CrmTest"."Customer" (
    customer_uuid uuid PRIMARY KEY,
    tx_ref        varchar(32) UNIQUE,
    tx_version    integer,
    old_ref       text,
    short_ref     varchar(12) UNIQUE,
    email         varchar(254),
    "Full Name"   text,
    sex           char(1),
    is_blocked    smallint NOT NULL,
    newsletter    char(1) NOT NULL,
    birthday      date,
    phone2        text,
    born          text,
    short_name    varchar(20),
    legacy_code   integer,
    email_lower   text GENERATED ALWAYS AS (lower(email)) STORED,
    segment       text NOT NULL,
    shop_id       integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    address_id    bigint REFERENCES "CrmTest"."CustomerAddress" (id)
);
CREATE TABLE "CrmTest"."Order" (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_uuid uuid NOT NULL REFERENCES "CrmTest"."Customer" (customer_uuid)
);
CREATE TABLE "CrmTest"."Review" (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_ref  uuid,
    legacy_ref    integer
);
"""

CORRECT: Document = {
    "format": 1,
    "customer": {
        "schema": "CrmTest",
        "table": "Customer",
        "key": "customer_uuid",
        "key_generate": "uuid",
        "number": {"column": "tx_ref"},
        "version": {"column": "tx_version"},
        "columns": {
            "email": "email",
            "Full Name": {"join": ["first_name", "infix", "last_name"]},
            "sex": {"field": "gender", "codes": {"M": "m", "F": "f"}, "other": "u"},
            "is_blocked": {"field": "blocked", "true": 1, "false": 0, "null_as": 0},
            "newsletter": {
                "field": "newsletter_opt_in",
                "true": "J",
                "false": "N",
                "null_as": "N",
            },
            "birthday": {"field": "birth_date"},
            "phone2": {"first_of": ["mobile", "phone"]},
            "born": {"field": "birth_date", "format": "YYYYMMDD"},
        },
        "create": {"segment": "retail", "shop_id": 1},
    },
    "related": [
        {
            "name": "address",
            "schema": "CrmTest",
            "table": "CustomerAddress",
            "key": "id",
            "key_generate": "identity",
            "via": {"customer_column": "address_id"},
            "on_anonymise": "scrub_or_detach",
            "columns": {
                "street": {"join": ["street", "house_number", "house_number_addition"]},
                "postcode": "postcode",
                "city": "city",
                "country": "country_code",
            },
            "create": {"created_by": "syncctl"},
        }
    ],
    "reference": [{"schema": "CrmTest", "table": "Review", "column": "customer_ref"}],
    "not_stored": {"fields": ["home_store", "customer_group", "loyalty_card", "updated_at"]},
}

Defects = set[tuple[str, str]]


@pytest.fixture
def owner(conn: psycopg.Connection[Any]) -> str:
    """The owner role, with every privilege the mapping needs on the test's schema, and its
    orders declared kept for bookkeeping."""
    conn.execute(SCHEMA)
    row = conn.execute("SELECT sync.role_name('owner')").fetchone()
    assert row is not None
    role: str = row[0]
    conn.execute(f'GRANT USAGE ON SCHEMA "CrmTest" TO {role}')
    conn.execute(
        f'GRANT SELECT, INSERT, UPDATE, DELETE, TRIGGER ON ALL TABLES IN SCHEMA "CrmTest" TO {role}'
    )
    conn.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "CrmTest" TO {role}')
    # the schema's orders are kept for bookkeeping (else the check warns of them)
    conn.execute(
        "INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)"
        " VALUES ('CrmTest', 'Order', 'scrub', true)"
    )
    conn.commit()
    return role


@pytest.fixture
def check(conn: psycopg.Connection[Any], owner: str) -> Callable[[Document], Defects]:
    def defects(document: Document) -> Defects:
        rows = conn.execute(
            "SELECT path, problem FROM sync.mapping_defects(%s)", [Jsonb(document)]
        ).fetchall()
        return {(path, problem) for path, problem in rows}

    return defects


def changed(change: Callable[[Document], object]) -> Document:
    document = copy.deepcopy(CORRECT)
    change(document)
    return document


def reported(defects: Defects, path: str, *words: str) -> bool:
    return any(p == path and all(w in problem for w in words) for p, problem in defects)


def test_the_reference_mapping_fits_a_fresh_install(conn: psycopg.Connection[Any]) -> None:
    reference = mapping.load(mapping.REFERENCE)
    rows = conn.execute(
        "SELECT path, problem FROM sync.mapping_defects(%s)", [Jsonb(reference.document)]
    ).fetchall()
    assert rows == []


def test_a_correct_mapping_of_a_mixed_case_schema_has_no_defect(
    check: Callable[[Document], Defects],
) -> None:
    assert check(CORRECT) == set()


def test_a_missing_table_and_a_missing_column_are_named(
    check: Callable[[Document], Defects],
) -> None:
    missing_table = check(changed(lambda d: d["related"][0].update(table="customeraddress")))
    assert reported(missing_table, "related[0].table", '"CrmTest".customeraddress', "not exist")
    missing_schema = check(changed(lambda d: d["customer"].update(schema="crmtest")))
    assert reported(missing_schema, "customer.schema", "crmtest does not exist")
    missing_column = check(changed(lambda d: d["customer"]["columns"].update(Email="email")))
    assert reported(missing_column, "customer.columns.Email", "has no column", '"Email"')
    decided = changed(lambda d: d["customer"]["create"].update(nickname="x"))
    assert reported(check(decided), "customer.create.nickname", "has no column")


def test_an_unsupported_key_type_and_a_key_generate_that_does_not_fit(
    check: Callable[[Document], Defects],
) -> None:
    dated = check(changed(lambda d: d["customer"].update(key="birthday")))
    assert reported(dated, "customer.key", "key type date is not supported")
    assert reported(dated, "customer.key", "no unique index")
    identity = check(changed(lambda d: d["customer"].update(key_generate="identity")))
    assert reported(identity, "customer.key_generate", "customer_uuid is not an identity column")
    default = check(changed(lambda d: d["customer"].update(key_generate="default")))
    assert reported(default, "customer.key_generate", "has no default")
    sequence = check(
        changed(lambda d: d["customer"].update(key_generate="sequence", key_sequence="a.b"))
    )
    assert reported(sequence, "customer.key_generate", "a sequence makes integers")
    assert reported(sequence, "customer.key_sequence", "does not exist")
    related = check(changed(lambda d: d["related"][0].update(key_generate="uuid")))
    assert reported(related, "related[0].key_generate", "identity column")


def test_number_and_version_columns(check: Callable[[Document], Defects]) -> None:
    number = check(changed(lambda d: d["customer"].update(number={"column": "old_ref"})))
    assert reported(number, "customer.number.column", "old_ref has no unique index")
    typed = check(changed(lambda d: d["customer"].update(number={"column": "legacy_code"})))
    assert reported(typed, "customer.number.column", "legacy_code is integer")
    version = check(changed(lambda d: d["customer"].update(version={"column": "segment"})))
    assert reported(version, "customer.version.column", "segment is text", "integer or bigint")
    narrow = check(changed(lambda d: d["customer"].update(number={"column": "short_ref"})))
    assert narrow == {
        (
            "customer.number.column",
            "warning: short_ref is character varying(12) but a tritonX number can be 32 "
            "characters long; a customer with a longer one is a dead letter",
        )
    }
    linked = changed(lambda d: d["customer"].update(number="link", version="link"))
    assert check(linked) == set()


def test_every_field_is_decided_exactly_once(check: Callable[[Document], Defects]) -> None:
    undecided = check(changed(lambda d: d["not_stored"]["fields"].remove("home_store")))
    assert undecided == {
        (
            "not_stored.fields",
            "home_store is not decided: map it in a columns table or list it here",
        )
    }
    twice = check(changed(lambda d: d["not_stored"]["fields"].append("email")))
    assert reported(twice, "not_stored.fields", "email is decided twice")
    unknown = check(changed(lambda d: d["customer"]["columns"].update(born={"field": "dob"})))
    assert reported(unknown, "customer.columns.born", "dob is not a snapshot field")


def test_a_literal_that_does_not_cast_names_the_type_not_the_value(
    check: Callable[[Document], Defects],
) -> None:
    secret = "Jansen-4711"
    defects = check(changed(lambda d: d["customer"]["create"].update(shop_id=secret)))
    assert reported(defects, "customer.create.shop_id", "does not cast to integer")
    out = check(changed(lambda d: d["customer"]["columns"]["is_blocked"].update(true=secret)))
    assert reported(out, "customer.columns.is_blocked.true", "does not cast to smallint")
    long = check(
        changed(
            lambda d: d["related"][0]["columns"].update(
                country={"field": "country_code", "null_as": secret}
            )
        )
    )
    assert reported(long, "related[0].columns.country.null_as", "longer than character(2)")
    assert not any(secret in problem for _, problem in defects | out | long)


def test_a_field_that_does_not_cast_and_a_transform_of_the_wrong_shape(
    check: Callable[[Document], Defects],
) -> None:
    dated = check(changed(lambda d: d["customer"]["columns"].update(legacy_code="updated_at")))
    assert reported(
        dated,
        "customer.columns.legacy_code",
        "updated_at is timestamp with time zone",
        "does not cast to integer",
    )
    joined = check(
        changed(
            lambda d: d["customer"]["columns"].update(
                legacy_code={"join": ["infix"], "codes": {"a": 1}}
            )
        )
    )
    assert reported(joined, "customer.columns.legacy_code.codes", "not a key of a join")
    assert reported(joined, "customer.columns.legacy_code", "join makes text")
    generated = check(changed(lambda d: d["customer"]["columns"].update(email_lower="email")))
    assert reported(generated, "customer.columns.email_lower", "generated column")
    key = check(changed(lambda d: d["customer"]["columns"].update(tx_ref="email")))
    assert reported(key, "customer.columns.tx_ref", "engine writes it itself")


def test_a_short_varchar_column_is_a_warning(check: Callable[[Document], Defects]) -> None:
    defects = check(changed(lambda d: d["customer"]["columns"].update(short_name="first_name")))
    assert defects == {
        (
            "customer.columns.short_name",
            "warning: the column is character varying(20) but first_name can be 100 characters "
            "long; a longer value is a dead letter",
        )
    }


def test_a_short_varchar_column_for_a_timestamp_is_a_warning(
    check: Callable[[Document], Defects],
) -> None:
    """A timestamp field written into a text column is its text form, up to 35 characters."""

    def short_updated_at(d: Document) -> None:
        d["customer"]["columns"].update(short_name="updated_at")
        d["not_stored"]["fields"].remove("updated_at")

    defects = check(changed(short_updated_at))
    assert defects == {
        (
            "customer.columns.short_name",
            "warning: the column is character varying(20) but updated_at can be 35 characters "
            "long; a longer value is a dead letter",
        )
    }


def test_not_null_columns_without_a_source_are_named(
    check: Callable[[Document], Defects],
) -> None:
    defects = check(
        changed(lambda d: (d["customer"]["create"].pop("segment"), d["related"][0].pop("create")))
    )
    assert reported(defects, "customer.create", "NOT NULL column segment")
    assert reported(defects, "related[0].create", "NOT NULL column created_by")
    assert len(defects) == 2


def test_a_table_no_tritonx_field_feeds_takes_no_create_values(
    check: Callable[[Document], Defects],
) -> None:
    """A table the customer row points to with no columns is the shop's (the write leaves it
    alone): create values would never be written. Before, such a mapping passed the check and
    failed to install (the generated write's UPDATE had nothing to set)."""
    assert "customer_column" in json.dumps(changed(lambda d: None)["related"][0]["via"])
    defects = check(changed(lambda d: d["related"][0].pop("columns")))
    assert reported(defects, "related[0].create", "is never written")
    assert not [d for d in defects if d[0].startswith("related[0].create") and "NOT NULL" in d[1]]


def test_a_via_column_and_a_reference_of_the_wrong_type(
    check: Callable[[Document], Defects],
) -> None:
    via = check(changed(lambda d: d["related"][0].update(via={"customer_column": "shop_id"})))
    assert reported(via, "related[0].via.customer_column", "shop_id is integer", "bigint")
    reference = check(changed(lambda d: d["reference"][0].update(column="legacy_ref")))
    assert reported(reference, "reference[0].column", "legacy_ref is integer", "uuid")


def test_a_related_table_that_points_to_the_customer_per_kind(
    conn: psycopg.Connection[Any], owner: str, check: Callable[[Document], Defects]
) -> None:
    conn.execute(
        'CREATE TABLE "CrmTest"."Phone" (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,'
        ' customer_uuid uuid NOT NULL REFERENCES "CrmTest"."Customer", kind text NOT NULL,'
        " number varchar(32))"
    )
    conn.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON "CrmTest"."Phone" TO {owner}')
    conn.execute(f'GRANT USAGE ON SEQUENCE "CrmTest"."Phone_id_seq" TO {owner}')
    phone: Document = {
        "name": "mobile",
        "schema": "CrmTest",
        "table": "Phone",
        "key": "id",
        "key_generate": "identity",
        "via": {"column": "customer_uuid", "kind": {"column": "kind", "value": "mobile"}},
        "on_anonymise": "scrub_or_detach",
        "columns": {"number": "mobile"},
    }
    assert check(changed(lambda d: d["related"].append(phone))) == set()
    unlinked = copy.deepcopy(phone)
    unlinked.update(table="Review", via={"column": "customer_ref"}, columns={})
    warned = check(changed(lambda d: d["related"].append(unlinked)))
    assert reported(
        warned, "related[1].via.column", "warning: no foreign key from", '"Review" (customer_ref)'
    )
    kind = copy.deepcopy(phone)
    kind["via"]["kind"]["column"] = "sort"
    assert reported(
        check(changed(lambda d: d["related"].append(kind))),
        "related[1].via.kind.column",
        "has no column sort",
    )
    pointer = copy.deepcopy(phone)
    pointer["columns"] = {"kind": "phone"}
    assert reported(
        check(changed(lambda d: d["related"].append(pointer))),
        "related[1].columns.kind",
        "the engine writes it itself",
    )


def test_a_missing_privilege_is_reported_with_its_grant(
    conn: psycopg.Connection[Any], owner: str, check: Callable[[Document], Defects]
) -> None:
    conn.execute(f'REVOKE DELETE ON "CrmTest"."Review" FROM {owner}')
    conn.execute(f'REVOKE UPDATE ON "CrmTest"."Order" FROM {owner}')
    conn.execute(f'REVOKE USAGE ON SCHEMA "CrmTest" FROM {owner}')
    assert check(CORRECT) >= {
        (
            "reference[0].table",
            f'{owner} lacks DELETE on "CrmTest"."Review": '
            f'GRANT DELETE ON TABLE "CrmTest"."Review" TO {owner};',
        ),
        (
            "customer.table",
            f'{owner} lacks UPDATE on "CrmTest"."Order" (it references the customer table): '
            f'GRANT UPDATE ON TABLE "CrmTest"."Order" TO {owner};',
        ),
        ("customer.schema", f'{owner} lacks USAGE: GRANT USAGE ON SCHEMA "CrmTest" TO {owner};'),
    }


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {"customer": 1},
        {"customer": {"schema": 1, "table": [], "columns": 3, "create": "x", "number": 5}},
        {"format": 1, "customer": {}, "related": [1, {"via": 2}], "reference": [3, {}]},
        {"format": 1, "customer": {"schema": "shop"}, "not_stored": {"fields": [1, None]}},
        changed(lambda d: d["related"][0].update(via={"column": None, "kind": {"value": []}})),
        changed(lambda d: d["customer"]["columns"].update(email={"field": None, "codes": []})),
    ],
)
def test_a_malformed_document_gives_rows_never_an_error(
    check: Callable[[Document], Defects], document: Any
) -> None:
    assert check(document)
