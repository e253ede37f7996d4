"""Where the SQL definitions and the alembic migrations are: inside the installed package
(a wheel carries them as syncctl/_sql and syncctl/_migrations) or, in a checkout, at the
repository's top level."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"none of {', '.join(map(str, candidates))} exists")


def sql_dir() -> Path:
    """The folder of today's SQL definitions, applied in file-name order."""
    return _first_existing(_PACKAGE / "_sql", _PACKAGE.parent / "sql")


def migrations_dir() -> Path:
    """The alembic script location."""
    return _first_existing(_PACKAGE / "_migrations", _PACKAGE.parent / "migrations")


def sql_files() -> list[Path]:
    return sorted(sql_dir().glob("*.sql"))


def reference_shop_files() -> list[Path]:
    """The reference shop's tables, declarations and grants (not part of the engine)."""
    return sorted((sql_dir() / "reference_shop").glob("*.sql"))
