"""The `syncctl` command: a thin click layer over the library. Errors of the library become
click exceptions here, at the edge, and nowhere else."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import click

from syncctl import __version__, controller, environment, gdpr, logs, schema
from syncctl.command_edge import (
    CommandLine,
    configured_tritonx,
    edge,
    required_dsn,
    simulator_options,
    stop_on_signals,
)
from syncctl.controller import PullReport
from syncctl.database import connect, queries
from syncctl.engine_cli import COMMANDS as ENGINE_COMMANDS
from syncctl.errors import SyncctlError, TritonXRefused
from syncctl.gdpr_cli import COMMANDS as GDPR_COMMANDS
from syncctl.leadership import leader
from syncctl.metrics import Metrics, MetricsServer
from syncctl.operations_cli import COMMANDS as OPERATIONS_COMMANDS
from syncctl.payload_retention import PayloadRetention
from syncctl.report import report as report_command
from syncctl.simulator.cli import simulator as simulator_group


@dataclass
class Settings:
    dsn: str | None
    tritonx_url: str | None
    tritonx_token: str | None


@click.group(cls=CommandLine, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="syncctl")
@click.option(
    "--dsn",
    envvar="DATABASE_URL",
    help="libpq DSN or URI; default: PG* variables, else a throwaway embedded PostgreSQL.",
)
@click.option(
    "--tritonx-url",
    envvar="TRITONX_URL",
    help="tritonX API base URL; default: the bundled simulator on loopback.",
)
@click.option("--tritonx-token", envvar="TRITONX_TOKEN", help="tritonX bearer token.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="SYNCCTL_LOG_FORMAT",
    show_default=True,
    help="Log line format (stderr).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.pass_context
def main(
    ctx: click.Context,
    dsn: str | None,
    tritonx_url: str | None,
    tritonx_token: str | None,
    log_format: str,
    verbose: int,
) -> None:
    """Customer sync between the webshop's PostgreSQL and tritonX."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logs.configure(level, json_lines=log_format == "json")
    ctx.obj = Settings(dsn, tritonx_url, tritonx_token)


main.add_command(simulator_group)
for _command in (*ENGINE_COMMANDS, *OPERATIONS_COMMANDS, *GDPR_COMMANDS, report_command):
    main.add_command(_command)


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


# ---------------------------------------------------------------------------------------------
# pull / run
# ---------------------------------------------------------------------------------------------
@main.command()
@click.option("--page-size", default=5000, show_default=True, help="Events per page.")
@simulator_options
@click.pass_obj
@edge
def pull(settings: Settings, page_size: int, simulator: bool, customers: int) -> None:
    """Pull tritonX changes until caught up, apply them, print what was done, exit.

    Interrupted (Ctrl-C, SIGTERM), it finishes the page in hand, keeps every page applied
    and exits 130 (143 for SIGTERM); run it again to continue."""
    with (
        configured_tritonx(settings, simulator, customers) as tx,
        environment.database(settings.dsn) as db,
        connect(db.dsn) as conn,
        stop_on_signals() as stop,
    ):
        report = controller.pull(conn, tx.client, page_size=page_size, stop=stop)
        _print_report("pulled", report)
    if stop.signum is not None and not report.caught_up:
        stop.exit("syncctl pull")


