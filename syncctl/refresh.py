"""Login-time refresh: numbers queued by sync.request_refresh (the login function queues one,
and NOTIFY syncctl_refresh wakes the controller) are fetched from tritonX one by one and staged
through the same inbox as the feed, as synthetic events whose ids make repeats duplicates.
404 and 410 answers become the deleted, merged and anonymised effects. Claimed requests are
never lost to a failure: a claim is a lease (the request stays queued until its refresh is
applied, and is claimed again when a controller died holding it), a number tritonX cannot answer
goes back in the queue at once, and when anything else fails (staging, the database, a bug)
every claimed number not yet applied goes back before the failure is raised. A request for
something that is not a customer number is dropped; it never reaches tritonX's URL."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from syncctl import grammar, queries
from syncctl.errors import InvalidCustomerNumber
from syncctl.loader import stage_records
from syncctl.tritonx import CustomerAnswer, TritonXClient

log = logging.getLogger("syncctl.refresh")
SOURCE = "tritonx-refresh"
# The feed's versions start at 1; a synthetic non-upsert event carries no version of its own.
_SYNTHETIC_VERSION = 1


def refresh_event(number: str, answer: CustomerAnswer, requested_at: datetime) -> dict[str, Any]:
    """The change record a refresh answer stands for, for the request made at `requested_at`."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    base = {"customer_number": number, "occurred_at": now}
    if answer.status == "live":
        return {
            **base,
            "event_id": f"refresh:{number}:v{answer.version}",
            "type": "customer.upserted",
            "version": answer.version,
            "customer": answer.snapshot,
        }
    if answer.status == "merged":
        return {
            **base,
            "event_id": f"refresh:{number}:merged:{answer.into}",
            "type": "customer.merged",
            "version": _SYNTHETIC_VERSION,
            "into": answer.into,
        }
    if answer.status == "anonymised":
        return {
            **base,
            "event_id": f"refresh:{number}:anonymized",
            "type": "customer.anonymized",
            "version": _SYNTHETIC_VERSION,
            "reason_code": "REFRESH",
        }
    # a 404 is final only for a customer syncctl holds tritonX data for: for a number tritonX
    # does not know yet (a login's stub) it is skipped, and a later 404, once the feed brought
    # the customer, must not be taken for a repeat of that one. Each request is answered once:
    # a request claimed again after a crash stages the same id, a duplicate.
    return {
        **base,
        "event_id": f"refresh:{number}:deleted:{requested_at.astimezone(UTC):%Y%m%dT%H%M%S%f}",
        "type": "customer.deleted",
        "version": _SYNTHETIC_VERSION,
    }


def process_refresh_requests(
    conn: psycopg.Connection[Any],
    client: TritonXClient,
    *,
    limit: int = 100,
    on_latency: Any = None,
    keep_payloads: bool = True,
) -> int:
    """Fetch and apply up to `limit` queued refreshes; returns how many were applied.
    `keep_payloads` False: the inbox keeps the answers of dead letters only."""
    with conn.transaction():
        claimed = queries.all(conn, "claim_refresh_requests", limit=limit)
    left = list(reversed(claimed))  # claimed and not done yet, the next one last
    applied = 0
    try:
        while left:
            number, requested_at, attempts = left[-1]
            try:
                answer = client.fetch_customer(number)
            except InvalidCustomerNumber:
                left.pop()
                _done(conn, number, requested_at)
                # the value may be anything a login form was given: its length only
                log.warning(
                    "refresh request dropped: not a customer number (%d chars)", len(number)
                )
                continue
            except Exception as exc:  # tritonX, the HTTP library or a bug: ask again later
                log.warning("refresh of %s failed: %s", number, type(exc).__name__)
                _requeue(conn, number, attempts, type(exc).__name__)
                left.pop()
                continue
            stage_records(
                conn,
                SOURCE,
                [refresh_event(number, answer, requested_at)],
                keep_payloads=keep_payloads,
            )
            left.pop()
            _done(conn, number, requested_at)
            applied += 1
            if on_latency is not None:
                on_latency((datetime.now(UTC) - requested_at).total_seconds())
    finally:
        _release(conn, left)
    return applied


def _done(conn: psycopg.Connection[Any], number: str, requested_at: datetime) -> None:
    """The request is answered (a crash before this leaves a lease that runs out: the refresh
    is then done again, and staging it again is a duplicate)."""
    with conn.transaction():
        queries.run(conn, "refresh_done", number=number, requested_at=requested_at)


def _requeue(conn: psycopg.Connection[Any], number: str, attempts: int, error: str) -> None:
    with conn.transaction():
        queries.run(conn, "requeue_refresh", number=number, attempts=attempts, error=error)


def _release(conn: psycopg.Connection[Any], left: list[tuple[str, datetime, int]]) -> None:
    """Put back claimed requests nobody tried (their attempts unchanged)."""
    if not left:
        return
    try:
        if conn.info.transaction_status == TransactionStatus.INERROR:
            conn.rollback()
        with conn.transaction():
            queries.run(conn, "release_refresh", numbers=[number for number, _, _ in left])
    except psycopg.Error:
        # the numbers, so that an operator can request them again (sync.request_refresh)
        log.error(
            "%d claimed refresh requests could not be put back: %s",
            len(left),
            " ".join(n if grammar.is_customer_number(n) else "(invalid)" for n, _, _ in left),
        )


def wait_for_requests(listener: psycopg.Connection[Any], seconds: float) -> bool:
    """Block up to `seconds` for a NOTIFY syncctl_refresh; True when one came."""
    deadline = time.monotonic() + seconds
    for _notify in listener.notifies(timeout=max(0.0, deadline - time.monotonic()), stop_after=1):
        return True
    return False
