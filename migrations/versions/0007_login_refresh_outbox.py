"""Login linking (sync.login, link conflicts, adoption of unlinked local customers), refresh
requests (queue + NOTIFY), outbox delivery functions; merge's re-pointing shared with adoption
(sync._move_customer).

Revision ID: 0007_login_refresh_outbox
Revises: 0006_apply_speed
Create Date: 2026-11-22
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from syncctl.schema import run_sql_files

revision = "0007_login_refresh_outbox"
down_revision = "0006_apply_speed"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"

_DROP = """
DROP VIEW IF EXISTS sync.adoptable_customer, sync.link_anomaly;
DROP FUNCTION IF EXISTS
    sync.retry_outbox(bigint),
    sync.outbox_failed(bigint, text, boolean, interval),
    sync.outbox_delivered(bigint),
    sync.claim_outbox(integer),
    sync.adopt_local_customer(bigint, bigint, text),
    sync.login(text, text),
    sync._record_link_conflict(text, text, bigint, bigint[]),
    sync.requeue_refresh(text, integer, text),
    sync.claim_refresh_requests(integer),
    sync.request_refresh(text);
DROP INDEX IF EXISTS shop.customer_login_email;
DROP FUNCTION IF EXISTS sync.normalise_email(text);
DROP TABLE IF EXISTS sync.refresh_request, sync.link_conflict;
"""


def upgrade() -> None:
    folder = FROZEN / revision
    run_sql_files(
        op.get_bind().connection.driver_connection,
        [folder / "50_merge.sql", folder / "70_login.sql", folder / "74_outbox_delivery.sql"],
    )


def downgrade() -> None:
    conn = op.get_bind().connection.driver_connection
    conn.execute(_DROP)
    run_sql_files(conn, [FROZEN / "0002_merge_anonymise" / "50_merge.sql"])
    conn.execute("DROP FUNCTION IF EXISTS sync._move_customer(bigint, bigint)")
