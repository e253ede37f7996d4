"""Erasure proof in the subject's rows: the residue search leaves out rows that belong to other
customers (people share names, households share addresses, so a namesake no longer fails an
erasure), scans each table once for all its columns, and the proof lists other customers with
the same e-mail.

Revision ID: 0014_erasure_scope
Revises: 0013_gdpr
Create Date: 2026-11-23
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0014_erasure_scope"
down_revision = "0013_gdpr"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"


def upgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    run_sql_files(conn, sorted((FROZEN / revision).glob("*.sql")))
    conn.execute("SELECT sync.apply_privileges()")


def downgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    conn.execute("DROP FUNCTION gdpr.residue_search(text[], bigint)")
    run_sql_files(conn, [FROZEN / "0013_gdpr" / "87_gdpr_erasure.sql"])
    conn.execute("DROP FUNCTION gdpr._residue_scopes(bigint)")
    conn.execute("DROP FUNCTION gdpr._same_email_customers(bigint)")
    conn.execute("SELECT sync.apply_privileges()")
