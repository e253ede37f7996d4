"""The test schemas a suite runs on, each with its mapping: the reference shop (`shop`, made by the
migrations, mapped by syncctl/mappings/reference.toml) and the boutique (tests/shops/boutique.sql,
mapped by tests/shops/boutique.toml), which differs from it on purpose. A suite parametrised over
SHOPS reaches a schema's tables only through the ShopSchema protocol, and compares what the
database holds (`read_row`) with the pure-Python model of the mapping (`expected_row`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, LiteralString, Protocol

import psycopg
from psycopg import sql

from tests.contract import transform_fields
from tests.shops.oracle import MappedColumn, load, mapped_columns, mapped_row, number_column

REPOSITORY = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

CustomerKey = int | uuid.UUID


class ShopSchema(Protocol):
    """A test schema: its tables, its mapping and the model of what the mapping writes."""

    @property
    def name(self) -> str:
        """A short label for test ids: "reference", "boutique"."""
        ...

    @property
    def ddl_path(self) -> Path | None:
        """The schema's re-runnable DDL; None when the migrations create it."""
        ...

    @property
    def mapping_path(self) -> Path:
        """The schema's mapping (format 1)."""
        ...

    @property
    def mapping(self) -> dict[str, Any]:
        """The mapping document, as the loader hands it to the engine."""
        ...

    @property
    def customer_table(self) -> LiteralString:
        """The customer table, qualified and quoted: '"crm"."customer"'."""
        ...

    @property
    def key_column(self) -> LiteralString:
        """The customer table's key column."""
        ...

    @property
    def number_sql(self) -> LiteralString:
        """A query returning the key of the customer with tritonX number %s (no row: none)."""
        ...

    @property
    def created_columns(self) -> frozenset[str]:
        """Row keys written only when tritonX creates the customer ([*.create]): an adopted
        local customer keeps the shop's values there."""
        ...

    @property
    def key_type(self) -> LiteralString:
        """The SQL type of the customer table's key."""
        ...

    @property
    def own_column(self) -> LiteralString:
        """A text column of the customer table that is the shop's own: the engine never
        writes it."""
        ...

    @property
    def order_table(self) -> LiteralString:
        """The shop's orders, qualified and quoted (a partitioned table on the boutique)."""
        ...

    @property
    def order_customer_column(self) -> LiteralString:
        """The orders' column holding the customer's key."""
        ...

    def install(self, conn: psycopg.Connection[Any]) -> None:
        """Create the schema's tables (a no-op for the reference: the migrations made them)."""
        ...

    def column_of(self, field: str) -> tuple[sql.Identifier, sql.Identifier]:
        """(table, column) of the first column the mapping fills from snapshot field `field`,
        for a test's DDL on the shop's side (an index, a constraint, a trigger)."""
        ...

    def fields_of(self, key: str) -> frozenset[str]:
        """The snapshot fields the column with row key `key` (as `read_row` names it) is made
        from; empty for a [*.create] literal."""
        ...

    def version_of(self, conn: psycopg.Connection[Any], number: str) -> int | None:
        """The tritonX version the engine holds for the customer with number `number`."""
        ...

    def numbers(self, conn: psycopg.Connection[Any]) -> dict[str, CustomerKey]:
        """Every customer holding a tritonX number: number -> key."""
        ...

    def count_customers(self, conn: psycopg.Connection[Any]) -> int:
        """The rows of the customer table, linked or not."""
        ...

    def has_customer(self, conn: psycopg.Connection[Any], key: CustomerKey) -> bool:
        """Whether the customer table holds a row with key `key`."""
        ...

    def own_value(self, conn: psycopg.Connection[Any], key: CustomerKey) -> str | None:
        """The customer's value in `own_column`."""
        ...

    def set_own_value(self, conn: psycopg.Connection[Any], key: CustomerKey, value: str) -> None:
        """Set the customer's `own_column`, as the shop application does."""
        ...

    def orders_of(self, conn: psycopg.Connection[Any], key: CustomerKey) -> int:
        """How many orders the customer with key `key` has."""
        ...

    def number_of_order(self, conn: psycopg.Connection[Any], order: int) -> str | None:
        """The tritonX number of the customer holding order `order` (None: a local customer)."""
        ...

    def key_of(self, conn: psycopg.Connection[Any], number: str) -> CustomerKey | None:
        """The key of the customer holding tritonX number `number`, None when none does."""
        ...

    def read_rows(self, conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
        """`read_row` of every customer holding a tritonX number, by number (one query)."""
        ...

    def add_customer(
        self,
        conn: psycopg.Connection[Any],
        snapshot: Mapping[str, Any],
        *,
        linked: bool = True,
        shop_values: Mapping[str, Any] | None = None,
    ) -> CustomerKey:
        """Insert a customer as the shop holds it before syncctl: the mapped values of
        `snapshot`, the number only when `linked`, `shop_values` for the shop's own columns."""
        ...

    def place_order(
        self, conn: psycopg.Connection[Any], key: CustomerKey, placed_at: datetime | None = None
    ) -> int:
        """Insert an order of the customer (placed now unless said), returning its id."""
        ...

    def add_favourite(self, conn: psycopg.Connection[Any], key: CustomerKey, sku: str) -> None:
        """Insert a favourite of the customer."""
        ...

    def add_rows_everywhere(
        self, conn: psycopg.Connection[Any], key: CustomerKey, *, orders: int = 1
    ) -> None:
        """Rows of the customer in every table of the schema linked to it (`orders` orders),
        personal values in them as a shop has them."""
        ...

    def expected_row(self, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        """The model: what `read_row` gives after tritonX created the customer with `snapshot`
        (raises oracle.ValueDoesNotFit where the engine refuses the event)."""
        ...

    def read_row(self, conn: psycopg.Connection[Any], number: str) -> dict[str, Any]:
        """The mapped columns of the customer holding tritonX number `number` (LookupError when
        none does), keyed like `expected_row`."""
        ...


class _MappedShop:
    """What every test schema does the same way, from its mapping document."""

    name: str
    ddl_path: Path | None = None
    mapping_path: Path
    customer_table: LiteralString
    key_column: LiteralString
    number_sql: LiteralString
    # the shop's own tables: an order (customer, order number, placed at or now) returning its
    # id; a favourite (customer, sku)
    order_sql: LiteralString
    favourite_sql: LiteralString
    # varchar(n)/char(n) limits by row key; a test compares them with the catalog
    column_lengths: Mapping[str, int] = {}

    @cached_property
    def mapping(self) -> dict[str, Any]:
        return load(self.mapping_path)

    @cached_property
    def created_columns(self) -> frozenset[str]:
        return frozenset(m.key for m in mapped_columns(self.mapping) if m.created_only)

    key_type: LiteralString
    own_column: LiteralString
    order_table: LiteralString
    order_customer_column: LiteralString

    def install(self, conn: psycopg.Connection[Any]) -> None:
        if self.ddl_path is not None:
            conn.execute(self.ddl_path.read_bytes())

    def _mapped(self, key: str) -> MappedColumn:
        return next(m for m in mapped_columns(self.mapping) if m.key == key)

    def fields_of(self, key: str) -> frozenset[str]:
        if key == number_column(self.mapping):
            return frozenset({"customer_number"})
        return frozenset(transform_fields(self._mapped(key).source))

    def column_of(self, field: str) -> tuple[sql.Identifier, sql.Identifier]:
        mapped = next(
            m for m in mapped_columns(self.mapping) if field in transform_fields(m.source)
        )
        spec = (
            self.mapping["customer"]
            if mapped.related is None
            else self.mapping["related"][mapped.related]
        )
        return self._table(spec), sql.Identifier(mapped.column)

    def version_of(self, conn: psycopg.Connection[Any], number: str) -> int | None:
        row = conn.execute(
            "SELECT version FROM syncmap.customer_map WHERE customer_number = %s", [number]
        ).fetchone()
        return None if row is None else row[0]

    def numbers(self, conn: psycopg.Connection[Any]) -> dict[str, CustomerKey]:
        query = sql.SQL("SELECT {}, {} FROM {} WHERE {} IS NOT NULL").format(
            sql.Identifier(self._number()),
            sql.Identifier(self.key_column),
            self._table(self.mapping["customer"]),
            sql.Identifier(self._number()),
        )
        return {number: key for number, key in conn.execute(query)}

    def count_customers(self, conn: psycopg.Connection[Any]) -> int:
        query = sql.SQL("SELECT count(*) FROM {}").format(self._table(self.mapping["customer"]))
        row = conn.execute(query).fetchone()
        assert row is not None
        return int(row[0])

    def has_customer(self, conn: psycopg.Connection[Any], key: CustomerKey) -> bool:
        row = conn.execute(
            self._own("SELECT EXISTS (SELECT FROM {table} WHERE {key} = %s)"), [key]
        ).fetchone()
        return row == (True,)

    def _own(self, template: LiteralString) -> sql.Composed:
        return sql.SQL(template).format(
            table=self._table(self.mapping["customer"]),
            own=sql.Identifier(self.own_column),
            key=sql.Identifier(self.key_column),
        )

    def own_value(self, conn: psycopg.Connection[Any], key: CustomerKey) -> str | None:
        row = conn.execute(self._own("SELECT {own} FROM {table} WHERE {key} = %s"), [key])
        found = row.fetchone()
        assert found is not None, f"no customer with key {key}"
        return None if found[0] is None else str(found[0])

    def set_own_value(self, conn: psycopg.Connection[Any], key: CustomerKey, value: str) -> None:
        conn.execute(self._own("UPDATE {table} SET {own} = %s WHERE {key} = %s"), [value, key])

    def orders_of(self, conn: psycopg.Connection[Any], key: CustomerKey) -> int:
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
            sql.SQL(self.order_table), sql.Identifier(self.order_customer_column)
        )
        row = conn.execute(query, [key]).fetchone()
        assert row is not None
        return int(row[0])

    def number_of_order(self, conn: psycopg.Connection[Any], order: int) -> str | None:
        query = sql.SQL(
            "SELECT c.{} FROM {} AS o JOIN {} AS c ON c.{} = o.{} WHERE o.id = %s"
        ).format(
            sql.Identifier(self._number()),
            sql.SQL(self.order_table),
            self._table(self.mapping["customer"]),
            sql.Identifier(self.key_column),
            sql.Identifier(self.order_customer_column),
        )
        row = conn.execute(query, [order]).fetchone()
        return None if row is None else row[0]

    def place_order(
        self, conn: psycopg.Connection[Any], key: CustomerKey, placed_at: datetime | None = None
    ) -> int:
        number = f"{self.name[0].upper()}-{uuid.uuid4().hex[:16]}"
        row = conn.execute(self.order_sql, [key, number, placed_at]).fetchone()
        assert row is not None
        return int(row[0])

    def add_favourite(self, conn: psycopg.Connection[Any], key: CustomerKey, sku: str) -> None:
        conn.execute(self.favourite_sql, [key, sku])

    # add_rows_everywhere's statements: one order (%(key)s, %(order)s), then one row of each
    # other linked table (%(key)s, %(login)s)
    everywhere_order_sql: LiteralString
    everywhere_sql: tuple[LiteralString, ...]

    def add_rows_everywhere(
        self, conn: psycopg.Connection[Any], key: CustomerKey, *, orders: int = 1
    ) -> None:
        for n in range(orders):
            number = f"O-{uuid.uuid4().hex[:12]}-{n}"
            conn.execute(self.everywhere_order_sql, {"key": key, "order": number})
        for statement in self.everywhere_sql:
            conn.execute(statement, {"key": key, "login": f"{uuid.uuid4().hex[:12]}@example.nl"})

    def expected_row(self, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        return mapped_row(self.mapping, snapshot, self.column_lengths)

    def _table(self, spec: Mapping[str, Any]) -> sql.Identifier:
        return sql.Identifier(spec["schema"], spec["table"])

    def _number(self) -> str:
        number = number_column(self.mapping)
        if number is None:
            raise NotImplementedError(f"{self.mapping_path.name}: number = 'link' is not modelled")
        return number

    def key_of(self, conn: psycopg.Connection[Any], number: str) -> CustomerKey | None:
        row = conn.execute(self.number_sql, [number]).fetchone()
        return None if row is None else row[0]

    def _rows(self, conn: psycopg.Connection[Any], number: str | None) -> list[dict[str, Any]]:
        """The mapped columns of the customer with tritonX number `number`, or (None) of every
        customer holding one."""
        customer = self.mapping["customer"]
        keys = [self._number()]
        selected = [sql.SQL("c.{}").format(sql.Identifier(self._number()))]
        joins: list[sql.Composable] = []
        for index, related in enumerate(self.mapping.get("related", [])):
            alias = sql.Identifier(f"r{index}")
            via = related["via"]
            if "customer_column" not in via:
                raise NotImplementedError("only related rows the customer points to are modelled")
            joins.append(
                sql.SQL(" LEFT JOIN {} {} ON {}.{} = c.{}").format(
                    self._table(related),
                    alias,
                    alias,
                    sql.Identifier(related["key"]),
                    sql.Identifier(via["customer_column"]),
                )
            )
        for mapped in mapped_columns(self.mapping):
            owner = sql.Identifier("c" if mapped.related is None else f"r{mapped.related}")
            selected.append(sql.SQL("{}.{}").format(owner, sql.Identifier(mapped.column)))
            keys.append(mapped.key)
        query = sql.SQL("SELECT {} FROM {} c{} WHERE {}").format(
            sql.SQL(", ").join(selected),
            self._table(customer),
            sql.Composed(joins),
            sql.SQL("c.{} = %s" if number is not None else "c.{} IS NOT NULL").format(
                sql.Identifier(self._number())
            ),
        )
        rows = conn.execute(query, [number] if number is not None else []).fetchall()
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def read_row(self, conn: psycopg.Connection[Any], number: str) -> dict[str, Any]:
        rows = self._rows(conn, number)
        if not rows:
            raise LookupError(f"no customer holds number {number}")
        return rows[0]

    def read_rows(self, conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
        number = self._number()
        return {row[number]: row for row in self._rows(conn, None)}

    def _insert(
        self, conn: psycopg.Connection[Any], spec: Mapping[str, Any], values: dict[str, Any]
    ) -> Any:
        """Insert one row of a mapped table, making its key the way the mapping says."""
        if spec.get("key_generate") == "uuid":
            values = {spec["key"]: uuid.uuid4(), **values}
        elif spec.get("key_generate") == "sequence":
            raise NotImplementedError("key_generate = 'sequence' is not modelled")
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
            self._table(spec),
            sql.SQL(", ").join(map(sql.Identifier, values)),
            sql.SQL(", ").join(sql.Placeholder() * len(values)),
            sql.Identifier(spec["key"]),
        )
        row = conn.execute(query, list(values.values())).fetchone()
        assert row is not None
        return row[0]

    def add_customer(
        self,
        conn: psycopg.Connection[Any],
        snapshot: Mapping[str, Any],
        *,
        linked: bool = True,
        shop_values: Mapping[str, Any] | None = None,
    ) -> CustomerKey:
        row = self.expected_row(snapshot)
        columns = list(mapped_columns(self.mapping))
        values: dict[str, Any] = {self._number(): row[self._number()] if linked else None}
        for index, related in enumerate(self.mapping.get("related", [])):
            own = {m.column: row[m.key] for m in columns if m.related == index}
            values[related["via"]["customer_column"]] = self._insert(conn, related, own)
        values |= {m.column: row[m.key] for m in columns if m.related is None}
        values |= shop_values or {}
        key: CustomerKey = self._insert(conn, self.mapping["customer"], values)
        return key


class ReferenceShop(_MappedShop):
    """The demo's shop, schema `shop` (sql/reference_shop/), made by syncctl.reference_shop."""

    name = "reference"
    ddl_path = None
    mapping_path = REPOSITORY / "syncctl" / "mappings" / "reference.toml"
    customer_table: LiteralString = '"shop"."customer"'
    key_column: LiteralString = "id"
    key_type: LiteralString = "bigint"
    own_column: LiteralString = "preferred_language"
    order_table: LiteralString = '"shop"."orders"'
    order_customer_column: LiteralString = "customer_id"
    number_sql: LiteralString = "SELECT id FROM shop.customer WHERE customer_number = %s"
    order_sql: LiteralString = (
        "INSERT INTO shop.orders (customer_id, order_number, placed_at)"
        " VALUES (%s, %s, coalesce(%s, now())) RETURNING id"
    )
    favourite_sql: LiteralString = "INSERT INTO shop.favourite (customer_id, sku) VALUES (%s, %s)"
    everywhere_order_sql: LiteralString = (
        "INSERT INTO shop.orders (customer_id, order_number, total_amount, placed_at,"
        " delivery_name, delivery_street, delivery_postcode, delivery_city, contact_email,"
        " contact_phone) VALUES (%(key)s, %(order)s, 99.95, '2025-05-05', 'Anna Berg',"
        " 'Keizersgracht 12', '1015 CJ', 'Amsterdam', 'anna@example.nl', '+31 6 1234 5678')"
    )
    everywhere_sql: tuple[LiteralString, ...] = (
        "INSERT INTO shop.address (customer_id, recipient_name, street, postcode, city,"
        " country_code) VALUES (%(key)s, 'Anna Berg', 'Keizersgracht', '1015 CJ', 'Amsterdam',"
        " 'NL')",
        "INSERT INTO shop.login_identity (customer_id, login_name, password_hash)"
        " VALUES (%(key)s, %(login)s, 'hash')",
        "INSERT INTO shop.cart (customer_id, items) VALUES (%(key)s, '[{\"sku\": 1}]')",
        "INSERT INTO shop.wishlist (customer_id, sku, note) VALUES (%(key)s, 'W', 'for Anna')",
        "INSERT INTO shop.newsletter_subscription (customer_id, list_name, email)"
        " VALUES (%(key)s, 'weekly', 'anna@example.nl')",
        "INSERT INTO shop.favourite (customer_id, sku) VALUES (%(key)s, 'F')",
    )


class Boutique(_MappedShop):
    """The second test schema (tests/shops/boutique.sql): schemas crm and sales."""

    name = "boutique"
    ddl_path = HERE / "boutique.sql"
    mapping_path = HERE / "boutique.toml"
    customer_table: LiteralString = '"crm"."customer"'
    key_column: LiteralString = "customer_uuid"
    key_type: LiteralString = "uuid"
    own_column: LiteralString = "notes"
    order_table: LiteralString = '"sales"."orders"'
    order_customer_column: LiteralString = "customer_uuid"
    column_lengths: Mapping[str, int] = {
        "tx_ref": 32,
        "full_name": 60,
        "email": 254,
        "sex": 1,
        "phone": 20,
        "newsletter": 1,
        "address.street": 120,
        "address.zip": 10,
        "address.city": 80,
        "address.country": 2,
    }
    number_sql: LiteralString = "SELECT customer_uuid FROM crm.customer WHERE tx_ref = %s"
    order_sql: LiteralString = (
        "INSERT INTO sales.orders (customer_uuid, order_number, placed_at)"
        " VALUES (%s, %s, coalesce(%s, now())) RETURNING id"
    )
    favourite_sql: LiteralString = "INSERT INTO crm.favourite (customer_uuid, sku) VALUES (%s, %s)"
    everywhere_order_sql: LiteralString = (
        "INSERT INTO sales.orders (customer_uuid, order_number, placed_at, total_amount)"
        " VALUES (%(key)s, %(order)s, '2026-05-05', 99.95)"
    )
    everywhere_sql: tuple[LiteralString, ...] = (
        "INSERT INTO crm.favourite (customer_uuid, sku) VALUES (%(key)s, 'F')",
        'INSERT INTO sales."Review" (customer_ref, sku, rating, body)'
        " VALUES (%(key)s, 'F', 4, 'Anna Berg liked it')",
    )


SHOPS: tuple[ShopSchema, ...] = (ReferenceShop(), Boutique())
