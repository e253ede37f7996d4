"""A mapping and the database: its defects against the live catalog (sync.mapping_defects), the
SQL it compiles to (sync.compile_mapping), its installation as a new version
(sync.install_mapping) and the active version (sync.mapping_version). The SQL is in
syncctl/queries/mapping.sql. A database whose engine has no mapping compiler yet answers
`compiled` with None and `install`/`active` with MappingCompilerMissing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from syncctl import queries
from syncctl.database import in_transaction
from syncctl.errors import MappingCompilerMissing, MappingRefused
from syncctl.mapping import Mapping

WARNING = "warning: "


@dataclass(frozen=True)
class Defect:
    """One row of sync.mapping_defects: the mapping's key path and what is wrong there."""

    path: str
    problem: str

    @property
    def warning(self) -> bool:
        """A warning does not refuse the mapping."""
        return self.problem.startswith(WARNING)

    @property
    def grant(self) -> str | None:
        """The GRANT statement that fixes a missing privilege, or None."""
        _, found, statement = self.problem.partition(": GRANT ")
        return f"GRANT {statement}" if found else None


@dataclass(frozen=True)
class Installed:
    """A stored mapping version."""

    version: int
    sha256: str
    source: str
    installed_by: str
    installed_at: datetime
    document: dict[str, Any]


@dataclass(frozen=True)
class Compiler:
    """Which of the compiler's objects exist."""

    compile: bool
    install: bool
    versions: bool


def defects(conn: psycopg.Connection[Any], mapping: Mapping) -> list[Defect]:
    """Every defect of the mapping in this database, in the order of the file's lines."""
    rows = queries.all(conn, "mapping_defects", document=mapping.json())
    found = [Defect(path, problem) for path, problem in rows]
    return sorted(found, key=lambda d: mapping.line(d.path))


def compiler(conn: psycopg.Connection[Any]) -> Compiler:
    row = queries.one(conn, "mapping_compiler")
    assert row is not None
    return Compiler(*row)


def compiled(conn: psycopg.Connection[Any], mapping: Mapping) -> str | None:
    """The SQL the mapping compiles to (nothing is executed), or None when this database has
    no compiler."""
    if not compiler(conn).compile:
        return None
    row = queries.one(conn, "mapping_compile", document=mapping.json())
    return None if row is None else str(row[0])


def install(conn: psycopg.Connection[Any], mapping: Mapping, source: str) -> int:
    """Install the mapping as the active version and commit; its version number. The database
    refuses a mapping with defects (SY060)."""
    if not compiler(conn).install:
        raise MappingCompilerMissing()

    def work() -> int:
        queries.one(conn, "mapping_install_role")
        row = queries.one(conn, "mapping_install", document=mapping.json(), source=source)
        assert row is not None
        return int(row[0])

    version = in_transaction(
        conn,
        work,
        MappingRefused,
        lambda code, message: MappingRefused(f"{message} (SQLSTATE {code})", sqlstate=code),
    )
    conn.commit()
    return version


def active(conn: psycopg.Connection[Any]) -> Installed | None:
    """The active mapping version, or None when none is installed."""
    if not compiler(conn).versions:
        raise MappingCompilerMissing()
    row = queries.one(conn, "mapping_active")
    return None if row is None else Installed(*row)
