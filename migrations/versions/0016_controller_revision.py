"""The controller role reads alembic's version table: `syncctl run`, `status` and `db check`
compare the schema revision before they work, and failed with a privilege error when run as a
login in the controller group.

Revision ID: 0016_controller_revision
Revises: 0015_payload_retention
Create Date: 2026-11-23
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0016_controller_revision"
down_revision = "0015_payload_retention"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"


def upgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    run_sql_files(conn, sorted((FROZEN / revision).glob("*.sql")))
    conn.execute("SELECT sync.apply_privileges()")


def downgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    run_sql_files(conn, [FROZEN / "0013_gdpr" / "95_roles.sql"])
    row = conn.execute(
        "SELECT format('REVOKE SELECT ON public.alembic_version FROM %I',"
        " sync.role_name('controller'))"
    ).fetchone()
    conn.execute(row[0])  # type: ignore[index]
    conn.execute("SELECT sync.apply_privileges()")
