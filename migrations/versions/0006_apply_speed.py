"""Faster apply of upserts: the audit is written in a second statement from the decisions
(no quadratic join of two CTEs), a concurrent writer is raised as a serialization failure, and
the structural check of every staged row is inlinable and avoids bounded regex repeats.

Revision ID: 0006_apply_speed
Revises: 0002_merge_anonymise
Create Date: 2026-11-22
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0006_apply_speed"
down_revision = "0002_merge_anonymise"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"


def upgrade() -> None:
    run_sql_files(
        op.get_bind().connection.driver_connection, [FROZEN / revision / "30_sync_apply.sql"]
    )


def downgrade() -> None:
    # the previous definitions: CREATE OR REPLACE brings them back
    run_sql_files(
        op.get_bind().connection.driver_connection,
        [FROZEN / "0002_merge_anonymise" / "30_sync_apply.sql"],
    )
