"""A mapping that stores a tritonX consent field as is in a boolean column of the customer table
(`opt_in = { field = "newsletter_opt_in", null_as = false }`) makes installing it put the
consent triggers on that table, which takes the TRIGGER privilege when another role owns the
table. `syncctl mapping check` names the missing privilege with the GRANT that gives it, before
anything is installed; installing refuses it like every other missing privilege (without the
triggers a local change of the column would silently not be recorded as consent); coverage
lists it too when the privilege goes after the install. A transformed consent column ('J'/'N')
gets no triggers and needs no TRIGGER privilege."""

from __future__ import annotations

import copy
import json
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.shops import Boutique
from tests.shops.binding import bind_boutique

BOUTIQUE = Boutique()
GRANT = "GRANT TRIGGER ON TABLE crm.customer TO syncctl_owner;"


def _as_is(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """The boutique's mapping with the opt-in stored as is in a new boolean column."""
    conn.execute("ALTER TABLE crm.customer ADD COLUMN opt_in boolean")
    conn.commit()
    document = copy.deepcopy(BOUTIQUE.mapping)
    del document["customer"]["columns"]["newsletter"]
    document["customer"]["columns"]["opt_in"] = {"field": "newsletter_opt_in", "null_as": False}
    return document


def _defects(conn: psycopg.Connection[Any], document: dict[str, Any]) -> list[tuple[str, str]]:
    """What refuses the document (the boutique's short columns are warnings only)."""
    rows = conn.execute(
        "SELECT path, problem FROM sync.mapping_defects(%s) WHERE problem NOT LIKE 'warning: %%'",
        [Jsonb(document)],
    ).fetchall()
    return [(path, problem) for path, problem in rows]


def _install(conn: psycopg.Connection[Any], document: dict[str, Any]) -> None:
    conn.execute("SET ROLE syncctl_owner")
    try:
        conn.execute("SELECT sync.install_mapping(%s::jsonb, 'test')", [json.dumps(document)])
    except psycopg.Error:
        conn.rollback()  # the role too
        raise
    conn.execute("RESET ROLE")
    conn.commit()


def _privilege_coverage(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT table_name, defect FROM sync.coverage_defects() WHERE kind = 'privilege'"
    ).fetchall()
    return [(table, defect) for table, defect in rows]


def test_check_names_the_trigger_privilege_a_consent_column_as_is_needs(
    conn: psycopg.Connection[Any],
) -> None:
    bind_boutique(conn, BOUTIQUE, classified=True)
    document = _as_is(conn)
    assert _defects(conn, document) == [
        (
            "customer.columns.opt_in",
            "syncctl_owner lacks TRIGGER on crm.customer (opt_in holds newsletter_opt_in as is:"
            f" local changes of it are consent decisions): {GRANT}",
        )
    ]
    with pytest.raises(psycopg.Error) as refused:
        _install(conn, document)
    assert refused.value.sqlstate == "SY060"
    assert GRANT in str(refused.value)
    assert conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'customer_consent_%'"
    ).fetchone() == (0,)

    conn.execute(GRANT)  # as printed
    conn.commit()
    assert _defects(conn, document) == []
    _install(conn, document)
    assert conn.execute(
        "SELECT tgrelid::regclass::text, count(*) FROM pg_trigger"
        " WHERE tgname LIKE 'customer_consent_%' GROUP BY 1"
    ).fetchall() == [("crm.customer", 2)]
    assert _privilege_coverage(conn) == []

    # the privilege taken away after the install: coverage says what the triggers lack
    conn.execute("REVOKE TRIGGER ON crm.customer FROM syncctl_owner")
    conn.commit()
    assert _privilege_coverage(conn) == [
        (
            "crm.customer",
            "the owner role syncctl_owner lacks TRIGGER on the table (opt_in holds"
            " newsletter_opt_in as is: local changes of it are consent decisions):"
            f" {GRANT}",
        )
    ]
    # installing the active document again binds the triggers anew: a warning says what lacks
    warnings: list[str] = []
    conn.add_notice_handler(lambda notice: warnings.append(notice.message_primary or ""))
    _install(conn, document)
    assert warnings == [
        "crm.customer: no TRIGGER privilege for syncctl_owner, so local changes of its consent"
        " columns are not recorded as consent",
        "crm.customer: no TRIGGER privilege for syncctl_owner, so customers the shop deletes or"
        " re-keys itself keep their tritonX link, consents and erasure requests under the old"
        " key",
    ]


def test_a_transformed_consent_column_needs_no_trigger_privilege(
    conn: psycopg.Connection[Any],
) -> None:
    bind_boutique(conn, BOUTIQUE, classified=True)  # newsletter = 'J'/'N': no triggers
    assert _defects(conn, BOUTIQUE.mapping) == []
    assert _privilege_coverage(conn) == []
