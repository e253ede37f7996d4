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


# a key as long as a text key may be: an e-mail address in a long form, sorting last
LONG = "z" * 150 + "@example.nl"


def test_retention_batches_hand_the_controller_positions_not_keys(
    text_keyed: psycopg.Connection[Any], as_role: Any
) -> None:
    """`syncctl purge` and the daily job page through the customers as the controller: on a
    text key each batch's last_key is an opaque position, never the key (an e-mail here), and
    a customer whose key is longer than 100 characters stops no run."""
    conn = text_keyed
    conn.execute(
        "INSERT INTO tk.client (ckey, mail) VALUES (%s, 'a'), (%s, 'b'), (%s, 'c')",
        [LOCAL, "b.local@example.nl", LONG],
    )
    conn.commit()
    controller = as_role("syncctl_controller")
    after: str | None = None
    answers: list[str] = []
    scanned = 0
    while True:
        row = controller.execute(
            "SELECT gdpr.purge_batch(now(), %s::text, 1, 'retention')", [after]
        ).fetchone()
        assert row is not None
        answers.append(str(row[0]))
        if row[0]["last_key"] is None:
            break
        scanned += row[0]["scanned"]
        assert str(row[0]["last_key"]).startswith("position:"), row[0]
        after = str(row[0]["last_key"])
        assert len(answers) < 10, answers
    assert scanned == 3
    assert not [a for a in answers if "@example.nl" in a], answers
    # a position is taken once; a key or anything else is no position
    for given in (after, LOCAL, "position:999999"):
        with pytest.raises(psycopg.Error) as refused:
            controller.execute("SELECT gdpr.purge_batch(now(), %s::text, 1)", [given])
        assert refused.value.sqlstate == "SY020"
        assert "@example.nl" not in str(refused.value)
    # nothing of a run is left behind
    assert conn.execute("SELECT count(*) FROM gdpr.purge_position").fetchone() == (0,)


def test_a_long_text_key_is_a_customer_of_the_gdpr_functions(
    text_keyed: psycopg.Connection[Any],
) -> None:
    conn = text_keyed
    conn.execute("INSERT INTO tk.client (ckey, mail) VALUES (%s, %s)", [LONG, LONG])
    conn.commit()
    rows = conn.execute("SELECT source FROM gdpr.subject_data(%s)", [LONG]).fetchall()
    assert ("tk.client",) in rows
