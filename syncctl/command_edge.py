"""What every click command shares at the edge: library errors become one-line CLI errors with
a non-zero exit, and commands that act on a real database get its DSN or a usage error."""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, Protocol, TypeVar

import click
import psycopg

from syncctl.database import configured_dsn, connect, error_text
from syncctl.errors import SyncctlError

F = TypeVar("F", bound=Callable[..., Any])


class HasDsn(Protocol):
    dsn: str | None


def edge(func: F) -> F:
    """Turn a library error, or a database error no library call mapped (a privilege the
    connecting role lacks, say), into a one-line CLI error with a non-zero exit."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SyncctlError as exc:
            raise click.ClickException(str(exc)) from exc
        except psycopg.Error as exc:
            raise click.ClickException(error_text(exc)) from exc

    return wrapper  # type: ignore[return-value]


def required_dsn(settings: HasDsn) -> str:
    """The configured DSN; these commands never run on a throwaway embedded database."""
    dsn = configured_dsn(settings.dsn)
    if dsn is None:
        raise click.UsageError("give a database: --dsn, DATABASE_URL or PG* variables")
    return dsn


@contextmanager
def connection(settings: HasDsn) -> Iterator[psycopg.Connection[Any]]:
    with connect(required_dsn(settings)) as conn:
        yield conn


def _login_actor() -> str:
    """`cli:<login name>` as an identifier (the grammar sync.is_identifier checks): any other
    character becomes `_`, so a login name like `anna@corp` cannot put an e-mail in the audit."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return "cli"
    return "cli:" + re.sub(r"[^A-Za-z0-9._:-]", "_", name)[:60]


actor_option = click.option(
    "--actor",
    default=_login_actor,
    show_default="cli:<login name>",
    help="Who does this, for the audit (an operator id, not a name).",
)
