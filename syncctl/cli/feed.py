"""The feed's commands: `pull`, `run` (the daemon), `status`, `bootstrap` and `demo`, over
syncctl.controller, syncctl.daemon, syncctl.status and syncctl.bootstrap."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import click

from syncctl import bootstrap as onboarding
from syncctl import controller, environment, schema, status
from syncctl.cli.edge import (
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
from syncctl.daemon import DaemonOptions, serve
from syncctl.database import connect
from syncctl.progress import Progress

keep_payloads_option = click.option(
    "--keep-payloads-days",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    envvar="SYNCCTL_KEEP_PAYLOADS_DAYS",
    metavar="DAYS",
    help="Keep tritonX's record of each applied event in the inbox this many days (the daemon "
    "drops it then; dead letters keep theirs). 0: never write an applied event's snapshot.",
)


page_size_option = click.option(
    "--page-size",
    type=click.IntRange(1, 5000),
    default=5000,
    show_default=True,
    help="Events per page (tritonX's limit: 1 to 5,000).",
)


def _print_report(title: str, report: PullReport) -> None:
    states = ", ".join(f"{k} {v}" for k, v in sorted(report.states.items())) or "none"
    lag = report.lag_seconds
    rate = report.events / report.seconds if report.seconds > 0 else 0.0
    click.echo(
        f"{title}: {report.events} events in {report.pages} pages, "
        f"{report.seconds:.2f} s ({rate:,.0f} events/s)"
    )
    click.echo(f"  outcomes: {states}")
    click.echo(
        f"  last seq: {report.last_seq}, lag: "
        + ("n/a" if lag is None else f"{lag:.1f} s")
        + f", retries: {report.retries}, caught up: {'yes' if report.caught_up else 'no'}"
    )


@click.command()
@page_size_option
@simulator_options
@keep_payloads_option
@click.pass_obj
@edge
def pull(
    settings: HasTritonX,
    page_size: int,
    simulator: bool,
    customers: int,
    keep_payloads_days: float,
) -> None:
    """Pull tritonX changes until caught up, apply them, print what was done, exit.

    Interrupted (Ctrl-C, SIGTERM), it finishes the page in hand, keeps every page applied
    and exits 130 (143 for SIGTERM); run it again to continue."""
    with (
        configured_tritonx(settings, simulator, customers) as tx,
        environment.database(settings.dsn) as db,
        connect(db.dsn) as conn,
        stop_on_signals() as stop,
    ):
        report = controller.pull(
            conn, tx.client, page_size=page_size, stop=stop, keep_payloads=keep_payloads_days > 0
        )
        _print_report("pulled", report)
    if stop.signum is not None and not report.caught_up:
        stop.exit("syncctl pull")


@click.command()
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds between polls.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    envvar="SYNCCTL_METRICS_PORT",
    help="Serve /metrics and /healthz on this port (0: any free port).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address for the metrics endpoint (keep it on loopback).",
)
@page_size_option
@simulator_options
@click.option(
    "--gdpr-daily-at",
    type=click.DateTime(formats=["%H:%M"]),
    default=None,
    envvar="SYNCCTL_GDPR_DAILY_AT",
    metavar="HH:MM",
    help="Run the daily GDPR job (retention purge, erasure requests due) at this local time.",
)
@keep_payloads_option
@click.pass_obj
@edge
def run(
    settings: HasTritonX,
    poll_interval: float,
    page_size: int,
    simulator: bool,
    customers: int,
    metrics_port: int | None,
    metrics_host: str,
    gdpr_daily_at: datetime | None,
    keep_payloads_days: float,
) -> None:
    """Run the controller daemon: poll tritonX and apply changes until SIGTERM or SIGINT."""
    options = DaemonOptions(
        poll_interval=poll_interval,
        page_size=page_size,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        gdpr_daily_at=gdpr_daily_at.time() if gdpr_daily_at else None,
        keep_payloads=timedelta(days=keep_payloads_days),
    )
    with (
        configured_tritonx(settings, simulator, customers) as tx,
        environment.database(settings.dsn) as db,
        stop_on_signals() as stop,
    ):
        _print_report("stopped; pulled in total", serve(db.dsn, tx.client, options, stop))


@click.command("status")
@click.pass_obj
@edge
def status_command(settings: HasTritonX) -> None:
    """Show cursor, lag, inbox pending, dead letters, payloads held, outbox, refresh queue and
    the leader."""
    with connection(settings) as conn:
        head = status.FeedHead()
        if settings.tritonx_url:
            head = status.feed_head(settings.tritonx_url, settings.tritonx_token)
            if head.problem is not None:
                click.echo(f"tritonX: {head.problem}")
        now = status.read(conn)
    for c in now.cursors:
        # lag: the age of the last applied event, as syncctl_last_event_age_seconds
        lag_text = "n/a" if c.lag_seconds is None else f"{c.lag_seconds:.0f} s"
        if head.last_seq is not None and c.last_seq is not None and c.source == "tritonx":
            lag_text += f", {max(0, head.last_seq - int(c.last_seq))} events behind the feed"
        click.echo(
            f"cursor {c.source}: position {c.position}, last seq {c.last_seq}, "
            f"last event at {c.last_event_at}, lag {lag_text}, moved at {c.moved_at}"
        )
    n, p, q = now.counts, now.payloads, now.queues
    linked = (
        "unknown (the customer table is locked)"
        if n.linked_customers is None
        else str(n.linked_customers)
    )
    click.echo(
        f"linked customers: {linked}, dead letters: {n.dead_letters}, "
        f"inbox pending: {n.inbox_pending}"
    )
    click.echo(
        f"inbox payloads held: {p.held}"
        + (
            f", oldest received at {p.oldest_received_at}"
            if p.oldest_received_at is not None
            else ""
        )
    )
    click.echo(
        f"outbox pending: {q.outbox_pending}, outbox dead: {q.outbox_dead}, "
        f"refresh queue: {q.refresh_queue}, last successful pull: {q.last_pull}"
    )
    leader = now.leader
    if leader is None:
        click.echo("leader: none")
        return
    waiting = ""
    if leader.waiting_seconds is not None:
        waiting = f", waiting {leader.waiting_seconds:.0f} s for a lock"
        if leader.blocked_by is not None:
            waiting += f" held by pid {leader.blocked_by}"
    click.echo(
        f"leader: pid {leader.pid} ({leader.application_name}) from "
        f"{leader.client_address or 'local socket'}, since {leader.since:%Y-%m-%d %H:%M:%S}"
        + waiting
    )


@click.command()
@click.option("--customers", default=10_000, show_default=True, help="Simulated population.")
@click.option(
    "--changes",
    default=500,
    show_default=True,
    help="tritonX activity (edits, merges, anonymisations, deletes) after the import.",
)
@click.option("--seed", default=1, show_default=True, help="Seed of population and activity.")
@click.pass_obj
@edge
def demo(settings: HasTritonX, customers: int, changes: int, seed: int) -> None:
    """Import a simulated tritonX into a throwaway database, then follow its changes."""
    if settings.dsn or settings.tritonx_url:
        raise click.UsageError("demo always runs on the embedded database and the simulator")
    with (
        environment.database(None) as db,
        environment.tritonx(
            None, None, simulator_allowed=True, customers=customers, seed=seed
        ) as tx,
        connect(db.dsn) as conn,
    ):
        assert tx.simulator is not None
        click.echo(f"embedded PostgreSQL and tritonX simulator ({customers:,} customers) started")
        _print_report("initial import", controller.pull(conn, tx.client))
        done = tx.simulator.state.random_activity(changes, seed)
        click.echo("tritonX activity: " + ", ".join(f"{n} {kind}" for kind, n in done.items()))
        _print_report("follow-up pull", controller.pull(conn, tx.client))
        click.echo("effects in the audit:")
        for e in status.audit_effects(conn):
            click.echo(f"  {e.action:<22} {e.outcome:<8} {e.reason or '':<28} {e.events:>7,}")
        counts = status.counts(conn)
        linked = "unknown" if counts.linked_customers is None else f"{counts.linked_customers:,}"
        click.echo(
            f"local customers linked to tritonX: {linked}; "
            f"dead letters: {counts.dead_letters}; pending: {counts.inbox_pending}"
        )


@click.command()
@page_size_option
@simulator_options
@actor_option
@keep_payloads_option
@click.pass_obj
@edge
def bootstrap(
    settings: HasTritonX,
    page_size: int,
    simulator: bool,
    customers: int,
    actor: str,
    keep_payloads_days: float,
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
            keep_payloads=keep_payloads_days > 0,
        )
    click.echo(
        f"bootstrap {'done' if result.complete else 'stopped'} in "
        f"{time.monotonic() - started:.1f} s"
    )
    click.echo(f"  events imported:                {result.imported.events:,}")
    if refused := result.imported.states["dead_letter"]:
        click.echo(f"  events refused (dead letters):  {refused:,} (syncctl deadletter list)")
    click.echo(f"  customers linked to tritonX:    {result.linked:,}")
    click.echo(f"  local customers adopted:        {result.adopted:,}")
    click.echo(f"  local customers left unlinked:  {result.unlinked_left:,}")
    click.echo(f"  open link conflicts:            {result.conflicts:,}")
    if not result.complete and stop.signum is not None:
        stop.exit("syncctl bootstrap")


COMMANDS: tuple[click.Command, ...] = (pull, run, status_command, bootstrap, demo)
