"""Link repair moves a local customer still linked to a merged-away number to its survivor
(sync.repair_redirected_link; merge_customer skipped it as already merged), and a login with
the number of an erased customer records one open 'erased' link conflict.

Revision ID: 0012_link_repair
Revises: 0011_erased_deliveries
Create Date: 2026-11-22
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0012_link_repair"
down_revision = "0011_erased_deliveries"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"


def upgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    run_sql_files(conn, [FROZEN / revision / "70_login.sql"])
    conn.execute("SELECT sync.apply_privileges()")


def downgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    conn.execute("DROP FUNCTION IF EXISTS sync.repair_redirected_link(text, text)")
    run_sql_files(conn, [FROZEN / "0010_login_race" / "70_login.sql"])
    conn.execute("SELECT sync.apply_privileges()")
