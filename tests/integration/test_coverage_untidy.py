"""Discovery and coverage on an untidy shop schema: customer references without a foreign key
(declared in the mapping, on a partitioned table in a schema with a quoted mixed-case name),
columns that look like customer references but are neither linked nor declared, a customer
column without an index, a linked table the owner role may not write, and a trigger whose code
another role controls. Each is a coverage defect of its own kind naming table and column; a
declared reference is merged, anonymised and exported like a foreign key.

The tests declare references by writing the active mapping's document in sync.mapping_version
directly, as the owner role: the mapping installer is not what they are about."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from syncctl import engine, gdpr
from syncctl.cli.engine import coverage
from tests.feed import event, stage, upserted

ARCHIVE = '"Sales"."OrderArchive"'
ARCHIVE_NAME = "Sales.OrderArchive"


def _owner(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT sync.role_name('owner')").fetchone()
    assert row is not None
    return str(row[0])


def _declare(conn: psycopg.Connection[Any], as_role: Any, *references: dict[str, str]) -> None:
    """The active mapping with these [[reference]] entries, written as the owner role (the
    mapping installer belongs to another part of the engine)."""
    conn.commit()
    owner = as_role(_owner(conn))
    owner.execute(
        "UPDATE sync.mapping_version SET document = document || jsonb_build_object("
        "'reference', %s::jsonb) WHERE active",
        [Jsonb(list(references))],
    )


def _defects(conn: psycopg.Connection[Any], kind: str) -> list[tuple[str, str | None, str]]:
    return [(d.table, d.column, d.defect) for d in engine.coverage_defects(conn) if d.kind == kind]


def _id(conn: psycopg.Connection[Any], number: str) -> int:
    row = conn.execute(
        "SELECT id FROM shop.customer WHERE customer_number = %s", [number]
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def other_role(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """A role of the shop's (its DBA, or the shop application's login) that is not syncctl's."""
    role = "shop_dba_" + secrets.token_hex(4)
    conn.execute(f"CREATE ROLE {role} NOLOGIN")
    conn.commit()
    try:
        yield role
    finally:
        conn.rollback()
        conn.execute(f"DROP OWNED BY {role} CASCADE")
        conn.execute(f"DROP ROLE {role}")
        conn.commit()


def _archive(conn: psycopg.Connection[Any]) -> None:
    """Orders archived by month in a partitioned table of the schema "Sales": a customer
    reference "CustomerRef" with no foreign key (none can be declared on it here), indexed."""
    owner = _owner(conn)
    conn.execute('CREATE SCHEMA "Sales"')
    conn.execute(
        f"CREATE TABLE {ARCHIVE} (id bigint GENERATED ALWAYS AS IDENTITY,"
        ' "CustomerRef" bigint NOT NULL, placed_on date NOT NULL, "DeliveryNote" text,'
        " PRIMARY KEY (id, placed_on)) PARTITION BY RANGE (placed_on)"
    )
    for month in ("01", "02"):
        conn.execute(
            f'CREATE TABLE "Sales"."OrderArchive_2026_{month}" PARTITION OF {ARCHIVE}'
            f" FOR VALUES FROM ('2026-{month}-01') TO ('2026-{int(month) + 1:02d}-01')"
        )
    conn.execute(f'CREATE INDEX ON {ARCHIVE} ("CustomerRef")')
    conn.execute(f'GRANT USAGE ON SCHEMA "Sales" TO {owner}')
    conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {ARCHIVE} TO {owner}")
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
        " VALUES ('Sales', 'OrderArchive', 'id', 'not_personal'),"
        " ('Sales', 'OrderArchive', 'CustomerRef', 'not_personal'),"
        " ('Sales', 'OrderArchive', 'placed_on', 'not_personal'),"
        " ('Sales', 'OrderArchive', 'DeliveryNote', 'null')"
    )
    conn.commit()


def _archived(conn: psycopg.Connection[Any], customer_id: int, on: str, note: str) -> None:
    conn.execute(
        f'INSERT INTO {ARCHIVE} ("CustomerRef", placed_on, "DeliveryNote") VALUES (%s, %s, %s)',
        [customer_id, on, note],
    )


DECLARED = {"schema": "Sales", "table": "OrderArchive", "column": "CustomerRef"}


