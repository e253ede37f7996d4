"""Operating the engine by hand: `merge`, `anonymise`, `coverage`, `deadletter
list|show|retry|discard`, `links check|repair` and `outbox list|retry`, over syncctl.engine,
syncctl.links and syncctl.outbox. These commands act on a configured database, never on a
throwaway embedded server."""

from __future__ import annotations

from collections import Counter

import click

from syncctl import engine, environment, links, outbox
from syncctl.cli.edge import (
    HasDsn,
    HasTritonX,
    actor_option,
    connection,
    edge,
    stop_on_signals,
)
from syncctl.progress import Progress


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
@click.argument("olds", metavar="OLD...", nargs=-1, required=True)
@click.argument("survivor")
@click.option("--dry-run", is_flag=True, help="Print per table how many rows would change.")
@actor_option
@click.pass_obj
@edge
def merge(
    settings: HasDsn, olds: tuple[str, ...], survivor: str, dry_run: bool, actor: str
) -> None:
    """Merge customer number OLD into SURVIVOR (re-point every linked row, then redirect).

    Several OLD numbers merge into SURVIVOR one after the other in one transaction: an
    impossible pair refuses them all. Their dry run carries the merges out and rolls them back."""
    with connection(settings) as conn:
        report = engine.merge_several(conn, list(olds), survivor, actor=actor, dry_run=dry_run)
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
    """Exit non-zero on any coverage defect: an unclassified column, a missing privilege or
    index, an undeclared customer reference, a foreign trigger (one line each)."""
    with connection(settings) as conn:
        defects = engine.coverage_defects(conn)
    if not defects:
        click.echo(
            "ok: every customer-linked table is classified, indexed and granted;"
            " no undeclared customer references"
        )
        return
    for d in defects:
        click.echo(f"{d.place}: {d.defect}")
    kinds = Counter(d.kind for d in defects)
    summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    raise click.ClickException(f"{len(defects)} coverage defect(s): {summary}")


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
        ("event id", letter.event_id or "-"),
        ("type", letter.event_type or "-"),
        ("customer number", letter.customer_number or "-"),
        ("version", "-" if letter.version is None else letter.version),
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


@click.group("links")
def links_group() -> None:
    """Find and repair what keeps customers from logging in."""


@links_group.command("check")
@click.option(
    "--probe",
    default=0,
    show_default=True,
    help="Also ask tritonX about this many random linked numbers (needs its URL).",
)
@click.pass_obj
@edge
def links_check(settings: HasTritonX, probe: int) -> None:
    """Count every link anomaly; exit 1 when there is any."""
    with connection(settings) as conn:
        found = links.anomalies(conn)
        if probe:
            if not settings.tritonx_url:
                raise click.UsageError("--probe needs --tritonx-url / TRITONX_URL")
            with environment.tritonx_client(settings.tritonx_url, settings.tritonx_token) as client:
                found.append(links.unknown_to_tritonx(conn, client, probe))
    for a in found:
        click.echo(f"{a.customers:>8}  {a.anomaly}")
    if any(a.customers for a in found):
        raise SystemExit(1)


@links_group.command("repair")
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@actor_option
@click.pass_obj
@edge
def links_repair(settings: HasDsn, dry_run: bool, actor: str) -> None:
    """Adopt unambiguous local customers and move links to merged-away numbers to survivors.

    Each fix commits on its own; progress goes to stderr. Interrupted (Ctrl-C, SIGTERM), it
    keeps the fixes made and exits 130 (143); run it again to continue."""
    with connection(settings) as conn:
        plan = links.repair_plan(conn)
        if dry_run:
            for a in plan.adopt:
                local, linked = (links.shown(a.local_key), links.shown(a.linked_key))
                click.echo(f"adopt local customer {local} into {a.number} (key {linked})")
            for m in plan.merge:
                click.echo(f"move the link of {m.old} to its survivor {m.survivor}")
            click.echo(f"dry run: {len(plan)} changes")
            return
        click.echo(f"{len(plan.adopt):,} adoptions and {len(plan.merge):,} links to move", err=True)
        with stop_on_signals() as stop:
            outcome = links.repair(
                conn,
                plan,
                actor,
                stop=stop,
                on_progress=Progress("fixes").printer(lambda line: click.echo(line, err=True)),
            )
    click.echo(f"done: {outcome.changed} changes of {outcome.planned} planned, audited")
    if not outcome.complete:
        stop.exit("syncctl links repair")


@click.group("outbox")
def outbox_group() -> None:
    """Events for tritonX (back-office anonymisations) and their delivery."""


@outbox_group.command("list")
@click.option("--state", type=click.Choice(["pending", "delivered", "dead"]), default=None)
@click.option("--limit", default=50, show_default=True)
@click.pass_obj
@edge
def outbox_list(settings: HasDsn, state: str | None, limit: int) -> None:
    """List outbox events, newest first."""
    with connection(settings) as conn:
        events = outbox.events(conn, state=state, limit=limit)
    for e in events:
        click.echo(
            f"{e.id:>6} {e.customer_number} {e.event_type} {e.state} attempts={e.attempts} "
            f"created={e.created_at:%Y-%m-%d %H:%M:%S} "
            + (
                f"delivered={e.delivered_at:%Y-%m-%d %H:%M:%S}"
                if e.delivered_at
                else f"next={e.next_attempt_at:%Y-%m-%d %H:%M:%S}"
            )
            + (f" error={e.last_error}" if e.last_error else "")
        )


@outbox_group.command("retry")
@click.argument("outbox_id", type=int)
@click.pass_obj
@edge
def outbox_retry(settings: HasDsn, outbox_id: int) -> None:
    """Deliver a dead or waiting outbox event again now."""
    with connection(settings) as conn:
        queued = outbox.retry(conn, outbox_id)
    if not queued:
        raise click.ClickException(f"no pending or dead outbox event {outbox_id}")
    click.echo(f"outbox event {outbox_id} queued for delivery")


COMMANDS: tuple[click.Command, ...] = (
    deadletter,
    merge,
    anonymise,
    coverage,
    links_group,
    outbox_group,
)
