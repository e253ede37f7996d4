"""The SQL the Python side runs: named blocks in the .sql files of this folder, one concern a
file. A block is `-- name: <name>`, a one-line description comment, then the statement (further
comment lines say why); names are unique across the files. The blocks are read once and typed
as `LiteralString`: psycopg placeholders carry every value, nothing is pasted in.

Run a block with `one()`, `all()` or `run()` (`statement()` for COPY). They raise psycopg's
errors as they come: the library maps them to domain errors with `syncctl.database.refusals`,
and what no library call mapped becomes a CLI error at the edge (`syncctl.database.error_text`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, LiteralString, cast

import psycopg

_FOLDER = Path(__file__).parent
_BLOCK = re.compile(r"^-- name: (\w+)\n", re.MULTILINE)
_DESCRIPTION = re.compile(r"-- (\S.*)\n")

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Block:
    """One named statement, where it is written and what it is for."""

    name: str
    file: str
    description: str | None
    sql: LiteralString


def _parse(path: Path) -> list[Block]:
    parts = _BLOCK.split(path.read_text(encoding="utf-8"))
    found = []
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        described = _DESCRIPTION.match(body)
        if described is not None:
            body = body[described.end() :]
        text = cast(LiteralString, body.strip())
        found.append(Block(name, path.name, described and described.group(1), text))
    return found


@cache
def blocks() -> dict[str, Block]:
    """Every block of every .sql file here, by name; a name written twice is an error."""
    found: dict[str, Block] = {}
    for path in sorted(_FOLDER.glob("*.sql")):
        for block in _parse(path):
            if block.name in found:
                raise ValueError(
                    f"query {block.name} is named in {found[block.name].file} and {block.file}"
                )
            found[block.name] = block
    return found


def statement(name: str) -> LiteralString:
    """The text of block `name` (for COPY, which takes no parameters)."""
    return blocks()[name].sql


def one(conn: psycopg.Connection[Any], name: str, /, **params: Any) -> Row | None:
    """The first row of block `name`, or None."""
    return conn.execute(statement(name), params or None).fetchone()


def all(conn: psycopg.Connection[Any], name: str, /, **params: Any) -> list[Row]:
    """Every row of block `name`."""
    return conn.execute(statement(name), params or None).fetchall()


def run(conn: psycopg.Connection[Any], name: str, /, **params: Any) -> None:
    """Execute block `name` for its effect."""
    conn.execute(statement(name), params or None)
