"""Click commands for the engine: `deadletter list|show|retry|discard`, `merge`, `anonymise`
and `coverage`. A thin layer over syncctl.engine; the main group adds them
(`main.add_command(...)` for each of COMMANDS). Each takes the DSN from the main group's
settings object (`.dsn`) and needs a configured database: these commands act on a real one,
never on a throwaway embedded server."""

from __future__ import annotations

import click

from syncctl import engine
from syncctl.command_edge import HasDsn, actor_option, connection, edge


def _print_report(report: engine.Report) -> None:
    verb = "dry run" if report.dry_run else "done"
    click.echo(f"{verb}: {report.outcome} ({report.reason})")
    for row in report.plan:
        detail = f"  {row.detail}" if row.detail else ""
        click.echo(f"  {row.table:<40} {row.rows:>8}{detail}")


# ---------------------------------------------------------------------------------------------
# merge / anonymise
# ---------------------------------------------------------------------------------------------
@click.command("merge")
@click.argument("old")
@click.argument("survivor")
@click.option("--dry-run", is_flag=True, help="Print per table how many rows would change.")
@actor_option
@click.pass_obj
@edge
def merge(settings: HasDsn, old: str, survivor: str, dry_run: bool, actor: str) -> None:
    """Merge customer number OLD into SURVIVOR (re-point every linked row, then redirect)."""
    with connection(settings) as conn:
        report = engine.merge(conn, old, survivor, actor=actor, dry_run=dry_run)
    _print_report(report)
    if report.outcome == "refused":
        raise SystemExit(1)


@click.command("anonymise")
@click.argument("number")
@click.option("--reason-code", required=True, help="Why, as a code (e.g. AVG); no free text.")
@click.option("--dry-run", is_flag=True, help="Print per table how many rows would change.")
@actor_option
@click.pass_obj
@edge
def anonymise(settings: HasDsn, number: str, reason_code: str, dry_run: bool, actor: str) -> None:
    """Anonymise customer NUMBER irreversibly and queue the request for tritonX."""
    with connection(settings) as conn:
        report = engine.anonymise(
            conn, number, reason_code=reason_code, actor=actor, dry_run=dry_run
        )
    _print_report(report)


# ---------------------------------------------------------------------------------------------
# coverage
# ---------------------------------------------------------------------------------------------
@click.command("coverage")
@click.pass_obj
@edge
def coverage(settings: HasDsn) -> None:
    """Exit non-zero when a column of a customer-linked table has no PII strategy."""
    with connection(settings) as conn:
        defects = engine.coverage_defects(conn)
    if not defects:
        click.echo("ok: every column of every customer-linked table is classified")
        return
    for d in defects:
        click.echo(f"{d.table}.{d.column or '*'}: {d.defect}")
    raise click.ClickException(f"{len(defects)} coverage defect(s)")


# ---------------------------------------------------------------------------------------------
# deadletter
# ---------------------------------------------------------------------------------------------
@click.group("deadletter")
def deadletter() -> None:
    """Inspect, retry and discard events that could not be applied."""


def _line(letter: engine.DeadLetter) -> str:
    return (
        f"{letter.inbox_id}\t{letter.event_type or '-'}\t{letter.customer_number or '-'}\t"
        f"v{letter.version if letter.version is not None else '-'}\t"
        f"attempts {letter.attempts}\t{letter.reason}"
    )


@deadletter.command("list")
@click.option("--limit", default=100, show_default=True, help="At most this many, oldest first.")
@click.pass_obj
@edge
def deadletter_list(settings: HasDsn, limit: int) -> None:
    """List dead letters: inbox id, type, number, version, attempts, reason."""
    with connection(settings) as conn:
        letters = engine.dead_letters(conn, limit=limit)
    for letter in letters:
        click.echo(_line(letter))
    if not letters:
        click.echo("no dead letters")


@deadletter.command("show")
@click.argument("inbox_id", type=int)
@click.pass_obj
@edge
def deadletter_show(settings: HasDsn, inbox_id: int) -> None:
    """Show one dead letter (never its payload: it may hold personal data)."""
    with connection(settings) as conn:
        letter = engine.dead_letter(conn, inbox_id)
    for name, value in (
        ("inbox id", letter.inbox_id),
        ("event id", letter.event_id or "(malformed)"),
        ("type", letter.event_type or "(malformed)"),
        ("customer number", letter.customer_number or "(malformed)"),
        ("version", letter.version),
        ("reason", letter.reason),
        ("attempts", letter.attempts),
        ("first failed", letter.created_at.isoformat()),
        ("last attempt", letter.last_attempt_at.isoformat()),
    ):
        click.echo(f"{name + ':':<17}{value}")


@deadletter.command("retry")
@click.argument("inbox_id", type=int)
@click.pass_obj
@edge
def deadletter_retry(settings: HasDsn, inbox_id: int) -> None:
    """Apply a dead-lettered event again."""
    with connection(settings) as conn:
        outcome = engine.retry_dead_letter(conn, inbox_id)
        letter = engine.dead_letter(conn, inbox_id) if outcome == "dead_letter" else None
    if letter is not None:
        raise click.ClickException(
            f"still a dead letter (attempt {letter.attempts}): {letter.reason}"
        )
    click.echo(f"inbox row {inbox_id}: {outcome}")


@deadletter.command("discard")
@click.argument("inbox_id", type=int)
@actor_option
@click.pass_obj
@edge
def deadletter_discard(settings: HasDsn, inbox_id: int, actor: str) -> None:
    """Give up on a dead-lettered event (recorded in the audit as discarded)."""
    with connection(settings) as conn:
        engine.discard_dead_letter(conn, inbox_id, actor=actor)
    click.echo(f"inbox row {inbox_id}: discarded")


COMMANDS: tuple[click.Command, ...] = (deadletter, merge, anonymise, coverage)
