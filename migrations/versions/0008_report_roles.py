"""Reporting views (schema report) and least privilege: owner, controller, webshop and
reporting group roles, nothing for PUBLIC, the shop's API functions as SECURITY DEFINER with a
pinned search_path. Role names take their prefix from `-x role_prefix=...` or
SYNCCTL_ROLE_PREFIX (default `syncctl`). Revisions after this one call sync.apply_privileges()
last.

Revision ID: 0008_report_roles
Revises: 0007_login_refresh_outbox
Create Date: 2026-11-22
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import context, op

from syncctl.schema import run_sql_files

revision = "0008_report_roles"
down_revision = "0007_login_refresh_outbox"
branch_labels = None
depends_on = None

FROZEN = Path(__file__).resolve().parent.parent / "frozen"

_REVERT = """
DROP SCHEMA IF EXISTS report CASCADE;
DO $$
DECLARE api regprocedure;
BEGIN
    FOR api IN SELECT w.function_signature FROM sync.webshop_api() AS w LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY INVOKER', api);
    END LOOP;
END
$$;
DROP FUNCTION IF EXISTS sync.apply_privileges(), sync.webshop_api(), sync.role_name(text);
DROP TABLE IF EXISTS sync.setting;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA shop, sync TO PUBLIC;
ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
"""


def upgrade() -> None:
    prefix = context.get_x_argument(as_dictionary=True).get("role_prefix") or os.environ.get(
        "SYNCCTL_ROLE_PREFIX", ""
    )
    conn = op.get_bind().connection.driver_connection
    conn.execute("SELECT set_config('syncctl.role_prefix', %s, true)", [prefix])
    folder = FROZEN / revision
    run_sql_files(conn, [folder / "90_report.sql", folder / "95_roles.sql"])


def downgrade() -> None:
    op.get_bind().connection.driver_connection.execute(_REVERT)
