"""No snapshot of an erased customer survives in the inbox: a re-delivered, duplicate or
dead-lettered record of an anonymised or deleted customer (or of one merged into such) keeps only
its envelope, also when its own customer_number did not parse and only the snapshot names it.

Revision ID: 0011_erased_deliveries
Revises: 0010_login_race
Create Date: 2026-11-22
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0011_erased_deliveries"
down_revision = "0010_login_race"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"


def upgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    folder = FROZEN / revision
    run_sql_files(conn, [folder / "30_sync_apply.sql", folder / "55_anonymise.sql"])
    conn.execute("SELECT sync.apply_privileges()")


def downgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    run_sql_files(
        conn,
        [
            FROZEN / "0006_apply_speed" / "30_sync_apply.sql",
            FROZEN / "0002_merge_anonymise" / "55_anonymise.sql",
        ],
    )
    conn.execute("DROP FUNCTION IF EXISTS sync._scrub_erased_deliveries(bigint, bigint)")
    conn.execute("DROP INDEX IF EXISTS sync.inbox_snapshot_number_unparsed")
    conn.execute("SELECT sync.apply_privileges()")
