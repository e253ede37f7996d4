"""Initial schema: shop reference model, sync engine (inbox, cursor, redirects, tombstones,
dead letters, audit) and the set-based apply of customer.upserted.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen" / revision


def upgrade() -> None:
    run_sql_files(op.get_bind().connection.driver_connection, sorted(FROZEN.glob("*.sql")))


def downgrade() -> None:
    op.execute("DROP SCHEMA sync CASCADE")
    op.execute("DROP SCHEMA shop CASCADE")
