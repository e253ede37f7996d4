"""Delivering sync.outbox to tritonX: due rows in per-customer order, each with its
idempotency key, at least once. A transient failure retries with exponential backoff and full
jitter, and so does any failure that is not tritonX's answer about the row (a refused token, an
HTTP library error, a bug); a permanent refusal of the row (4xx, a malformed customer number)
makes it dead until an operator retries it. The rows are claimed in the transaction that records
their results: a failure the loop cannot record rolls it back and leaves them pending."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from syncctl import queries
from syncctl.errors import TokenRefused, TritonXRefused, TritonXUnavailable
from syncctl.tritonx import TritonXClient

log = logging.getLogger("syncctl.outbox")
BASE_SECONDS = 1.0
CAP_SECONDS = 3600.0


def retry_in(attempts: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds until the next attempt after `attempts` failed ones."""
    ceiling = min(CAP_SECONDS, BASE_SECONDS * 2**attempts)
    return max(rng.uniform(0, ceiling), retry_after or 0.0)


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    dead: int = 0


def deliver_due(
    conn: psycopg.Connection[Any],
    client: TritonXClient,
    *,
    limit: int = 100,
    rng: random.Random | None = None,
) -> DeliveryReport:
    rng = rng or random.Random()
    report = DeliveryReport()
    with conn.transaction():
        due = queries.all(conn, "claim_outbox", limit=limit)
        blocked: set[str] = set()
        for row_id, number, event_type, key, payload, attempts in due:
            if number in blocked:
                continue  # an earlier row of this customer failed just now: keep the order
            body = {**payload, "idempotency_key": str(key)}
            try:
                if event_type != "customer.anonymize_requested":
                    raise TritonXRefused(f"no delivery for outbox event type {event_type}")
                client.request_anonymisation(number, body)
            except Exception as exc:
                blocked.add(number)
                # a refused token refuses every row: not this row's fault, so not dead
                if isinstance(exc, TritonXRefused) and not isinstance(exc, TokenRefused):
                    queries.run(
                        conn, "outbox_failed", id=row_id, error=str(exc), permanent=True, retry_in=0
                    )
                    report.dead += 1
                    log.error("outbox %d dead: %s", row_id, exc)
                    continue
                # tritonX unavailable or refusing the token, the HTTP library, a bug
                after = exc.retry_after if isinstance(exc, TritonXUnavailable) else None
                queries.run(
                    conn,
                    "outbox_failed",
                    id=row_id,
                    error=type(exc).__name__,
                    permanent=False,
                    retry_in=retry_in(attempts, after, rng),
                )
                report.retried += 1
                log.warning("outbox %d will be retried: %s", row_id, type(exc).__name__)
            else:
                queries.run(conn, "outbox_delivered", id=row_id)
                report.delivered += 1
    return report


@dataclass(frozen=True)
class OutboxEvent:
    """An event for tritonX as `syncctl outbox list` shows it (its payload stays inside)."""

    id: int
    customer_number: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def events(
    conn: psycopg.Connection[Any], *, state: str | None = None, limit: int = 50
) -> list[OutboxEvent]:
    """Outbox events, newest first, of one state or all."""
    return [OutboxEvent(*row) for row in queries.all(conn, "outbox_list", state=state, limit=limit)]


def retry(conn: psycopg.Connection[Any], outbox_id: int) -> bool:
    """Make a dead or waiting event due now (committed); False when there is no such event."""
    row = queries.one(conn, "outbox_retry", id=outbox_id)
    conn.commit()
    return bool(row and row[0])
