"""One grammar for identifiers, event ids and customer numbers: sql/05_grammar.sql states it for
the database, syncctl/grammar.py for Python, and sync.event_defect repeats it inline for speed.
All three agree on the edge cases, and no other file writes the grammar again."""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pytest

from syncctl import grammar
from tests.contract import ROOT

SAMPLES = [
    None,
    "",
    "a",
    "TX00000001",
    "tx-1",
    "a.b_c:d-e",
    "6f1c2a4e-0d5b-4c1e-9a7f-3b2d1e0c9a8b",
    "backoffice:op-17",
    "X" * 32,
    "X" * 33,
    "X" * 64,
    "X" * 65,
    "X" * 100,
    "X" * 101,
    "TX00000001\n",
    "\nTX00000001",
    "TX0000\r0001",
    "anna@example.nl",
    "a b",
    "a/b",
    "a$",
    "é",
    "\uff21",  # a full-width A
    "\u0661",  # an Arabic-Indic digit one
    "K\u212a",  # the Kelvin sign, which folds to k
]
FUNCTIONS = {
    "is_identifier": grammar.is_identifier,
    "is_event_id": grammar.is_event_id,
    "is_customer_number": grammar.is_customer_number,
}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_python_and_sql_agree(conn: psycopg.Connection[Any], function: str) -> None:
    python = FUNCTIONS[function]
    sql = [conn.execute(f"SELECT sync.{function}(%s)", [value]).fetchone() for value in SAMPLES]
    differ = [
        repr(value)[:20]
        for value, row in zip(SAMPLES, sql, strict=True)
        if row is None or row[0] is not python(value)
    ]
    assert not differ, f"syncctl/grammar.py and sync.{function} differ on {differ}"


def _defect(conn: psycopg.Connection[Any], *arguments: Any) -> str | None:
    row = conn.execute(
        "SELECT sync.event_defect(%s, %s, %s, 1, now(), %s::jsonb)", list(arguments)
    ).fetchone()
    assert row is not None
    return None if row[0] is None else str(row[0])


def test_the_feeds_inline_checks_agree(conn: psycopg.Connection[Any]) -> None:
    """sync.event_defect writes the grammar out (a nested call costs ~10 us a row)."""
    differ = []
    for value in SAMPLES:
        event_id = _defect(conn, value, "customer.deleted", "TX1", "{}")
        if (event_id != "event_id is missing or not an identifier") is not grammar.is_event_id(
            value
        ):
            differ.append(f"event_id {value!r:.20}")
        number = _defect(conn, "e1", "customer.deleted", value, "{}")
        if (number != "customer_number is missing or malformed") is not (
            grammar.is_customer_number(value)
        ):
            differ.append(f"customer_number {value!r:.20}")
        into = _defect(conn, "e1", "customer.merged", "TX1", json.dumps({"into": value}))
        if (into != "into is missing or malformed") is not grammar.is_customer_number(value):
            differ.append(f"into {value!r:.20}")
    assert not differ, f"sync.event_defect and the grammar differ on {differ}"


# the grammar's character classes, as a regular expression would write them
_WRITTEN_OUT = re.compile(r"\[\^?A-Za-z0-9(\._:-)?\]")
# where they may be written: the two statements of the grammar, and the feed's inline checks
_ALLOWED = {"sql/05_grammar.sql", "sql/30_sync_apply.sql", "syncctl/grammar.py"}


def test_no_other_file_writes_the_grammar_out() -> None:
    files = [*ROOT.glob("sql/*.sql"), *ROOT.glob("syncctl/**/*.py"), *ROOT.glob("syncctl/**/*.sql")]
    assert files
    copies = sorted(
        str(path.relative_to(ROOT))
        for path in files
        if _WRITTEN_OUT.search(path.read_text(encoding="utf-8"))
        and str(path.relative_to(ROOT)) not in _ALLOWED
    )
    assert not copies, (
        f"{copies} write the identifier or customer number grammar out: use sync.is_identifier, "
        "sync.is_event_id, sync.is_customer_number or syncctl.grammar"
    )
