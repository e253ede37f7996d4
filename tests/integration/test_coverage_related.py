"""Coverage of the tables the customer row points to: the mapping's [[related]] tables with
`via.customer_column`, such as the boutique's address table (crm."CustomerAddress", the customer's
address_id points to it). Their rows hold personal data and an anonymisation scrubs, detaches or
copies them, so coverage lists their columns without a PII strategy (the same list that makes
an anonymisation refuse), the privileges the engine needs on them (SELECT, INSERT, UPDATE,
DELETE) and SELECT on every table that refers to them (read to tell whether a row is shared),
each with its GRANT. A partition with a foreign key of its own to the customer (pagila's
payment) is still listed by itself, with the hint that a foreign key on the parent makes it one
table.

The boutique is installed, granted, classified and mapped as tests/integration/
test_anonymise_mapped.py does it (its fixture)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import psycopg
from click.testing import CliRunner

from syncctl import engine
from syncctl.cli.engine import coverage
from tests.integration import test_anonymise_mapped
from tests.shops.binding import PII

boutique = test_anonymise_mapped.boutique  # the boutique, granted, classified and mapped
ADDRESS = test_anonymise_mapped.ADDRESS
ADDRESS_NAME = "crm.CustomerAddress"  # the registry's qualified name
ADDRESS_SHOWN = 'crm."CustomerAddress"'  # as coverage names it
ADDRESS_PII = PII[("crm", "CustomerAddress")]
OWNER = "syncctl_owner"


def _defects(conn: psycopg.Connection[Any], kind: str) -> list[tuple[str, str | None, str]]:
    return [(d.table, d.column, d.defect) for d in engine.coverage_defects(conn) if d.kind == kind]


def _on(conn: psycopg.Connection[Any], kind: str, table: str) -> list[tuple[str | None, str]]:
    return [(column, defect) for t, column, defect in _defects(conn, kind) if t == table]


def _unclassify_the_address(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "DELETE FROM sync.pii_column WHERE table_schema = 'crm' AND table_name = 'CustomerAddress'"
    )
    conn.commit()


def _classify_the_address(conn: psycopg.Connection[Any]) -> None:
    for column, (strategy, value) in ADDRESS_PII.items():
        conn.execute(
            "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy, value)"
            " VALUES ('crm', 'CustomerAddress', %s, %s, %s)",
            [column, strategy, value],
        )
    conn.commit()


def test_the_address_table_is_a_customer_table_marked_as_pointed_to(
    boutique: psycopg.Connection[Any],
) -> None:
    tables = dict(boutique.execute("SELECT qualified_name, pointed_to FROM sync.customer_tables()"))
    assert tables == {
        "crm.customer": False,
        ADDRESS_NAME: True,
        "crm.favourite": False,
        "sales.Review": False,
        "sales.orders": False,
        # the engine's own: they hold the customer key as text, on any mapped schema
        "gdpr.consent": False,
        "gdpr.erasure_request": False,
    }


def test_the_address_tables_unclassified_columns_are_listed(
    boutique: psycopg.Connection[Any], dsn: str
) -> None:
    _unclassify_the_address(boutique)

    assert boutique.execute("SELECT * FROM sync.unclassified_columns()").fetchall() == [
        (ADDRESS_NAME, column) for column in ADDRESS_PII
    ]
    listed = _defects(boutique, "unclassified")
    assert [(t, c) for t, c, _ in listed] == [(ADDRESS_SHOWN, c) for c in sorted(ADDRESS_PII)]
    assert all(d.startswith("column has no PII strategy") for _, _, d in listed)
    result = CliRunner().invoke(coverage, [], obj=SimpleNamespace(dsn=dsn))
    assert result.exit_code != 0
    assert f"{ADDRESS_SHOWN}.street: column has no PII strategy" in result.output
    assert f"{len(ADDRESS_PII)} unclassified" in result.output

    _classify_the_address(boutique)
    assert _defects(boutique, "unclassified") == []
    assert boutique.execute("SELECT count(*) FROM sync.unclassified_columns()").fetchone() == (0,)


def test_the_refusal_counts_the_columns_coverage_lists(boutique: psycopg.Connection[Any]) -> None:
    """One definition: the anonymisation refuses for exactly the columns coverage lists."""
    test_anonymise_mapped._customer(boutique, "TX00000001", orders=False)
    _unclassify_the_address(boutique)
    assert boutique.execute("SELECT * FROM sync.anonymise_refusal('TX00000001')").fetchone() == (
        "SY022",
        f"anonymisation refused: {len(_defects(boutique, 'unclassified'))} column(s) have no"
        " PII strategy",
    )


def test_a_strategy_the_address_column_cannot_take_is_listed(
    boutique: psycopg.Connection[Any],
) -> None:
    boutique.execute(
        "UPDATE sync.pii_column SET strategy = 'null' WHERE table_schema = 'crm'"
        " AND table_name = 'CustomerAddress' AND column_name = 'created_by'"
    )
    boutique.commit()
    assert _on(boutique, "strategy", ADDRESS_SHOWN) == [
        ("created_by", "strategy null on a NOT NULL column")
    ]


def test_a_missing_privilege_on_the_address_table_is_listed_with_its_grant(
    boutique: psycopg.Connection[Any], dsn: str
) -> None:
    assert _on(boutique, "privilege", ADDRESS_SHOWN) == []
    boutique.execute(f"REVOKE INSERT, DELETE ON {ADDRESS} FROM {OWNER}")
    boutique.commit()
    assert _on(boutique, "privilege", ADDRESS_SHOWN) == [
        (
            None,
            f"the owner role {OWNER} lacks INSERT, DELETE on the table:"
            f" GRANT INSERT, DELETE ON TABLE {ADDRESS} TO {OWNER};",
        )
    ]
    boutique.execute(f"REVOKE ALL ON {ADDRESS} FROM {OWNER}")
    boutique.commit()
    assert _on(boutique, "privilege", ADDRESS_SHOWN) == [
        (
            None,
            f"the owner role {OWNER} lacks SELECT, INSERT, UPDATE, DELETE on the table:"
            f" GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {ADDRESS} TO {OWNER};",
        )
    ]
    result = CliRunner().invoke(coverage, [], obj=SimpleNamespace(dsn=dsn))
    assert result.exit_code != 0
    assert f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {ADDRESS} TO {OWNER};" in result.output

    boutique.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {ADDRESS} TO {OWNER}")
    boutique.commit()
    assert _on(boutique, "privilege", ADDRESS_SHOWN) == []


def test_select_on_a_table_referring_to_the_address_table_is_listed(
    boutique: psycopg.Connection[Any],
) -> None:
    """The engine reads every table that refers to the address to tell whether a row is shared
    (then it is detached or copied, never changed): SELECT there, and USAGE on its schema."""
    boutique.execute("CREATE SCHEMA logistics")
    boutique.execute(
        f"CREATE TABLE logistics.shipment (id bigint PRIMARY KEY,"
        f" address_id bigint REFERENCES {ADDRESS} (id), note text)"
    )
    boutique.commit()

    assert _on(boutique, "privilege", "logistics.shipment") == [
        (
            None,
            f"the owner role {OWNER} lacks USAGE on schema logistics and SELECT on the table"
            f" (it references the related table {ADDRESS}):"
            f" GRANT USAGE ON SCHEMA logistics TO {OWNER};"
            f" GRANT SELECT ON TABLE logistics.shipment TO {OWNER};",
        )
    ]
    boutique.execute(f"GRANT USAGE ON SCHEMA logistics TO {OWNER}")
    boutique.execute(f"GRANT SELECT ON logistics.shipment TO {OWNER}")
    boutique.commit()
    assert _on(boutique, "privilege", "logistics.shipment") == []
    # it only refers to the address: no classification, no index, nothing else asked
    assert [d for d in engine.coverage_defects(boutique) if d.table == "logistics.shipment"] == []


def test_a_trigger_on_the_address_table_is_listed(boutique: psycopg.Connection[Any]) -> None:
    """The engine inserts (a new customer's address, a scrubbed copy), updates and deletes
    address rows: a trigger another role's function runs there runs inside those writes."""
    boutique.execute(
        "CREATE FUNCTION crm.address_stamp() RETURNS trigger LANGUAGE plpgsql"
        " AS 'BEGIN RETURN NEW; END'"
    )
    boutique.execute(
        f"CREATE TRIGGER address_stamp BEFORE INSERT OR UPDATE ON {ADDRESS}"
        " FOR EACH ROW EXECUTE FUNCTION crm.address_stamp()"
    )
    boutique.commit()
    row = boutique.execute("SELECT current_user").fetchone()
    assert row is not None
    listed = _on(boutique, "trigger", ADDRESS_SHOWN)
    assert len(listed) == 1
    assert listed[0][1].startswith(
        f"trigger address_stamp runs crm.address_stamp(), owned by role {row[0]}, on INSERT, UPDATE"
    )


def _payment(conn: psycopg.Connection[Any]) -> list[engine.CoverageDefect]:
    """The payment table's defects but its look-alike (the parent's customer_uuid, without a
    foreign key while only the partitions have one)."""
    return [
        d
        for d in engine.coverage_defects(conn)
        if d.table.startswith("sales.payment") and d.kind != "look_alike"
    ]


def test_a_partition_with_a_foreign_key_of_its_own_says_a_parent_key_makes_it_one_table(
    boutique: psycopg.Connection[Any],
) -> None:
    """pagila's payment: the parent has no foreign key, each partition one of its own. Each
    partition stays a linked table of its own (discovery unchanged); its defects say how to
    make the partitions one table."""
    boutique.execute(
        "CREATE TABLE sales.payment (id bigint NOT NULL, customer_uuid uuid NOT NULL,"
        " paid_at date NOT NULL) PARTITION BY RANGE (paid_at)"
    )
    for year in (2026, 2027):
        boutique.execute(
            f"CREATE TABLE sales.payment_{year} PARTITION OF sales.payment"
            f" FOR VALUES FROM ('{year}-01-01') TO ('{year + 1}-01-01')"
        )
        boutique.execute(
            f"ALTER TABLE sales.payment_{year} ADD FOREIGN KEY (customer_uuid)"
            " REFERENCES crm.customer (customer_uuid)"
        )
    boutique.commit()
    hint = (
        " (a partition of sales.payment with a foreign key of its own to the customer table;"
        " or declare the foreign key on sales.payment, which takes over the partitions' ones"
    )

    defects = _payment(boutique)
    assert {d.table for d in defects} == {"sales.payment_2026", "sales.payment_2027"}
    assert {d.kind for d in defects} == {"unclassified", "unindexed", "privilege"}
    assert all(hint in d.defect for d in defects)
    privilege = [d.defect for d in defects if d.kind == "privilege"]
    assert privilege == [
        f"the owner role {OWNER} lacks SELECT, UPDATE, DELETE on the table{hint}, and grant"
        f" there): GRANT SELECT, UPDATE, DELETE ON TABLE sales.payment_{year} TO {OWNER};"
        for year in (2026, 2027)
    ]

    # the foreign key on the parent instead: one table, no hint
    for year in (2026, 2027):
        boutique.execute(
            f"ALTER TABLE sales.payment_{year} DROP CONSTRAINT payment_{year}_customer_uuid_fkey"
        )
    boutique.execute(
        "ALTER TABLE sales.payment ADD FOREIGN KEY (customer_uuid)"
        " REFERENCES crm.customer (customer_uuid)"
    )
    boutique.commit()
    defects = _payment(boutique)
    assert {d.table for d in defects} == {"sales.payment"}
    assert not any("a partition of" in d.defect for d in defects)
