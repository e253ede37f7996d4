"""Staging a page of change records: one transaction locks the source's cursor, COPYs the
records into the session's page (pg_temp.syncctl_page, FORMAT BINARY), stages the page into
sync.inbox — where the inbox trigger applies it, reading the records from the page — and moves
the cursor. A crash anywhere loses nothing and applies nothing twice: either all of it commits or
none of it, and the next pull asks for the same page again.

The typed inbox columns are extracted leniently: a value of the wrong JSON type becomes NULL
and the database dead-letters the record with a reason; the record itself is kept as payload.
A record holding U+0000 (JSON `\u0000`), which jsonb cannot hold, or a lone surrogate (JSON
`\ud800`), which UTF-8 cannot encode, is kept as its JSON text in sync.inbox.raw instead
(ASCII-escaped and otherwise unaltered, so what tritonX sent stays recoverable) and
dead-lettered."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.pq import Format

from syncctl import queries
from syncctl.errors import CursorMoved, PageNotStaged
from syncctl.feed_json import storable
from syncctl.tritonx import ChangePage

INBOX_TYPES = ["text", "int8", "text", "text", "text", "int4", "timestamptz", "jsonb"]
RAW_INBOX_TYPES = [*INBOX_TYPES[:7], "text"]
_INT4_MAX = 2**31 - 1
_INT8_MAX = 2**63 - 1


def _text(value: Any) -> str | None:
    # a value PostgreSQL cannot hold is not one to type: none (the record is dead-lettered)
    return value if isinstance(value, str) and storable(value) else None


def _integer(value: Any, limit: int) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and -limit <= value <= limit:
        return value
    return None


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _holds_nul(value: Any) -> bool:
    """Whether a string anywhere in the value holds U+0000 (iterative: a record may nest as deep
    as the JSON parser goes)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class SerializedJson(str):
    """A payload already serialized to JSON text: the COPY writes it as it is."""


class RawRecord(str):
    """The JSON text (ASCII-escaped) of a record jsonb cannot hold: staged into sync.inbox.raw."""


class _SerializedJsonbDumper(Dumper):
    """jsonb in binary: a version byte, then the JSON text, which the row built already."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + str(obj).encode()


def _json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), check_circular=False)


def inbox_row(source: str, record: Any) -> tuple[Any, ...]:
    """The sync.inbox row for one change record, whatever shape the record has.

    The payload is serialized here, so that a prefetching thread can do this work while the
    database applies the previous page."""
    get = record.get if isinstance(record, dict) else {}.get
    text = _json_dumps(record)
    # json.dumps escapes U+0000 as \u0000 (look closer only when that text appears) and keeps
    # a lone surrogate as it is (the text is then not storable)
    unreadable = ("\\u0000" in text and _holds_nul(record)) or not storable(text)
    payload = RawRecord(json.dumps(record)) if unreadable else SerializedJson(text)
    return (
        source,
        _integer(get("seq"), _INT8_MAX),
        _text(get("event_id")),
        _text(get("type")),
        _text(get("customer_number")),
        _integer(get("version"), _INT4_MAX),
        _timestamp(get("occurred_at")),
        payload,
    )


def inbox_rows(source: str, records: list[Any]) -> list[tuple[Any, ...]]:
    return [inbox_row(source, record) for record in records]


@dataclass
class PageOutcome:
    events: int
    states: Counter[str] = field(default_factory=Counter)
    last_seq: int | None = None
    last_occurred_at: datetime | None = None


def read_cursor(conn: psycopg.Connection[Any], source: str) -> str | None:
    row = queries.one(conn, "cursor_read", source=source)
    return None if row is None else row[0]


def stage_page(
    conn: psycopg.Connection[Any],
    source: str,
    expected_cursor: str | None,
    page: ChangePage,
    rows: list[tuple[Any, ...]] | None = None,
    *,
    keep_payloads: bool = True,
) -> PageOutcome:
    """Stage, apply and move the cursor past `page`, all in one transaction.

    `rows` are the page's inbox rows when a prefetching thread built them already.
    `keep_payloads` False: the inbox keeps the records of dead letters only (a retention of
    zero); the others' snapshots are read from the session's page and never written."""
    if rows is None:
        rows = inbox_rows(source, page.changes)
    return _stage(conn, source, (expected_cursor, page.next_cursor), rows, keep_payloads)


def stage_records(
    conn: psycopg.Connection[Any],
    source: str,
    records: list[Any],
    *,
    keep_payloads: bool = True,
) -> PageOutcome:
    """Stage and apply records that are not part of a feed (a login-time refresh): the same
    inbox, trigger, audit and tombstones; no cursor."""
    return _stage(conn, source, None, inbox_rows(source, records), keep_payloads)


def _stage(
    conn: psycopg.Connection[Any],
    source: str,
    cursor: tuple[str | None, str] | None,
    rows: list[tuple[Any, ...]],
    keep_payloads: bool,
) -> PageOutcome:
    outcome = PageOutcome(events=len(rows))
    seqs = [row[1] for row in rows if row[1] is not None]
    stamps = [row[6] for row in rows if row[6] is not None]
    outcome.last_seq = max(seqs, default=None)
    outcome.last_occurred_at = max(stamps, default=None)
    with conn.transaction():
        if cursor is not None:
            queries.run(conn, "cursor_ensure", source=source)
            locked = queries.one(conn, "cursor_lock", source=source)
            if locked is None or locked[0] != cursor[0]:
                raise CursorMoved()
        # the page is COPYed into the session's page (two statements: the records jsonb
        # cannot hold go to its raw column), then staged and applied as one, in feed order
        queries.run(conn, "open_page")
        readable = [row for row in rows if not isinstance(row[7], RawRecord)]
        unreadable = [row for row in rows if isinstance(row[7], RawRecord)]
        for batch, statement in ((readable, "copy_page"), (unreadable, "copy_page_raw")):
            if batch:
                _copy(conn, statement, batch)
        summary = queries.one(
            conn, "stage_page", keep_payloads=keep_payloads, feed=cursor is not None
        )
        outcome.states.update(summary[0] if summary else {})
        # every event of the page is decided, or the cursor must not move past it
        decided = sum(outcome.states.values())
        if decided < len(rows):
            raise PageNotStaged(
                f"the database decided {decided} of the page's {len(rows)} events; "
                "the cursor stays where it was"
            )
        if cursor is not None:
            queries.run(
                conn,
                "cursor_advance",
                source=source,
                position=cursor[1],
                last_seq=outcome.last_seq,
                last_occurred_at=outcome.last_occurred_at,
            )
    return outcome


def _copy(conn: psycopg.Connection[Any], statement: str, rows: list[tuple[Any, ...]]) -> None:
    """COPY rows into the session's page."""
    staging = conn.cursor()
    # per cursor: the payloads are JSON text already (see inbox_row)
    staging.adapters.register_dumper(SerializedJson, _SerializedJsonbDumper)
    with staging.copy(queries.statement(statement)) as copy:
        copy.set_types(INBOX_TYPES if statement == "copy_page" else RAW_INBOX_TYPES)
        for row in rows:
            copy.write_row(row)
