"""Comparing the database with tritonX's truth (the simulator's current state), field by field.

The truth maps each customer number to its status: live (with snapshot and version), merged
(into a survivor), anonymised or deleted."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg

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


def assert_database_equals_tritonx(conn: psycopg.Connection[Any], truth: dict[str, Any]) -> None:
    cur = conn.execute(
        "SELECT customer_number, tritonx_version, "
        + ", ".join(SNAPSHOT_FIELDS)
        + " FROM shop.customer WHERE customer_number IS NOT NULL"
    )
    local = {row[0]: row for row in cur.fetchall()}
    redirects = dict(conn.execute("SELECT old_number, survivor_number FROM sync.redirect"))
    tombstones = dict(conn.execute("SELECT customer_number, kind FROM sync.tombstone"))
    conn.commit()
    live = {n for n, t in truth.items() if t["status"] == "live"}
    mismatches: list[str] = []
    for number, state in truth.items():
        status = state["status"]
        if status == "live":
            row = local.get(number)
            if row is None:
                mismatches.append(f"{number}: live in tritonX, missing locally")
                continue
            if row[1] != state["version"]:
                mismatches.append(f"{number}: version {row[1]} != {state['version']}")
            for field, value in zip(SNAPSHOT_FIELDS, row[2:], strict=True):
                if _as_json_value(value) != state["snapshot"].get(field):
                    mismatches.append(f"{number}: field {field} differs")
        elif status == "merged":
            if number in local:
                mismatches.append(f"{number}: merged away in tritonX, still a local customer")
            survivor = _final_survivor(truth, number)
            if redirects.get(number) != survivor:
                mismatches.append(f"{number}: redirect {redirects.get(number)} != {survivor}")
        elif status in ("anonymised", "deleted"):
            if number not in tombstones:
                mismatches.append(f"{number}: {status} in tritonX, no tombstone")
            row = local.get(number)
            if row is not None:
                fields = dict(zip(SNAPSHOT_FIELDS, row[2:], strict=True))
                email = fields["email"]
                if any(
                    fields[f] is not None
                    for f in ("first_name", "last_name", "phone", "mobile", "street", "postcode")
                ) or (email is not None and not email.endswith("@invalid")):
                    mismatches.append(f"{number}: {status} in tritonX, personal data kept")
    extra = set(local) - live - {n for n, t in truth.items() if t["status"] != "live"}
    mismatches.extend(f"{n}: local customer unknown to tritonX" for n in sorted(extra))
    assert not mismatches, f"{len(mismatches)} differences, first: {mismatches[:10]}"
