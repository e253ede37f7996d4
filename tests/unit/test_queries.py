"""The data-access convention: every named SQL block says what it is for in a one-line
description and is run by some Python code of the package (no dead SQL)."""

from __future__ import annotations

import re
from pathlib import Path

from syncctl import queries

PACKAGE = Path(queries.__file__).resolve().parent.parent


def _python_source() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(PACKAGE.rglob("*.py")))


def test_every_block_has_a_one_line_description() -> None:
    blocks = queries.blocks()
    assert blocks
    missing = sorted(f"{b.file}: {b.name}" for b in blocks.values() if not b.description)
    assert missing == []
    assert all(b.sql and not b.sql.startswith("-- name") for b in blocks.values())


def test_every_block_is_used_by_the_package() -> None:
    source = _python_source()
    unused = sorted(
        f"{b.file}: {b.name}"
        for b in queries.blocks().values()
        if not re.search(rf"[\"']{b.name}[\"']", source)
    )
    assert unused == []


def test_every_named_query_the_package_runs_exists() -> None:
    called = re.findall(
        r"queries\.(?:one|all|run|statement)\(\s*(?:[\w.]+,\s*)?\"(\w+)\"", _python_source()
    )
    assert called
    assert sorted(set(called) - set(queries.blocks())) == []
