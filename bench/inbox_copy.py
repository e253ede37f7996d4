"""Binary COPY of pre-encoded inbox rows. The jsonb column's dumper takes the JSON text the
dataset already holds, so timing a COPY measures the server and the wire, not json.dumps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

from bench.dataset import EncodedJson, InboxRow
from syncctl.loader import INBOX_TYPES


class EncodedJsonbDumper(Dumper):
    """jsonb in binary: a version byte, then the text."""

    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + obj.data if isinstance(obj, EncodedJson) else obj


def prepare(conn: psycopg.Connection[Any]) -> None:
    """Make `conn` send EncodedJson values for jsonb in binary COPY as they are."""
    jsonb = conn.adapters.types["jsonb"].oid

    class Dumper(EncodedJsonbDumper):
        oid = jsonb

    conn.adapters.register_dumper(EncodedJson, Dumper)


def copy_rows(conn: psycopg.Connection[Any], statement: str, rows: Sequence[InboxRow]) -> None:
    with conn.cursor().copy(statement) as copy:
        copy.set_types(INBOX_TYPES)
        for row in rows:
            copy.write_row(row)
