"""Click commands for operating the link between shop and tritonX: `bootstrap`, `links check
| repair`, `outbox list | retry`. Thin over syncctl.bootstrap, syncctl.links and the outbox
functions; registered by syncctl.cli."""

from __future__ import annotations

import time

import click

from syncctl import bootstrap as onboarding
from syncctl import environment, links, schema
from syncctl.command_edge import (
    HasDsn,
    HasTritonX,
    actor_option,
    configured_tritonx,
    connection,
    edge,
    required_dsn,
    simulator_options,
    stop_on_signals,
)
from syncctl.controller import PullReport
from syncctl.database import connect, queries
from syncctl.progress import Progress


@click.command()
@click.option("--page-size", default=5000, show_default=True, help="Events per page.")
@simulator_options
@actor_option
@click.pass_obj
@edge
def bootstrap(
    settings: HasTritonX, page_size: int, simulator: bool, customers: int, actor: str
) -> None:
    """Onboard a shop: import every tritonX customer, adopt matching local customers, report.

    Progress goes to stderr. Interrupted (Ctrl-C, SIGTERM), it keeps every page imported and
    every adoption made, and exits 130 (143); run it again to continue."""
    dsn = required_dsn(settings)
    started = time.monotonic()

    def page_progress(report: PullReport) -> None:
        rate = report.events / max(report.seconds, 1e-6)
        line = f"imported {report.events:,} events, {rate:,.0f}/s"
        if report.feed_last_seq and report.last_seq:
            left = max(0, report.feed_last_seq - report.last_seq)
            line += f", {100 * report.last_seq / report.feed_last_seq:5.1f}%"
            line += f", ETA {left / rate:,.0f} s" if rate else ""
        click.echo(line, err=True)

    with (
        configured_tritonx(settings, simulator, customers) as tx,
        connect(dsn) as conn,
        stop_on_signals() as stop,
    ):
        schema.require_current_on(conn)
        result = onboarding.bootstrap(
            conn,
            tx.client,
            actor=actor,
            page_size=page_size,
            stop=stop,
            on_page=page_progress,
            on_adoption=Progress("adoptions").printer(lambda line: click.echo(line, err=True)),
        )
    click.echo(
        f"bootstrap {'done' if result.complete else 'stopped'} in "
        f"{time.monotonic() - started:.1f} s"
    )
    click.echo(f"  events imported:                {result.imported.events:,}")
    click.echo(f"  customers linked to tritonX:    {result.linked:,}")
    click.echo(f"  local customers adopted:        {result.adopted:,}")
    click.echo(f"  local customers left unlinked:  {result.unlinked_left:,}")
    click.echo(f"  open link conflicts:            {result.conflicts:,}")
    if not result.complete and stop.signum is not None:
        stop.exit("syncctl bootstrap")


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
                asked, unknown = links.unknown_to_tritonx(conn, client, probe)
            found.append((f"linked numbers unknown to tritonX (of {asked} asked)", unknown))
    for anomaly, count in found:
        click.echo(f"{count:>8}  {anomaly}")
    if any(count for _, count in found):
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
            for local_id, linked_id, number in plan.adopt:
                click.echo(f"adopt local customer {local_id} into {number} (id {linked_id})")
            for old, survivor in plan.merge:
                click.echo(f"move the link of {old} to its survivor {survivor}")
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
        rows = conn.execute(queries()["outbox_list"], {"state": state, "limit": limit})
        for row_id, number, kind, row_state, attempts, due, error, created, delivered in rows:
            click.echo(
                f"{row_id:>6} {number} {kind} {row_state} attempts={attempts} "
                f"created={created:%Y-%m-%d %H:%M:%S} "
                + (
                    f"delivered={delivered:%Y-%m-%d %H:%M:%S}"
                    if delivered
                    else f"next={due:%Y-%m-%d %H:%M:%S}"
                )
                + (f" error={error}" if error else "")
            )


@outbox_group.command("retry")
@click.argument("outbox_id", type=int)
@click.pass_obj
@edge
def outbox_retry(settings: HasDsn, outbox_id: int) -> None:
    """Deliver a dead or waiting outbox event again now."""
    with connection(settings) as conn:
        row = conn.execute(queries()["outbox_retry"], {"id": outbox_id}).fetchone()
        conn.commit()
    if not (row and row[0]):
        raise click.ClickException(f"no pending or dead outbox event {outbox_id}")
    click.echo(f"outbox event {outbox_id} queued for delivery")


COMMANDS = (bootstrap, links_group, outbox_group)
