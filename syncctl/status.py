"""The state of the sync as `syncctl status`, `syncctl demo` and the metrics exporter show it:
cursors with their lag, counts, queues, payloads held, the leader. One reading, typed; counts,
times and ids only, no personal data. Lag is one thing everywhere: the age of the last applied
event (now minus the occurred_at tritonX gave it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from syncctl import environment, queries
from syncctl.errors import SyncctlError, TritonXProtocolError, TritonXRefused


@dataclass(frozen=True)
class Cursor:
    """A feed cursor: where it stands and how old its last applied event is."""

    source: str
    position: str | None
    last_seq: int | None
    last_event_at: datetime | None
    moved_at: datetime | None
    lag_seconds: float | None


@dataclass(frozen=True)
class Counts:
    linked_customers: int | None  # None: the customer table is locked (status never waits)
    dead_letters: int
    inbox_pending: int


@dataclass(frozen=True)
class Queues:
    outbox_pending: int
    outbox_dead: int
    refresh_queue: int
    last_pull: datetime | None


@dataclass(frozen=True)
class Payloads:
    """Inbox rows still holding tritonX's snapshot."""

    held: int
    oldest_received_at: datetime | None


@dataclass(frozen=True)
class Leader:
    """The session holding the controller's leader lock."""

    pid: int
    application_name: str
    client_address: str | None
    since: datetime
    waiting_seconds: float | None = None  # its work session waits for a lock this long
    blocked_by: int | None = None  # the session holding that lock


@dataclass(frozen=True)
class AuditEffect:
    action: str
    outcome: str
    reason: str | None
    events: int


def cursors(conn: psycopg.Connection[Any]) -> list[Cursor]:
    return [
        Cursor(str(source), position, last_seq, last_at, moved_at, lag)
        for source, position, last_seq, last_at, moved_at, lag in queries.all(
            conn, "status_cursors"
        )
    ]


# how long reading the customer table may wait for a lock before its count is shown unknown
LOCK_WAIT = "1s"


def counts(conn: psycopg.Connection[Any]) -> Counts:
    row = queries.one(conn, "status_counts")
    assert row is not None
    return Counts(linked_customers(conn), int(row[0]), int(row[1]))


def linked_customers(conn: psycopg.Connection[Any]) -> int | None:
    """Local customers linked to tritonX; None while a lock on the customer table (a DBA's
    ACCESS EXCLUSIVE, say) would make the count wait: status and the metrics never wait for it."""
    try:
        with conn.transaction():
            queries.one(conn, "status_lock_timeout", timeout=LOCK_WAIT)
            row = queries.one(conn, "status_linked")
    except psycopg.errors.LockNotAvailable:
        return None
    assert row is not None
    return int(row[0])


def dead_letters(conn: psycopg.Connection[Any]) -> int:
    row = queries.one(conn, "status_dead_letters")
    assert row is not None
    return int(row[0])


class PendingTracker:
    """Staged events not decided, read again and again (the metrics exporter, every cycle) at
    the cost of what was staged since the last reading. A staged row is decided in its page's
    transaction, and a decision is never taken back (an audit row, or a dead letter that is
    decided in turn), so a row once seen decided need not be looked at again: the first
    reading counts the whole inbox, each later one the rows staged since, plus the rows found
    pending before (they stay pending until an operator applies them)."""

    def __init__(self) -> None:
        self._after: int | None = None  # every row up to this id was looked at
        self._pending: list[int] = []

    def read(self, conn: psycopg.Connection[Any]) -> int:
        if self._after is None:
            row = queries.one(conn, "pending_all")
        else:
            row = queries.one(conn, "pending_since", after=self._after, known=self._pending)
        assert row is not None
        pending, last = row
        self._pending = [int(i) for i in pending]
        self._after = max(int(last) if last is not None else 0, self._after or 0)
        return len(self._pending)


def queues(conn: psycopg.Connection[Any]) -> Queues:
    row = queries.one(conn, "status_queues")
    assert row is not None
    return Queues(int(row[0]), int(row[1]), int(row[2]), row[3])


def payloads(conn: psycopg.Connection[Any]) -> Payloads:
    row = queries.one(conn, "status_payloads")
    assert row is not None
    return Payloads(int(row[0]), row[1])


def leader(conn: psycopg.Connection[Any]) -> Leader | None:
    row = queries.one(conn, "leader_info")
    if row is None:
        return None
    pid, name, address, since, waiting, blocked_by = row
    return Leader(int(pid), str(name), address, since, waiting, blocked_by)


def audit_effects(conn: psycopg.Connection[Any]) -> list[AuditEffect]:
    return [
        AuditEffect(str(action), str(outcome), reason, int(events))
        for action, outcome, reason, events in queries.all(conn, "audit_effects")
    ]


@dataclass(frozen=True)
class Status:
    """Everything `syncctl status` shows from the database."""

    cursors: list[Cursor]
    counts: Counts
    payloads: Payloads
    queues: Queues
    leader: Leader | None


def read(conn: psycopg.Connection[Any]) -> Status:
    return Status(cursors(conn), counts(conn), payloads(conn), queues(conn), leader(conn))


@dataclass(frozen=True)
class FeedHead:
    """The newest seq tritonX's feed has, or why it could not be read."""

    last_seq: int | None = None
    problem: str | None = None


def feed_head(url: str, token: str | None) -> FeedHead:
    """Ask tritonX for one page from the start: its last seq (never raises a tritonX error)."""
    try:
        with environment.tritonx_client(url, token) as client:
            return FeedHead(last_seq=client.fetch_changes(None, 1).last_seq)
    except TritonXRefused as exc:
        return FeedHead(problem=f"{exc.state} ({exc})")
    except TritonXProtocolError as exc:
        # an answer came, but not tritonX's (a proxy's maintenance page): the leader's state says
        # "not the contract" for the same answer, and "not reachable" would send the operator
        # looking at the network
        return FeedHead(problem=f"not the contract ({exc})")
    except SyncctlError as exc:
        return FeedHead(problem=f"not reachable ({exc})")
