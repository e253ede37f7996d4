"""A shop whose customer key is text may key its own customers by their e-mail address: the
engine treats such a key as personal data (sync.shown_key shows NULL for it; audit rows, reports
and the operator's output name those customers by number). The controller role reads the
engine's queues "never a payload, never personal data" (docs/security.md): so it must not read
a text key either, in the adoption candidates or the link conflicts."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

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


@pytest.mark.xfail(
    strict=True,
    reason="sync.adoptable_customer (local_key, linked_key) and sync.link_conflict "
    "(customer_key, candidate_keys) hand the controller raw text keys",
)
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
    seen = [
        str(row)
        for query in (
            "SELECT * FROM sync.adoptable_customer",
            "SELECT * FROM sync.link_conflict",
            "SELECT * FROM sync.audit",
            "SELECT * FROM sync.adoption_matches()",
        )
        for row in controller.execute(query).fetchall()
    ]
    assert seen, "the scenario made no adoption candidate and no conflict"
    assert not [row for row in seen if "@example.nl" in row], seen
