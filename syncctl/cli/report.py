"""`syncctl report NAME --format table|csv|json`: a report view, printed (syncctl.report)."""

from __future__ import annotations

import click

from syncctl import report as reports
from syncctl.cli.edge import HasDsn, connection, edge


@click.command("report")
@click.argument("name", type=click.Choice(sorted(reports.REPORTS)))
@click.option(
    "--format",
    "style",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Aligned columns, CSV with a header row, or a JSON array of objects.",
)
@click.option("--limit", default=1000, show_default=True, help="At most this many rows.")
@click.pass_obj
@edge
def report(settings: HasDsn, name: str, style: str, limit: int) -> None:
    """Print a report (no personal data): actions, merges, anonymisations, lag, ..."""
    with connection(settings) as conn:
        table = reports.fetch(conn, name, limit)
    click.echo(reports.render(table.columns, table.rows, style))


COMMANDS: tuple[click.Command, ...] = (report,)
