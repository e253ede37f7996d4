"""The subject access export reads the audit for the customer without working out the
customer's id again for every audit row: on pagila, with 2,881 audit rows, one export took 2 s
(5.8 s with JIT), growing with the audit log. Counted, not timed: the calls of sync._key_ids
in the export's transaction do not grow with the number of audit rows."""

from __future__ import annotations

from typing import Any

import psycopg

from syncctl import gdpr
from tests.feed import stage, upserted

_CALLS = (
    "SELECT coalesce(sum(calls), 0) FROM pg_catalog.pg_stat_xact_user_functions"
    " WHERE schemaname = 'sync' AND funcname = '_key_ids'"
)


def _key_id_calls(conn: psycopg.Connection[Any], customer: int) -> int:
    """The calls of sync._key_ids one export makes (a difference: the counts a backend has
    not yet reported carry over from one transaction to the next)."""
    conn.execute("SET track_functions = 'all'")
    with conn.transaction():
        before = conn.execute(_CALLS).fetchone()
        exported = conn.execute(
            "SELECT count(*) FROM gdpr.subject_data(%s::text)", [str(customer)]
        ).fetchone()
        after = conn.execute(_CALLS).fetchone()
    assert before is not None and after is not None and exported is not None
    assert exported[0] > 0
    return int(after[0]) - int(before[0])


def test_the_export_does_not_redo_work_per_audit_row(conn: psycopg.Connection[Any]) -> None:
    stage(conn, [upserted(f"TX{n:08d}", 1) for n in range(1, 11)])
    customer = gdpr.resolve_subject(conn, number="TX00000001")[0]
    conn.commit()
    few = _key_id_calls(conn, customer)

    stage(conn, [upserted(f"TX{n:08d}", 1) for n in range(11, 411)])
    conn.commit()
    many = _key_id_calls(conn, customer)

    assert many == few, f"{few} calls, then {many} after 400 more audit rows"
