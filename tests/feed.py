"""Building change records for tests, and staging them the way the controller does."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import psycopg

from syncctl.loader import PageOutcome, read_cursor, stage_page
from syncctl.tritonx import ChangePage

_seq = itertools.count(1)


def snapshot(number: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "customer_number": number,
        "email": f"{number.lower()}@example.nl",
        "first_name": "Anna",
        "infix": "van der",
        "last_name": "Berg",
        "gender": "F",
        "birth_date": "1984-03-12",
        "phone": "+31 20 123 4567",
        "mobile": "+31 6 1234 5678",
        "street": "Keizersgracht",
        "house_number": 12,
        "house_number_addition": "A",
        "postcode": "1015 CJ",
        "city": "Amsterdam",
        "country_code": "NL",
        "loyalty_card": "LC-0001",
        "home_store": "Utrecht",
        "customer_group": "retail",
        "newsletter_opt_in": True,
        "blocked": False,
        "updated_at": "2026-11-20T10:00:00Z",
    }
    base.update(fields)
    return base


def event(event_type: str, number: str, version: int, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "seq": next(_seq),
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "customer_number": number,
        "version": version,
        "occurred_at": "2026-11-20T10:00:00Z",
    }
    record.update(extra)
    return record


def upserted(number: str, version: int, **fields: Any) -> dict[str, Any]:
    return event("customer.upserted", number, version, customer=snapshot(number, **fields))


def stage(
    conn: psycopg.Connection[Any],
    records: list[Any],
    source: str = "tritonx",
    *,
    keep_payloads: bool = True,
) -> PageOutcome:
    cursor = read_cursor(conn, source)
    conn.commit()
    page = ChangePage(records, next_cursor=str(next(_seq)), has_more=False)
    return stage_page(conn, source, cursor, page, keep_payloads=keep_payloads)
