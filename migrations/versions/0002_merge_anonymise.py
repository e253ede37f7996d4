"""Merge and anonymise inside PostgreSQL: registry of customer-linked tables (merge rules, PII
strategies), merge with flat redirects, anonymise and delete with tombstones, back-office
anonymise with an outbox, dead-letter retry and discard, ordered apply of all event types,
payload retention.

Revision ID: 0002_merge_anonymise
Revises: 0001_initial
Create Date: 2026-11-23
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0002_merge_anonymise"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"

# What 0002 added, newest first; the 0001 copies of the files it changed are re-run after.
_DROP = """
DROP FUNCTION IF EXISTS
    sync.drop_payloads(interval),
    sync.discard_dead_letter(bigint, text),
    sync.retry_dead_letter(bigint),
    sync._apply_event(bigint),
    sync._decide_event(sync.inbox),
    sync._rejection_reason(text, text, text, text, text),
    sync.event_envelope(jsonb),
    sync.anonymise_customer(text, text, text),
    sync.anonymise_from_backoffice(bigint, text, text),
    sync.anonymise_plan(text),
    sync._anonymise_locally(bigint, text, text, text),
    sync._anonymise(text, boolean, text, text, bigint, text, integer, boolean),
    sync.anonymise_refusal(text),
    sync._checked_code(text, text),
    sync._scrub_copies(text, text),
    sync._inbox_copies(text),
    sync._erase_rows(bigint, boolean),
    sync._has_bookkeeping(bigint),
    sync._erasure_plan(bigint, boolean),
    sync._scrub_assignments(regclass, name),
    sync.merge_customers(text[], text, text),
    sync.merge_customer(text, text, text, text),
    sync._merge(text, text, text, bigint, text, integer),
    sync._absorb_customer(bigint, bigint),
    sync._repoint(regclass, name, name, name, bigint, bigint),
    sync.merge_plan(text, text),
    sync.merge_refusal(text, text),
    sync.resolve_customer(text),
    sync.resolve_customer_number(text),
    sync.coverage_defects(),
    sync.unclassified_columns(),
    sync._unique_keys(regclass, name),
    sync.customer_tables(),
    sync.customer_links(),
    sync._apply_upsert_run(bigint, bigint, bigint[]),
    sync._apply_upserts(bigint, bigint, bigint[]);
DROP TABLE IF EXISTS sync.pii_column, sync.anonymise_rule, sync.merge_rule, sync.outbox;
DROP INDEX IF EXISTS sync.inbox_merge_into;
ALTER TABLE sync.audit DROP COLUMN IF EXISTS related_number;
"""


def upgrade() -> None:
    run_sql_files(
        op.get_bind().connection.driver_connection,
        sorted((FROZEN / revision).glob("*.sql")),
    )


def downgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    conn.execute(_DROP)
    run_sql_files(
        conn,
        [
            FROZEN / "0001_initial" / "20_sync_tables.sql",
            FROZEN / "0001_initial" / "30_sync_apply.sql",
        ],
    )
