"""The boutique bound to the engine the way a DBA does it: its tables created, the owner role
granted what `sync.mapping_defects` asks, optionally every column classified and the anonymise
and merge rules declared, then its mapping installed as the owner role. One definition for the
suites that run the engine on the boutique."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from tests.shops import ShopSchema

# Every column of the boutique's customer-linked tables, classified as a DBA would (the reference
# shop's seeds in sql/40_registry.sql are the model); orders gain a personal column for the test.
PII: dict[tuple[str, str], dict[str, tuple[str, str | None]]] = {
    ("crm", "customer"): {
        "customer_uuid": ("not_personal", None),
        "tx_ref": ("not_personal", None),
        "full_name": ("fixed", "(anonymised)"),
        "email": ("placeholder", "anon-{id}@invalid"),
        "sex": ("null", None),
        "birthday": ("year", None),
        "phone": ("null", None),
        "is_blocked": ("keep", None),
        "newsletter": ("fixed", "N"),
        "segment": ("not_personal", None),
        "shop_id": ("not_personal", None),
        "address_id": ("not_personal", None),
        "notes": ("null", None),
        "created_at": ("not_personal", None),
        "modified_at": ("not_personal", None),
    },
    ("crm", "CustomerAddress"): {
        "id": ("not_personal", None),
        "street": ("null", None),
        "zip": ("null", None),
        "city": ("null", None),
        "country": ("keep", None),
        "created_by": ("not_personal", None),
    },
    ("crm", "favourite"): {
        "customer_uuid": ("not_personal", None),
        "sku": ("not_personal", None),
        "added_at": ("not_personal", None),
    },
    ("sales", "orders"): {
        "id": ("not_personal", None),
        "customer_uuid": ("not_personal", None),
        "order_number": ("not_personal", None),
        "placed_at": ("not_personal", None),
        "status": ("not_personal", None),
        "total_amount": ("not_personal", None),
        "delivery_name": ("null", None),
    },
    ("sales", "Review"): {
        "id": ("not_personal", None),
        "customer_ref": ("not_personal", None),
        "sku": ("not_personal", None),
        "rating": ("not_personal", None),
        "body": ("null", None),
        "written_at": ("not_personal", None),
    },
}
RULES = [
    ("crm", "favourite", "delete_rows", False),
    ("sales", "orders", "scrub", True),
    ("sales", "Review", "delete_rows", False),
]


def bind_boutique(
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
    *,
    classified: bool = False,
    merge_rule: bool = False,
) -> None:
    """Install, grant, (classify, declare rules,) map and commit."""
    shop.install(conn)
    if classified:
        conn.execute("ALTER TABLE sales.orders ADD COLUMN IF NOT EXISTS delivery_name text")
    conn.execute("GRANT USAGE ON SCHEMA crm, sales TO syncctl_owner")
    conn.execute(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA crm, sales TO syncctl_owner"
    )
    conn.execute('GRANT USAGE ON SEQUENCE crm."CustomerAddress_id_seq" TO syncctl_owner')
    conn.execute("SET ROLE syncctl_owner")
    if classified:
        for (schema, table), columns in PII.items():
            for column, (strategy, value) in columns.items():
                conn.execute(
                    "INSERT INTO sync.pii_column (table_schema, table_name, column_name,"
                    " strategy, value) VALUES (%s, %s, %s, %s, %s)",
                    [schema, table, column, strategy, value],
                )
        for schema, table, action, bookkeeping in RULES:
            conn.execute(
                "INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)"
                " VALUES (%s, %s, %s, %s)",
                [schema, table, action, bookkeeping],
            )
    if merge_rule:
        conn.execute(
            "INSERT INTO sync.merge_rule (table_schema, table_name, rule)"
            " VALUES ('crm', 'favourite', 'union')"
        )
    conn.execute(
        "SELECT sync.install_mapping(%s::jsonb, %s)",
        [json.dumps(shop.mapping), "tests/shops/boutique.toml"],
    )
    conn.execute("RESET ROLE")
    conn.commit()


def bind(conn: psycopg.Connection[Any], shop: ShopSchema) -> None:
    """A test schema ready for the engine as the reference shop is after the migrations: the
    boutique bound with every column classified, the anonymise rules and crm.favourite's merge
    rule declared (the reference shop's seeds in sql/40_registry.sql are the model); the
    reference shop as it is. The boutique's trigger function is given to the owner role, as
    coverage asks a DBA to (it runs inside the engine's writes)."""
    if shop.ddl_path is not None:
        bind_boutique(conn, shop, classified=True, merge_rule=True)
        conn.execute("ALTER FUNCTION crm.customer_touch() OWNER TO syncctl_owner")
        conn.commit()
