"""GDPR data policies (schema gdpr): policies with categories and retention, append-only
consent history (tritonX opt-in recorded by trigger, merges combine consents, a collection
guard on shop.newsletter_subscription), retention purge in batches, subject access export,
rectification, erasure requests with a residue search. The scrub builder of the engine
(sync._scrub_sql) now also serves retention; the shop's GDPR functions are registered; the
report schema gains erasure requests and the daily job's runs.

Revision ID: 0013_gdpr
Revises: 0012_link_repair
Create Date: 2026-11-22
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0013_gdpr"
down_revision = "0012_link_repair"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"

# The schema takes its functions, views (report.erasure_requests and report.gdpr_daily_runs
# too), the triggers on shop tables and the constraint trigger with it; the registry rows and
# the shop's functions are the engine's.
_DROP = """
DROP SCHEMA gdpr CASCADE;
DELETE FROM sync.pii_column WHERE table_schema = 'gdpr';
DELETE FROM sync.anonymise_rule WHERE table_schema = 'gdpr';
DELETE FROM sync.merge_rule WHERE table_schema = 'gdpr';
DELETE FROM sync.webshop_function WHERE function_signature LIKE 'gdpr.%';
"""


def upgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    run_sql_files(conn, sorted((FROZEN / revision).glob("*.sql")))
    conn.execute("SELECT sync.apply_privileges()")


def downgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    conn.execute(_DROP)
    run_sql_files(
        conn,
        [
            FROZEN / "0011_erased_deliveries" / "55_anonymise.sql",
            FROZEN / "0009_report_privileges" / "90_report.sql",
            FROZEN / "0009_report_privileges" / "95_roles.sql",
        ],
    )
    conn.execute("DROP FUNCTION sync._scrub_sql(regclass, name, text[])")