def test_a_declared_reference_is_a_customer_link(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    _archive(conn)
    # undeclared, the column looks like a customer reference: coverage lists it
    assert _defects(conn, "look_alike") == [
        (
            ARCHIVE,
            "CustomerRef",
            "looks like a customer reference but has no foreign key to shop.customer.id and is"
            " not declared: declare it ([[reference]] in the mapping) or record it in"
            " sync.not_a_reference",
        )
    ]
    _declare(conn, as_role, DECLARED)

    links = conn.execute(
        "SELECT qualified_name, fk_column, constraint_name, known_by FROM sync.customer_links()"
        " WHERE table_schema = 'Sales'"
    ).fetchall()
    assert links == [(ARCHIVE_NAME, "CustomerRef", None, "declared")]
    fk = conn.execute(
        "SELECT known_by FROM sync.customer_links() WHERE qualified_name = 'shop.orders'"
    ).fetchall()
    assert fk == [("foreign_key",)]
    assert engine.coverage_defects(conn) == []


def test_a_declared_reference_is_merged_anonymised_and_exported_in_every_partition(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    _archive(conn)
    _declare(conn, as_role, DECLARED)
    # the next month's partition, created after the declaration
    conn.execute(
        f'CREATE TABLE "Sales"."OrderArchive_2026_03" PARTITION OF {ARCHIVE}'
        " FOR VALUES FROM ('2026-03-01') TO ('2026-04-01')"
    )
    stage(conn, [upserted("TX00000801", 1), upserted("TX00000802", 1)])
    old, survivor = _id(conn, "TX00000801"), _id(conn, "TX00000802")
    notes = {on: secrets.token_hex(12) for on in ("2026-01-15", "2026-02-15", "2026-03-15")}
    for on, note in notes.items():
        _archived(conn, old, on, note)
    conn.commit()

    outcome = stage(conn, [event("customer.merged", "TX00000801", 2, into="TX00000802")])

    assert outcome.states == {"applied": 1}
    assert conn.execute(
        f'SELECT tableoid::regclass::text, "CustomerRef" FROM {ARCHIVE} ORDER BY placed_on'
    ).fetchall() == [
        ('"Sales"."OrderArchive_2026_01"', survivor),
        ('"Sales"."OrderArchive_2026_02"', survivor),
        ('"Sales"."OrderArchive_2026_03"', survivor),
    ]
    counts = conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'customer.merged'"
    ).fetchone()
    assert counts is not None and counts[0][ARCHIVE_NAME] == 3

    data = gdpr.subject_data(conn, number="TX00000802")
    assert sorted(r["DeliveryNote"] for r in data.tables[ARCHIVE]) == sorted(notes.values())
    hits = conn.execute(
        "SELECT column_name, hits FROM gdpr.residue_search(%s::text[], %s)"
        " WHERE column_name LIKE 'Sales.%%'",
        [[gdpr_digest(conn, n) for n in notes.values()], survivor],
    ).fetchall()
    assert hits == [("Sales.OrderArchive.DeliveryNote", 3)]

    outcome = stage(conn, [event("customer.anonymized", "TX00000802", 2, reason_code="AVG")])

    assert outcome.states == {"applied": 1}
    assert (
        conn.execute(
            f'SELECT "CustomerRef", "DeliveryNote" FROM {ARCHIVE} ORDER BY placed_on'
        ).fetchall()
        == [(survivor, None)] * 3
    )


def gdpr_digest(conn: psycopg.Connection[Any], value: str) -> str:
    row = conn.execute("SELECT gdpr._digest(%s)", [value]).fetchone()
    assert row is not None
    return str(row[0])


def test_declared_references_that_do_not_resolve_are_defects(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    _archive(conn)
    conn.execute('ALTER TABLE "Sales"."OrderArchive" ADD COLUMN "ShortRef" integer')
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
        " VALUES ('Sales', 'OrderArchive', 'ShortRef', 'not_personal')"
    )
    _declare(
        conn,
        as_role,
        DECLARED,
        {"schema": "Sales", "table": "Gone", "column": "CustomerRef"},
        {"schema": "Sales", "table": "OrderArchive", "column": "customerref"},
        {"schema": "Sales", "table": "OrderArchive", "column": "ShortRef"},
    )

    assert _defects(conn, "declared_reference") == [
        (
            '"Sales"."Gone"',
            "CustomerRef",
            "declared reference (reference[1]): table does not exist",
        ),
        (
            ARCHIVE,
            "ShortRef",
            "declared reference (reference[3]): column is integer, the customer key"
            " shop.customer.id is bigint",
        ),
        (
            ARCHIVE,
            "customerref",
            "declared reference (reference[2]): column does not exist",
        ),
    ]
    linked = conn.execute(
        "SELECT fk_column FROM sync.customer_links() WHERE table_schema = 'Sales'"
    ).fetchall()
    assert linked == [("CustomerRef",)]


def test_a_related_table_pointing_to_the_customer_without_a_foreign_key_is_linked(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    """A [[related]] table that points to the customer (`via.column`) holds one customer's
    rows like any linked table: without a foreign key, its declaration links it."""
    owner = _owner(conn)
    conn.execute("CREATE SCHEMA crm")
    conn.execute(
        'CREATE TABLE crm."Address" (id bigint PRIMARY KEY, owner_ref bigint, kind text,'
        " street text)"
    )
    conn.execute('CREATE INDEX ON crm."Address" (owner_ref)')
    conn.execute(f"GRANT USAGE ON SCHEMA crm TO {owner}")
    conn.execute(f'GRANT SELECT, UPDATE, DELETE ON crm."Address" TO {owner}')
    conn.commit()
    related = [
        {"name": "gone", "schema": "crm", "table": "Gone", "key": "id",
         "via": {"customer_column": "address_id"}},
        {"name": "address", "schema": "crm", "table": "Address", "key": "id",
         "via": {"column": "owner_ref", "kind": {"column": "kind", "value": "home"}}},
    ]  # fmt: skip
    as_role(owner).execute(
        "UPDATE sync.mapping_version SET document = document || jsonb_build_object("
        "'related', %s::jsonb) WHERE active",
        [Jsonb(related)],
    )

    assert conn.execute(
        "SELECT qualified_name, fk_column, known_by FROM sync.customer_links()"
        " WHERE table_schema = 'crm'"
    ).fetchall() == [("crm.Address", "owner_ref", "declared")]
    # the customer row pointing to the related row is no reference to the customer
    assert _defects(conn, "declared_reference") == []
    conn.execute('ALTER TABLE crm."Address" ALTER COLUMN owner_ref TYPE text')
    assert _defects(conn, "declared_reference") == [
        (
            'crm."Address"',
            "owner_ref",
            "declared reference (related[1].via.column): column is text, the customer key"
            " shop.customer.id is bigint",
        )
    ]


def test_a_look_alike_column_is_listed_until_it_is_marked_not_a_reference(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute("CREATE SCHEMA crm")
    conn.execute(
        "CREATE TABLE crm.ticket (id bigint PRIMARY KEY, klant_nr bigint,"
        ' "ClientID" text, customer_id bigint, subject text)'
    )
    # a customer table of another system: its own number identifies its rows, it references
    # nothing; the same number as a plain column would be a reference
    conn.execute(
        "CREATE TABLE crm.contact (id bigint PRIMARY KEY, customer_number text UNIQUE,"
        " cust_no text)"
    )
    conn.execute("CREATE TABLE crm.agent (id bigint PRIMARY KEY, name text)")
    conn.execute("ALTER TABLE crm.ticket ADD FOREIGN KEY (customer_id) REFERENCES crm.agent (id)")
    conn.commit()

    assert [(t, c) for t, c, _ in _defects(conn, "look_alike")] == [
        ("crm.contact", "cust_no"),
        ("crm.ticket", "ClientID"),
        ("crm.ticket", "klant_nr"),
    ]
    conn.execute(
        "INSERT INTO sync.not_a_reference (table_schema, table_name, column_name)"
        " VALUES ('crm', 'ticket', 'klant_nr'), ('crm', 'ticket', 'ClientID'),"
        " ('crm', 'contact', 'cust_no')"
    )
    assert _defects(conn, "look_alike") == []


def test_an_unindexed_foreign_key_is_listed(conn: psycopg.Connection[Any]) -> None:
    owner = _owner(conn)
    conn.execute('CREATE SCHEMA "Loyalty"')
    conn.execute(
        'CREATE TABLE "Loyalty"."Stamp" (id bigint PRIMARY KEY,'
        ' "CustomerId" bigint REFERENCES shop.customer (id), at date)'
    )
    conn.execute(f'GRANT USAGE ON SCHEMA "Loyalty" TO {owner}')
    conn.execute(f'GRANT SELECT, UPDATE, DELETE ON "Loyalty"."Stamp" TO {owner}')
    conn.commit()

    assert _defects(conn, "unindexed") == [
        (
            '"Loyalty"."Stamp"',
            "CustomerId",
            "customer column has no index leading with it: a merge or delete scans the table"
            ' (CREATE INDEX ON "Loyalty"."Stamp" ("CustomerId");)',
        )
    ]
    conn.execute('CREATE INDEX ON "Loyalty"."Stamp" ("CustomerId")')
    assert _defects(conn, "unindexed") == []


def test_a_missing_privilege_is_listed_with_its_grant(
    conn: psycopg.Connection[Any], other_role: str, dsn: str
) -> None:
    owner = _owner(conn)
    conn.execute("CREATE SCHEMA crm")
    conn.execute(f"GRANT USAGE, CREATE ON SCHEMA crm TO {other_role}")
    conn.execute(f"GRANT USAGE ON SCHEMA shop TO {other_role}")
    conn.execute(f"GRANT REFERENCES ON shop.customer TO {other_role}")
    conn.execute(f"SET ROLE {other_role}")
    conn.execute(
        "CREATE TABLE crm.voucher (id bigint PRIMARY KEY,"
        " customer_id bigint REFERENCES shop.customer (id), code text)"
    )
    conn.execute("CREATE INDEX ON crm.voucher (customer_id)")
    conn.execute("RESET ROLE")
    conn.commit()

    assert _defects(conn, "privilege") == [
        (
            "crm.voucher",
            None,
            f"the owner role {owner} lacks USAGE on schema crm and SELECT, UPDATE, DELETE on"
            f" the table: GRANT USAGE ON SCHEMA crm TO {owner};"
            f" GRANT SELECT, UPDATE, DELETE ON TABLE crm.voucher TO {owner};",
        )
    ]
    conn.execute(f"GRANT USAGE ON SCHEMA crm TO {owner}")
    conn.execute(f"GRANT SELECT ON crm.voucher TO {owner}")
    assert _defects(conn, "privilege") == [
        (
            "crm.voucher",
            None,
            f"the owner role {owner} lacks UPDATE, DELETE on the table:"
            f" GRANT UPDATE, DELETE ON TABLE crm.voucher TO {owner};",
        )
    ]
    conn.commit()

    result = CliRunner().invoke(coverage, [], obj=SimpleNamespace(dsn=dsn))
    assert result.exit_code != 0
    assert f"GRANT UPDATE, DELETE ON TABLE crm.voucher TO {owner};" in result.output


def test_a_trigger_another_role_controls_is_listed(
    conn: psycopg.Connection[Any], other_role: str
) -> None:
    conn.execute(
        "CREATE FUNCTION public.touch_favourite() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN NEW.added_at := now(); RETURN NEW; END $$"
    )
    conn.execute(f"ALTER FUNCTION public.touch_favourite() OWNER TO {other_role}")
    conn.execute(
        'CREATE TRIGGER "Touch" BEFORE UPDATE ON shop.favourite'
        " FOR EACH ROW EXECUTE FUNCTION public.touch_favourite()"
    )
    # a built-in trigger function is PostgreSQL's own: not listed
    conn.execute(
        "CREATE TRIGGER skip_same BEFORE UPDATE ON shop.wishlist"
        " FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()"
    )
    conn.commit()

    assert _defects(conn, "trigger") == [
        (
            "shop.favourite",
            None,
            f'trigger "Touch" runs public.touch_favourite(), owned by role {other_role}, on'
            " UPDATE: it runs inside the engine's writes with the owner role's rights",
        )
    ]


def test_the_coverage_command_names_each_kind(conn: psycopg.Connection[Any], dsn: str) -> None:
    conn.execute("CREATE SCHEMA crm")
    conn.execute("CREATE TABLE crm.ticket (id bigint PRIMARY KEY, cust_id bigint)")
    conn.commit()

    result = CliRunner().invoke(coverage, [], obj=SimpleNamespace(dsn=dsn))

    assert result.exit_code != 0
    assert "crm.ticket.cust_id: looks like a customer reference" in result.output
    assert "1 look_alike" in result.output


def test_a_mapping_that_binds_nothing_is_a_defect(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    """Coverage never says "ok" while nothing is linked because the mapping binds no table."""
    conn.commit()
    owner = as_role(_owner(conn))
    owner.execute(
        "UPDATE sync.mapping_version"
        " SET document = jsonb_set(document, '{customer,table}', '\"Customer\"') WHERE active"
    )
    assert _defects(conn, "mapping") == [
        (
            'shop."Customer"',
            "id",
            "the active mapping (version 1) names a customer table or key that does not exist",
        )
    ]
    owner.execute("UPDATE sync.mapping_version SET active = false")
    assert _defects(conn, "mapping") == [
        ("sync.mapping_version", None, "no mapping is active: the engine has no customer table")
    ]
