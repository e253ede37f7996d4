"""What every click command shares at the edge: library errors become one-line CLI errors with
a non-zero exit (a JSON line in JSON log mode), commands that act on a real database get its
DSN or a usage error and a schema at the newest revision, long commands stop cleanly on
SIGINT/SIGTERM and exit 128 + the signal's number."""

from __future__ import annotations

import getpass
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any, NoReturn, Protocol, TypeVar

import click
import psycopg

from syncctl import environment, grammar, logs, schema
from syncctl.database import configured_dsn, connect, error_text
from syncctl.errors import Interrupted, MigrationError, SyncctlError

F = TypeVar("F", bound=Callable[..., Any])

# undefined table, function, column, schema: what an unmigrated or older schema raises
_MISSING_OBJECT = {"42P01", "42883", "42703", "3F000"}


class HasDsn(Protocol):
    dsn: str | None


class HasTritonX(HasDsn, Protocol):
    tritonx_url: str | None
    tritonx_token: str | None


@dataclass
class Settings:
    """The root group's options, handed to every command (`click.pass_obj`)."""

    dsn: str | None
    tritonx_url: str | None
    tritonx_token: str | None


class CommandLine(click.Group):
    """The `syncctl` group: a command's final error is printed as click prints it, or as one
    JSON log line when the log format is JSON; Ctrl-C outside a command that handles it
    exits 130."""

    def main(self, args: Sequence[str] | None = None, *pos: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True) is False:
            return super().main(args, *pos, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            result = super().main(args, *pos, **kwargs)
        except click.ClickException as exc:
            _show(exc)
            sys.exit(exc.exit_code)
        except click.Abort as exc:
            interrupted = isinstance(exc.__context__, KeyboardInterrupt)
            _show(click.ClickException("interrupted" if interrupted else "aborted"))
            sys.exit(130 if interrupted else 1)
        sys.exit(result if isinstance(result, int) else 0)


def _show(exc: click.ClickException) -> None:
    if logs.json_lines_active():
        logging.getLogger("syncctl").error(exc.format_message(), extra={"exit_code": exc.exit_code})
    else:
        exc.show()


def edge(func: F) -> F:
    """Turn a library error, a database error no library call mapped (a privilege the
    connecting role lacks, say), or a file that cannot be written into a one-line CLI error
    with a non-zero exit."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SyncctlError as exc:
            error = click.ClickException(_with_sqlstate(exc))
            error.exit_code = exc.exit_code  # type: ignore[misc]
            raise error from exc
        except psycopg.Error as exc:
            raise click.ClickException(error_text(exc)) from exc
        except BrokenPipeError:
            raise  # the reader of stdout went away: click stops quietly (exit 1)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from exc

    return wrapper  # type: ignore[return-value]


def _with_sqlstate(exc: SyncctlError) -> str:
    """The library error's message and, for the database's refusals, their SQLSTATE (as
    docs/errors.md lists them), once."""
    text = str(exc)
    code = getattr(exc, "sqlstate", None)
    if code and f"(SQLSTATE {code})" not in text:
        return f"{text} (SQLSTATE {code})"
    return text


def required_dsn(settings: HasDsn) -> str:
    """The configured DSN; these commands never run on a throwaway embedded database."""
    dsn = configured_dsn(settings.dsn)
    if dsn is None:
        raise click.UsageError("give a database: --dsn, DATABASE_URL or PG* variables")
    return dsn


@contextmanager
def connection(settings: HasDsn) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the configured database, whose schema is at the newest revision: an
    unmigrated or older one gets the `syncctl db upgrade` advice, not a missing relation."""
    with connect(required_dsn(settings)) as conn:
        schema.require_current_on(conn)
        try:
            yield conn
        except psycopg.Error as exc:
            if exc.sqlstate in _MISSING_OBJECT:
                hint = schema.missing_object_hint(conn)
                if hint is not None:
                    raise MigrationError(hint) from exc
            raise


_simulator_flag = click.option(
    "--simulator",
    is_flag=True,
    help="With no tritonX URL, serve the bundled simulator's invented customers even to a "
    "configured database (it starts by itself only on the throwaway embedded one).",
)


def simulator_options(func: F) -> F:
    """--simulator and --customers (the simulated population)."""
    func = click.option(
        "--customers",
        default=10_000,
        show_default=True,
        help="Population of the bundled simulator (when it is used).",
    )(func)
    return _simulator_flag(func)


def simulator_allowed(settings: HasTritonX, simulator: bool) -> bool:
    """Whether the bundled simulator may stand in for tritonX: on the embedded database, or
    when asked for with --simulator (and no URL contradicts it)."""
    if simulator and settings.tritonx_url:
        raise click.UsageError("--simulator and a tritonX URL exclude each other")
    return simulator or configured_dsn(settings.dsn) is None


def configured_tritonx(
    settings: HasTritonX, simulator: bool, customers: int
) -> AbstractContextManager[environment.TritonX]:
    """The tritonX of --tritonx-url, or the simulator where `simulator_allowed`."""
    return environment.tritonx(
        settings.tritonx_url,
        settings.tritonx_token,
        simulator_allowed=simulator_allowed(settings, simulator),
        customers=customers,
    )


class Interruption(threading.Event):
    """Set by SIGINT or SIGTERM: the command finishes the step in hand and stops."""

    signum: int | None = None

    def exit(self, resume: str) -> NoReturn:
        """Say what is kept and how to go on, and exit 128 + the signal's number."""
        name = signal.Signals(self.signum or signal.SIGINT).name
        raise Interrupted(
            f"interrupted by {name}: the work done so far is committed; run `{resume}` again "
            "to continue",
            exit_code=128 + (self.signum or signal.SIGINT),
        )


@contextmanager
def stop_on_signals() -> Iterator[Interruption]:
    stop = Interruption()

    def handler(signum: int, _frame: Any) -> None:
        logging.getLogger("syncctl").warning(
            "%s: stopping after the step in hand", signal.Signals(signum).name
        )
        stop.signum = signum
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _login_actor() -> str:
    """`cli:<login name>` as an identifier (the grammar sync.is_identifier checks): any other
    character becomes `_`, so a login name like `anna@corp` cannot put an e-mail in the audit."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return "cli"
    return grammar.identifier_from("cli:", name)


actor_option = click.option(
    "--actor",
    default=_login_actor,
    show_default="cli:<login name>",
    help="Who does this, for the audit (an operator id, not a name).",
)
