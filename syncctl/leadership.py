"""One active controller per database: the leader holds a session-level advisory lock
(7343, 1) on a connection of its own. Standbys try again every second; when the leader's
session dies (kill -9 included), PostgreSQL releases the lock and a standby takes over."""

from __future__ import annotations

from typing import Any

import psycopg

from syncctl.database import queries


class Leadership:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        if not conn.autocommit:
            raise ValueError("leadership needs an autocommit connection of its own")
        self._conn = conn
        self.held = False

    def try_acquire(self) -> bool:
        if not self.held:
            row = self._conn.execute(queries()["leader_try"]).fetchone()
            self.held = bool(row and row[0])
        return self.held

    def release(self) -> None:
        if self.held and not self._conn.closed:
            self._conn.execute(queries()["leader_release"])
        self.held = False


def leader(conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
    """(pid, application_name, client address, session start) of the leader, if any."""
    row = conn.execute(queries()["leader_info"]).fetchone()
    return tuple(row) if row else None
