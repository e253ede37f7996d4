"""docs/errors.md lists every SQLSTATE the SQL in sql/ raises, and nothing it does not: the
SY codes (in ERRCODE clauses and in codes assigned before a RAISE) and the standard conditions
raised by name."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _raised() -> tuple[set[str], set[str]]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "sql").glob("*.sql")))
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())  # not comments
    own = set(re.findall(r"'(SY[0-9A-Z]{3})'", code))
    named = set(re.findall(r"ERRCODE\s*=\s*'([a-z_]+)'", code))
    return own, named


def _table() -> dict[str, str]:
    rows = {}
    for line in (ROOT / "docs" / "errors.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"[0-9A-Z]{5}", cells[0]):
            rows[cells[0]] = cells[1]
    return rows


def test_every_sqlstate_raised_in_sql_is_in_the_table_and_no_other() -> None:
    own, named = _raised()
    assert own, "no SY code found in sql/: the grep is broken"
    table = _table()
    assert own - set(table) == set(), "raised in sql/ but not in docs/errors.md"
    assert named - set(table.values()) == set(), "conditions raised by name, not in the table"
    listed_own = {code for code in table if code.startswith("SY")}
    assert listed_own - own == set(), "in docs/errors.md but raised nowhere in sql/"
    listed_named = {name for name in table.values() if name}
    assert listed_named - named == set(), "conditions in the table raised nowhere"
