"""The pure-Python model of a format-1 mapping: what a mapped customer row, and each related row,
hold after tritonX's snapshot is applied. It reads the same TOML document the engine installs and
follows the transform rules of the mapping format, never the engine's SQL, so a test comparing the
database with it checks the compiled code against the rules.

A row is a flat dict: the customer table's columns by name (the number column included, when the
number lives in a column), a related table's columns as "<related name>.<column>". Values are what
psycopg reads back: a date field gives a `date`, `updated_at` a `datetime`, literals are taken as
the TOML gives them (the test schemas' columns take them as they are). Rows describe a customer
tritonX created: the `[*.create]` literals are part of them."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from tests.truth import SNAPSHOT_FIELDS

# The contract's snapshot fields (sync.customer_snapshot); customer_number is the mapping's
# `number`, every other one is decided by a source expression or [not_stored].
CONTRACT_FIELDS = ("customer_number", *SNAPSHOT_FIELDS, "updated_at")
_DATE_FIELDS = frozenset({"birth_date"})
_TIME_FIELDS = frozenset({"updated_at"})
_TO_CHAR = {"YYYY": "%Y", "MM": "%m", "DD": "%d", "HH24": "%H", "MI": "%M", "SS": "%S"}
_TO_CHAR_TOKEN = re.compile("|".join(_TO_CHAR))


class ValueDoesNotFit(Exception):
    """A value is longer than its column: the engine refuses the event (SY062) naming the
    column, it never cuts the value."""

    def __init__(self, column: str) -> None:
        super().__init__(f"a value does not fit {column}")
        self.column = column


@dataclass(frozen=True)
class MappedColumn:
    """One column a mapping writes: where it lives and what it gets."""

    key: str  # the row key: "<column>" or "<related name>.<column>"
    related: int | None  # the index in [[related]], None for the customer table
    column: str
    source: Any  # a source expression; for a [*.create] literal None
    literal: Any = None
    created_only: bool = False


def load(path: Path) -> dict[str, Any]:
    """The mapping document, as the loader hands it to the engine."""
    with path.open("rb") as file:
        return tomllib.load(file)


def number_column(document: Mapping[str, Any]) -> str | None:
    """The customer column holding tritonX's number, None when the link table holds it."""
    number = document["customer"]["number"]
    return None if number == "link" else str(number["column"])


def mapped_columns(document: Mapping[str, Any]) -> Iterator[MappedColumn]:
    """Every column the mapping writes, customer table first, then each related table."""
    tables: list[tuple[int | None, str, Mapping[str, Any]]] = [(None, "", document["customer"])]
    tables += [(i, f"{r['name']}.", r) for i, r in enumerate(document.get("related", []))]
    for index, prefix, table in tables:
        for column, source in table.get("columns", {}).items():
            yield MappedColumn(prefix + column, index, column, source)
        for column, literal in table.get("create", {}).items():
            yield MappedColumn(prefix + column, index, column, None, literal, created_only=True)


def field_value(snapshot: Mapping[str, Any], field: str) -> Any:
    """A snapshot field as its contract type: dates and timestamps parsed, the rest as sent."""
    value = snapshot.get(field)
    if value is None or not isinstance(value, str):
        return value
    if field in _DATE_FIELDS:
        return date.fromisoformat(value)
    if field in _TIME_FIELDS:
        return datetime.fromisoformat(value)
    return value


def _as_text(value: Any) -> str:
    """PostgreSQL's text form of a value (`::text`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _to_char(value: date, pattern: str) -> str:
    return _TO_CHAR_TOKEN.sub(lambda token: value.strftime(_TO_CHAR[token.group()]), pattern)


def source_value(source: Any, snapshot: Mapping[str, Any]) -> Any:
    """The value one source expression gives for a snapshot (format 1's closed set)."""
    spec: Mapping[str, Any] = {"field": source} if isinstance(source, str) else source
    value: Any
    if "join" in spec:
        parts = (field_value(snapshot, f) for f in spec["join"])
        kept = [_as_text(p).strip(" ") for p in parts if p is not None]
        value = spec.get("separator", " ").join(p for p in kept if p) or None
    elif "first_of" in spec:
        value = next(
            (v for f in spec["first_of"] if (v := field_value(snapshot, f)) is not None), None
        )
    else:
        value = field_value(snapshot, spec["field"])
        if value is None:
            pass
        elif "codes" in spec:
            value = spec["codes"].get(_as_text(value), spec.get("other"))
        elif "true" in spec or "false" in spec:
            value = spec.get("true") if value else spec.get("false")
        elif "format" in spec:
            value = _to_char(value, spec["format"])
    return spec.get("null_as") if value is None else value


def _fitted(value: Any, key: str, lengths: Mapping[str, int]) -> Any:
    """A value as a varchar(n)/char(n) column stores it: excess spaces cut, anything else
    refused."""
    limit = lengths.get(key)
    if limit is None or not isinstance(value, str) or len(value) <= limit:
        return value
    if value[limit:].strip(" "):
        raise ValueDoesNotFit(key)
    return value[:limit]


def mapped_row(
    document: Mapping[str, Any],
    snapshot: Mapping[str, Any],
    lengths: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """What the mapped rows of a customer tritonX created hold after `snapshot` is applied.
    `lengths` are the row keys' varchar(n)/char(n) limits; a longer value raises
    ValueDoesNotFit."""
    limits = lengths or {}
    row: dict[str, Any] = {}
    number = number_column(document)
    if number is not None:
        row[number] = _fitted(snapshot.get("customer_number"), number, limits)
    for mapped in mapped_columns(document):
        value = mapped.literal if mapped.created_only else source_value(mapped.source, snapshot)
        row[mapped.key] = _fitted(value, mapped.key, limits)
    return row
