"""A platform-shaped test shop (cycle, binary) installed the DBA's way and driven through the CLI
in a subprocess: the DBA's SQL, the GRANTs `mapping check` prints, and a shop object that pulls
from the simulator and reads what the engine holds (the audit, dead letters, the outbox) to show
that nothing personal is in it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg

from tests.acceptance.conftest import Simulator
from tests.acceptance.test_untidy_shop import _run


def admin_sql(dsn: str, sql: str) -> None:
    """Run a DBA's script (several statements) as the test server's superuser."""
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(sql.encode())


def grants(checked: str) -> list[str]:
    """The GRANT statements `syncctl mapping check` printed, one a line."""
    return re.findall(r": (GRANT .*;)$", checked, re.MULTILINE)


@dataclass
class PlatformShop:
    dsn: str
    simulator: Simulator
    conn: psycopg.Connection[Any]

    def pull(self) -> str:
        result = _run("pull", dsn=self.dsn, tritonx=self.simulator.url)
        assert result.returncode == 0, result.stdout + result.stderr
        return str(result.stdout + result.stderr)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(sql.encode(), list(params))
        rows = cursor.fetchall() if cursor.description else []
        self.conn.commit()
        return rows

    def dead_letters(self) -> dict[str, tuple[int, str]]:
        rows = self.query(
            "SELECT i.customer_number, i.id, d.reason FROM sync.dead_letter AS d"
            " JOIN sync.inbox AS i ON i.id = d.inbox_id"
        )
        return {str(n): (int(i), str(r)) for n, i, r in rows}

    def personal(self) -> set[str]:
        """Every personal value tritonX ever sent, and every word of a name or street."""
        state = self.simulator.admin("GET", "/admin/state").json()
        values: set[str] = set()
        for customer in state.values():
            snapshot = customer.get("snapshot") or {}
            for field in (
                "email",
                "first_name",
                "last_name",
                "phone",
                "mobile",
                "street",
                "postcode",
            ):
                if snapshot.get(field):
                    values.add(str(snapshot[field]))
        return values

    def engine_text(self) -> str:
        """Everything the audit, the dead letters' reasons and the outbox hold, as text."""
        rows = self.query(
            "SELECT coalesce((SELECT string_agg(to_jsonb(a)::text, ' ') FROM sync.audit AS a),"
            " '') || coalesce((SELECT string_agg(reason, ' ') FROM sync.dead_letter), '')"
            " || coalesce((SELECT string_agg(to_jsonb(o)::text, ' ') FROM sync.outbox AS o),"
            " '')"
        )
        return str(rows[0][0])
