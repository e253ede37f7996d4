"""Baseline: the whole engine as of the security rewrite (owner role, pinned search paths,
least privilege). It replaces the development revisions 0001-0016, which were never installed
outside this repository; docs/operations.md says how a database at 0016 moves over.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen" / revision

# Roles are the cluster's: a downgrade leaves them (a DBA drops them with DROP ROLE).
# The shop's tables stay, the reference shop's included (it is not the engine's: `syncctl db
# reference-shop` made it); the triggers that call the engine's functions go with them.
_DROP = "DROP SCHEMA IF EXISTS syncmap, report, gdpr, sync CASCADE"


def upgrade() -> None:
    run_sql_files(op.get_bind().connection.driver_connection, sorted(FROZEN.glob("*.sql")))


def downgrade() -> None:
    op.execute(_DROP)
