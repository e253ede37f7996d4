"""Login-time refresh: numbers queued by sync.request_refresh (the login function queues one,
and NOTIFY syncctl_refresh wakes the controller) are fetched from tritonX one by one and staged
through the same inbox as the feed, as synthetic events whose ids make repeats duplicates.
404 and 410 answers become the deleted, merged and anonymised effects."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from syncctl.database import queries
from syncctl.errors import TritonXError
from syncctl.loader import stage_records
from syncctl.tritonx import CustomerAnswer, TritonXClient

log = logging.getLogger("syncctl.refresh")
SOURCE = "tritonx-refresh"
# The feed's versions start at 1; a synthetic non-upsert event carries no version of its own.
_SYNTHETIC_VERSION = 1


def refresh_event(number: str, answer: CustomerAnswer) -> dict[str, Any]:
    """The change record a refresh answer stands for."""
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
    return {
        **base,
        "event_id": f"refresh:{number}:deleted",
        "type": "customer.deleted",
        "version": _SYNTHETIC_VERSION,
    }


def process_refresh_requests(
    conn: psycopg.Connection[Any],
    client: TritonXClient,
    *,
    limit: int = 100,
    on_latency: Any = None,
) -> int:
    """Fetch and apply up to `limit` queued refreshes; returns how many were applied. A number
    tritonX cannot answer for now goes back in the queue."""
    q = queries()
    with conn.transaction():
        claimed = conn.execute(q["claim_refresh_requests"], {"limit": limit}).fetchall()
    applied = 0
    for number, requested_at, attempts in claimed:
        try:
            answer = client.fetch_customer(number)
        except TritonXError as exc:
            log.warning("refresh of %s failed: %s", number, type(exc).__name__)
            with conn.transaction():
                conn.execute(
                    q["requeue_refresh"],
                    {"number": number, "attempts": attempts, "error": type(exc).__name__},
                )
            continue
        stage_records(conn, SOURCE, [refresh_event(number, answer)])
        applied += 1
        if on_latency is not None:
            on_latency((datetime.now(UTC) - requested_at).total_seconds())
    return applied


def wait_for_requests(listener: psycopg.Connection[Any], seconds: float) -> bool:
    """Block up to `seconds` for a NOTIFY syncctl_refresh; True when one came."""
    deadline = time.monotonic() + seconds
    for _notify in listener.notifies(timeout=max(0.0, deadline - time.monotonic()), stop_after=1):
        return True
    return False