@main.command()
@click.option("--poll-interval", default=5.0, show_default=True, help="Seconds between polls.")
@click.option(
    "--metrics-port",
    type=int,
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
@click.option("--page-size", default=5000, show_default=True, help="Events per page.")
@simulator_options
@click.option(
    "--gdpr-daily-at",
    type=click.DateTime(formats=["%H:%M"]),
    default=None,
    envvar="SYNCCTL_GDPR_DAILY_AT",
    metavar="HH:MM",
    help="Run the daily GDPR job (retention purge, erasure requests due) at this local time.",
)
@click.option(
    "--keep-payloads-days",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    envvar="SYNCCTL_KEEP_PAYLOADS_DAYS",
    metavar="DAYS",
    help="Drop tritonX's snapshot from applied inbox events this many days after they came "
    "(data minimisation; dead letters keep theirs). 0: as soon as they are applied.",
)
@click.pass_obj
@edge
def run(
    settings: Settings,
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
    log = logging.getLogger("syncctl")
    metrics = Metrics(healthy_within=max(60.0, 10 * poll_interval))
    server = None
    if metrics_port is not None:
        server = MetricsServer(metrics, metrics_host, metrics_port).start()
        log.info("metrics on %s/metrics, health on %s/healthz", server.url, server.url)
    with (
        configured_tritonx(settings, simulator, customers) as tx,
        environment.database(settings.dsn) as db,
        stop_on_signals() as stop,
    ):

        def on_pull(report: PullReport) -> None:
            metrics.observe_pull(report)
            if report.events:
                log.info("pulled %d events in %.2f s", report.events, report.seconds)

        daily = gdpr.DailyJob(gdpr_daily_at.time()) if gdpr_daily_at else None
        payload_retention = PayloadRetention(timedelta(days=keep_payloads_days))

        every_cycle: list[tuple[str, Any]] = [
            ("payload retention", lambda c: metrics.observe_payloads_dropped(payload_retention(c))),
            ("metrics", metrics.update_from_db),
        ]
        if daily is not None:
            every_cycle.append(("daily GDPR job", daily))
        total = controller.run(
            lambda autocommit: connect(db.dsn, autocommit=autocommit),
            tx.client,
            poll_interval=poll_interval,
            page_size=page_size,
            stop=stop,
            on_pull=on_pull,
            on_refresh_latency=metrics.observe_refresh,
            every_cycle=every_cycle,
        )
        if server is not None:
            server.stop()
        _print_report("stopped; pulled in total", total)


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------
@main.command()
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
def demo(settings: Settings, customers: int, changes: int, seed: int) -> None:
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
        for action, outcome, reason, events in conn.execute(queries()["audit_effects"]):
            click.echo(f"  {action:<22} {outcome:<8} {reason or '':<28} {events:>7,}")
        counts = conn.execute(queries()["status_counts"]).fetchone()
        assert counts is not None
        click.echo(
            f"local customers linked to tritonX: {counts[0]:,}; "
            f"dead letters: {counts[1]}; pending: {counts[2]}"
        )


# ---------------------------------------------------------------------------------------------
# db
# ---------------------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Schema migrations (alembic) for DBAs."""


@db.command()
@click.option("--revision", default="heads", show_default=True, help="Target revision.")
@click.pass_obj
@edge
def upgrade(settings: Settings, revision: str) -> None:
    """Upgrade the database schema to a revision (default: the newest)."""
    dsn = required_dsn(settings)
    schema.upgrade(dsn, revision)
    click.echo(f"database at revision {', '.join(schema.current_revisions(dsn))}")


@db.command()
@click.argument("revision")
@click.option(
    "--yes",
    is_flag=True,
    help="Confirm without a prompt (required when standard input is not a terminal).",
)
@click.pass_obj
@edge
def downgrade(settings: Settings, revision: str, yes: bool) -> None:
    """Downgrade the database schema to REVISION ("base" removes everything).

    Says first what will go (revisions, schemas with their data, the shop's foreign keys and
    views that point into them) and asks; without a terminal it needs --yes."""
    dsn = required_dsn(settings)
    plan = schema.plan_downgrade(dsn, revision)
    for line in plan.describe():
        click.echo(line)
    if not plan.drops_data:
        return
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "db downgrade drops what is listed above; standard input is not a terminal: "
                "add --yes to confirm"
            )
        if not click.confirm("Drop all this for good?", default=False):
            raise click.ClickException("nothing changed")
    schema.downgrade(dsn, revision)
    click.echo(f"database at revision {', '.join(schema.current_revisions(dsn)) or 'base'}")


@db.command()
@click.pass_obj
@edge
def current(settings: Settings) -> None:
    """Print the database's schema revision and the newest one."""
    dsn = required_dsn(settings)
    click.echo(f"current: {', '.join(schema.current_revisions(dsn)) or 'none'}")
    click.echo(f"head:    {', '.join(schema.head_revisions())}")


@db.command()
@click.pass_obj
@edge
def check(settings: Settings) -> None:
    """Exit non-zero unless the database is at the newest revision."""
    dsn = required_dsn(settings)
    schema.require_current(dsn)
    click.echo(f"ok: database at revision {', '.join(schema.head_revisions())}")


# ---------------------------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------------------------
@main.command()
@click.pass_obj
@edge
def status(settings: Settings) -> None:
    """Show cursor, lag, inbox pending, dead letters, payloads held, outbox, refresh queue and
    the leader."""
    dsn = required_dsn(settings)
    schema.require_current(dsn)
    q = queries()
    feed_last_seq = None
    if settings.tritonx_url:
        try:
            with environment.tritonx_client(settings.tritonx_url, settings.tritonx_token) as client:
                feed_last_seq = client.fetch_changes(None, 1).last_seq
        except TritonXRefused as exc:
            click.echo(f"tritonX: {exc.state} ({exc})")
        except SyncctlError as exc:
            click.echo(f"tritonX: not reachable ({exc})")
    with connect(dsn) as conn:
        for source, position, last_seq, last_at, moved_at, lag in conn.execute(q["status_cursors"]):
            # lag: the age of the last applied event, as syncctl_last_event_age_seconds
            lag_text = "n/a" if lag is None else f"{lag:.0f} s"
            if feed_last_seq is not None and last_seq is not None and source == "tritonx":
                behind = max(0, feed_last_seq - int(str(last_seq)))
                lag_text += f", {behind} events behind the feed"
            click.echo(
                f"cursor {source}: position {position}, last seq {last_seq}, "
                f"last event at {last_at}, lag {lag_text}, moved at {moved_at}"
            )
        counts = conn.execute(q["status_counts"]).fetchone()
        queues = conn.execute(q["status_queues"]).fetchone()
        payloads = conn.execute(q["status_payloads"]).fetchone()
        assert counts is not None and queues is not None and payloads is not None
        click.echo(
            f"linked customers: {counts[0]}, dead letters: {counts[1]}, inbox pending: {counts[2]}"
        )
        click.echo(
            f"inbox payloads held: {payloads[0]}"
            + (f", oldest received at {payloads[1]}" if payloads[1] is not None else "")
        )
        click.echo(
            f"outbox pending: {queues[0]}, outbox dead: {queues[1]}, refresh queue: {queues[2]}, "
            f"last successful pull: {queues[3]}"
        )
        holder = leader(conn)
        click.echo(
            "leader: none"
            if holder is None
            else f"leader: pid {holder[0]} ({holder[1]}) from {holder[2] or 'local socket'}, "
            f"since {holder[3]:%Y-%m-%d %H:%M:%S}"
        )


if __name__ == "__main__":
    sys.exit(main())
