"""Reason codes with '@' in report.anonymisations; sync.apply_privileges() covers the gdpr
schema when it exists and takes the shop's functions from sync.webshop_function, which later
revisions extend (a registered function must pin its search_path, or the grant fails).

Revision ID: 0009_report_privileges
Revises: 0008_report_roles
Create Date: 2026-11-22
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0009_report_privileges"
down_revision = "0008_report_roles"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"


def upgrade() -> None:
    folder = FROZEN / revision
    run_sql_files(
        op.get_bind().connection.driver_connection,
        [folder / "90_report.sql", folder / "95_roles.sql"],
    )


def downgrade() -> None:
    # the previous definitions: CREATE OR REPLACE brings them back, then the registry goes
    conn = op.get_bind().connection.driver_connection
    folder = FROZEN / "0008_report_roles"
    run_sql_files(conn, [folder / "90_report.sql", folder / "95_roles.sql"])
    conn.execute("DROP TABLE IF EXISTS sync.webshop_function")
