"""`syncctl mapping check` (before the install) and `syncctl coverage` (after it) ask the owner
role for the same privileges on the shop's tables: one computation (sync._owner_needs) serves
both, so a DBA who granted what check asked finds coverage clean, and coverage never asks for
something check let through. On the boutique: the customer table, the address table it points
to, favourites (a foreign key), orders partitioned by month and kept for bookkeeping (no
DELETE: anonymisation scrubs them, a tritonX delete anonymises), reviews declared without a
foreign key, and a table of the shop's that only refers to the address (SELECT)."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests.shops import Boutique
from tests.shops.binding import bind_boutique

BOUTIQUE = Boutique()
GRANT = re.compile(r"GRANT ([A-Z, ]+) ON (TABLE|SCHEMA) (\S+) TO ")


def _grants(texts: list[str]) -> set[tuple[str, str, str]]:
    """Every (privilege, kind, object) the GRANT statements in `texts` give."""
    return {
        (privilege, kind, name)
        for text in texts
        for privileges, kind, name in GRANT.findall(text)
        for privilege in privileges.split(", ")
    }


def _check(conn: psycopg.Connection[Any]) -> set[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT problem FROM sync.mapping_defects(%s) WHERE problem NOT LIKE 'warning: %%'",
        [Jsonb(BOUTIQUE.mapping)],
    ).fetchall()
    return _grants([problem for (problem,) in rows])


def _coverage(conn: psycopg.Connection[Any]) -> set[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT defect FROM sync.coverage_defects() WHERE kind = 'privilege'"
    ).fetchall()
    return _grants([defect for (defect,) in rows])


def test_check_and_coverage_ask_the_same_privileges(conn: psycopg.Connection[Any]) -> None:
    bind_boutique(conn, BOUTIQUE, classified=True)
    conn.execute(
        'CREATE TABLE crm.store (id bigint PRIMARY KEY, address_id bigint REFERENCES crm."Custom'
        'erAddress" (id))'
    )
    conn.execute("REVOKE ALL ON ALL TABLES IN SCHEMA crm, sales FROM syncctl_owner")
    conn.execute("REVOKE USAGE ON SCHEMA sales FROM syncctl_owner")
    conn.commit()

    asked = _check(conn)
    assert asked == _coverage(conn)
    every = ("SELECT", "INSERT", "UPDATE", "DELETE")
    assert asked == {
        ("USAGE", "SCHEMA", "sales"),
        *(("SELECT", "TABLE", "crm.store"),),
        *((p, "TABLE", "crm.customer") for p in every),
        *((p, "TABLE", 'crm."CustomerAddress"') for p in every),
        *((p, "TABLE", "crm.favourite") for p in ("SELECT", "UPDATE", "DELETE")),
        *((p, "TABLE", 'sales."Review"') for p in ("SELECT", "UPDATE", "DELETE")),
        *((p, "TABLE", "sales.orders") for p in ("SELECT", "UPDATE")),
    }

    for privilege, kind, name in sorted(asked):
        conn.execute(f"GRANT {privilege} ON {kind} {name} TO syncctl_owner")
    conn.commit()
    assert _check(conn) == set() == _coverage(conn)
