"""Comparing the database with tritonX's truth (the simulator's current state), field by field.

The truth maps each customer number to its status: live (with snapshot and version), merged
(into a survivor), anonymised or deleted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from tests.shops import ShopSchema

SNAPSHOT_FIELDS = (
    "email",
    "first_name",
    "infix",
    "last_name",
    "gender",
    "birth_date",
    "phone",
    "mobile",
    "street",
    "house_number",
    "house_number_addition",
    "postcode",
    "city",
    "country_code",
    "loyalty_card",
    "home_store",
    "customer_group",
    "newsletter_opt_in",
    "blocked",
)

# what an erased customer may no longer hold (besides an e-mail that is not a placeholder)
PERSONAL_FIELDS = ("first_name", "last_name", "phone", "mobile", "street", "postcode")


def _as_json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return value.isoformat()
    return value


def _final_survivor(truth: dict[str, Any], number: str) -> str:
    seen = set()
    while truth.get(number, {}).get("status") == "merged" and number not in seen:
        seen.add(number)
        number = truth[number]["into"]
    return number


@dataclass(frozen=True)
class Local:
    """A customer the database holds under a tritonX number, as the comparison needs it."""

    version: int | None
    # the snapshot fields (or mapped columns) whose value differs from a snapshot's
    differs: Callable[[dict[str, Any]], list[str]]
    # whether it still holds personal data (for an erased customer)
    personal: bool


def _reference_customers(conn: psycopg.Connection[Any]) -> dict[str, Local]:
    """The reference shop's customers, field by field from shop.customer's own columns."""
    cur = conn.execute(
        "SELECT customer_number, tritonx_version, "
        + ", ".join(SNAPSHOT_FIELDS)
        + " FROM shop.customer WHERE customer_number IS NOT NULL"
    )
    local = {}
    for number, version, *values in cur.fetchall():
        fields = dict(zip(SNAPSHOT_FIELDS, values, strict=True))
        email = fields["email"]

        def differs(snapshot: dict[str, Any], fields: dict[str, Any] = fields) -> list[str]:
            return [f"field {f}" for f, v in fields.items() if _as_json_value(v) != snapshot.get(f)]

        personal = any(fields[f] is not None for f in PERSONAL_FIELDS) or (
            email is not None and not email.endswith("@invalid")
        )
        local[number] = Local(version, differs, personal)
    return local


def _mapped_customers(conn: psycopg.Connection[Any], shop: ShopSchema) -> dict[str, Local]:
    """A test schema's customers, column by column against the model of its mapping: a
    personal column of an erased customer holds NULL or the value its classification fixes."""
    fixed = {
        v for (v,) in conn.execute("SELECT value FROM sync.pii_column WHERE value IS NOT NULL")
    }
    versions = dict(
        conn.execute("SELECT customer_number, version FROM syncmap.customer_map").fetchall()
    )
    local = {}
    for number, row in shop.read_rows(conn).items():

        def differs(snapshot: dict[str, Any], row: dict[str, Any] = row) -> list[str]:
            expected = shop.expected_row(snapshot)
            return [f"column {k}" for k, v in row.items() if v != expected[k]]

        personal = False
        for key, value in row.items():
            fields = shop.fields_of(key)
            if "email" in fields and value is not None and not str(value).endswith("@invalid"):
                personal = True
            if fields & set(PERSONAL_FIELDS) and value is not None and value not in fixed:
                personal = True
        local[number] = Local(versions.get(number), differs, personal)
    return local


def assert_database_equals_tritonx(
    conn: psycopg.Connection[Any], truth: dict[str, Any], shop: ShopSchema | None = None
) -> None:
    """The database holds what tritonX does: on the reference shop's own columns, or (`shop`)
    on a test schema through its mapping's model."""
    local = _reference_customers(conn) if shop is None else _mapped_customers(conn, shop)
    redirects = dict(conn.execute("SELECT old_number, survivor_number FROM sync.redirect"))
    tombstones = dict(conn.execute("SELECT customer_number, kind FROM sync.tombstone"))
    conn.commit()
    live = {n for n, t in truth.items() if t["status"] == "live"}
    mismatches: list[str] = []
    for number, state in truth.items():
        status = state["status"]
        customer = local.get(number)
        if status == "live":
            if customer is None:
                mismatches.append(f"{number}: live in tritonX, missing locally")
                continue
            if customer.version != state["version"]:
                mismatches.append(f"{number}: version {customer.version} != {state['version']}")
            mismatches.extend(f"{number}: {d} differs" for d in customer.differs(state["snapshot"]))
        elif status == "merged":
            if customer is not None:
                mismatches.append(f"{number}: merged away in tritonX, still a local customer")
            survivor = _final_survivor(truth, number)
            if redirects.get(number) != survivor:
                mismatches.append(f"{number}: redirect {redirects.get(number)} != {survivor}")
        elif status in ("anonymised", "deleted"):
            if number not in tombstones:
                mismatches.append(f"{number}: {status} in tritonX, no tombstone")
            if customer is not None and customer.personal:
                mismatches.append(f"{number}: {status} in tritonX, personal data kept")
    extra = set(local) - live - {n for n, t in truth.items() if t["status"] != "live"}
    mismatches.extend(f"{n}: local customer unknown to tritonX" for n in sorted(extra))
    assert not mismatches, f"{len(mismatches)} differences, first: {mismatches[:10]}"
