"""sync.login no longer raises when the feed creates the same customer between its look-up and
its write: that case answers 'linked'.

Revision ID: 0010_login_race
Revises: 0009_report_privileges
Create Date: 2026-11-22
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0010_login_race"
down_revision = "0009_report_privileges"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"


def upgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    run_sql_files(conn, [FROZEN / revision / "70_login.sql"])
    conn.execute("SELECT sync.apply_privileges()")


def downgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    run_sql_files(conn, [FROZEN / "0007_login_refresh_outbox" / "70_login.sql"])
    conn.execute("DROP FUNCTION IF EXISTS sync._link_new_login(text, text, text)")
    conn.execute("SELECT sync.apply_privileges()")
