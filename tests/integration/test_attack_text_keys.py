"""A shop whose customer key is text may key its own customers by their e-mail address: the
engine treats such a key as personal data (sync.shown_key shows NULL for it; audit rows, reports
and the operator's output name those customers by number). The controller role reads the
engine's queues "never a payload, never personal data" (docs/security.md): so it must not read
a text key either, in the adoption candidates or the link conflicts."""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
import pytest

from syncctl import links
from tests.feed import stage, upserted
from tests.integration.test_mapping_compile import _install, _not_stored, _owner

LOCAL = "anna.local@example.nl"


@pytest.fixture
def text_keyed(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    owner = _owner(conn)
    conn.execute(
        "CREATE SCHEMA tk;"
        "CREATE SEQUENCE tk.seq;"
        "CREATE TABLE tk.client (ckey text PRIMARY KEY DEFAULT 'c-' || nextval('tk.seq'),"
        " mail text, ver integer);"
        f'GRANT USAGE ON SCHEMA tk TO "{owner}";'
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON tk.client TO "{owner}";'
        f'GRANT USAGE ON SEQUENCE tk.seq TO "{owner}"'
    )
    conn.commit()
    _install(
        conn,
        {
            "format": 1,
            "customer": {
                "schema": "tk",
                "table": "client",
                "key": "ckey",
                "key_generate": "default",
                "number": "link",
                "version": {"column": "ver"},
                "columns": {"mail": "email"},
            },
            "not_stored": {"fields": _not_stored("email")},
        },
    )
    return conn


def test_the_controller_reads_no_text_key(
    text_keyed: psycopg.Connection[Any], as_role: Any
) -> None:
    conn = text_keyed
    # the shop's own customer, keyed by its e-mail; tritonX knows the same person
    conn.execute("INSERT INTO tk.client (ckey, mail) VALUES (%s, %s)", [LOCAL, LOCAL])
    conn.commit()
    stage(conn, [upserted("TX00000001", 1, email=LOCAL)])
    conn.commit()
    # two more local customers sharing an e-mail tritonX gives a third number: a conflict
    conn.execute(
        "INSERT INTO tk.client (ckey, mail) VALUES ('b1@example.nl', 'b@example.nl'),"
        " ('b2@example.nl', 'b@example.nl')"
    )
    conn.commit()
    stage(conn, [upserted("TX00000002", 1, email="b@example.nl")])
    conn.commit()
    as_role("syncctl_webshop").execute("SELECT * FROM sync.login_key('TX00000002', 'x')")
    controller = as_role("syncctl_controller")
    seen: list[str] = []
    for query in (
        "SELECT * FROM sync.adoptable_customer",
        "SELECT * FROM sync.link_conflict",
        "SELECT * FROM sync.audit",
        "SELECT * FROM sync.adoption_matches()",
    ):
        # a relation or function the controller may not read at all shows it nothing
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            seen += [str(row) for row in controller.execute(query).fetchall()]
    assert any("TX00000001" in row for row in seen), "no adoption candidate was shown"
    assert not [row for row in seen if "@example.nl" in row], seen
    # and `links repair` adopts by number: the plan shows no key, the adoption is made
    plan = links.repair_plan(controller)
    assert [(a.local_key, a.linked_key, a.number) for a in plan.adopt] == [
        (None, None, "TX00000001")
    ]
    assert links.repair(controller, plan, "ops:test").changed == 1
    adopted = conn.execute("SELECT syncmap.number_of(%s)", [LOCAL]).fetchone()
    conn.commit()
    assert adopted == ("TX00000001",)
