"""Payload retention run by the daemon: sync.drop_payloads takes a limit (bounded work a call,
oldest first) and reads a partial index of the inbox rows that still hold a payload.

Revision ID: 0015_payload_retention
Revises: 0014_erasure_scope
Create Date: 2026-11-23
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0015_payload_retention"
down_revision = "0014_erasure_scope"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"


def upgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    run_sql_files(conn, sorted((FROZEN / revision).glob("*.sql")))
    conn.execute("SELECT sync.apply_privileges()")


def downgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    conn.execute("DROP FUNCTION sync.drop_payloads(interval, integer)")
    conn.execute("DROP INDEX sync.inbox_payload_held")
    run_sql_files(conn, [FROZEN / "0002_merge_anonymise" / "65_data_minimisation.sql"])
    conn.execute("SELECT sync.apply_privileges()")
