"""Data minimisation in the daemon: an applied inbox row keeps tritonX's snapshot only for the
retention period (`syncctl run --keep-payloads-days`, 7 by default); every cycle the leader
drops the payloads of decided rows older than that (sync.drop_payloads). Dead letters and
pending rows keep theirs: a retry needs them. The work a cycle is bounded, so the backlog a
bootstrap leaves a week later is worked off over a few cycles in short transactions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from syncctl import queries

log = logging.getLogger("syncctl.payload_retention")


@dataclass
class PayloadRetention:
    """The daemon's hook: called every cycle, drops at most `batch` payloads older than `keep`
    and returns how many it dropped."""

    keep: timedelta
    batch: int = 10_000

    def __call__(self, conn: psycopg.Connection[Any]) -> int:
        params = {"older_than": self.keep, "limit": self.batch}
        with conn.transaction():
            row = queries.one(conn, "drop_payloads", **params)
        dropped = int(row[0]) if row else 0
        if dropped:
            log.info("dropped the payloads of %d decided inbox rows", dropped)
        return dropped
