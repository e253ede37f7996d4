"""One active controller per database: the leader holds a session-level advisory lock
(7343, 1) on a connection of its own (syncctl.status.leader says who holds it). Standbys try
again every second; when the leader's session dies (kill -9 included), PostgreSQL releases the
lock and a standby takes over."""

from __future__ import annotations

from typing import Any

import psycopg

from syncctl import queries


class Leadership:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        if not conn.autocommit:
            raise ValueError("leadership needs an autocommit connection of its own")
        self._conn = conn
        self.held = False

    def try_acquire(self) -> bool:
        if not self.held:
            row = queries.one(self._conn, "leader_try")
            self.held = bool(row and row[0])
        return self.held

    def release(self) -> None:
        if self.held and not self._conn.closed:
            queries.run(self._conn, "leader_release")
        self.held = False
