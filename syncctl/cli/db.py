"""`syncctl db ...`: schema migrations (alembic) for DBAs, over syncctl.schema. These commands
act on a configured database only, never on a throwaway embedded one."""

from __future__ import annotations

import sys

import click

from syncctl import reference_shop, schema
from syncctl.cli.edge import HasDsn, edge, required_dsn


@click.group()
def db() -> None:
    """Schema migrations (alembic) for DBAs."""


@db.command()
@click.option("--revision", default="heads", show_default=True, help="Target revision.")
@click.pass_obj
@edge
def upgrade(settings: HasDsn, revision: str) -> None:
    """Upgrade the database schema to a revision (default: the newest)."""
    dsn = required_dsn(settings)
    schema.upgrade(dsn, revision)
    click.echo(f"database at revision {', '.join(schema.current_revisions(dsn))}")


@db.command("reference-shop")
@click.pass_obj
@edge
def reference_shop_command(settings: HasDsn) -> None:
    """Create the reference shop (schema shop) and install its mapping.

    The demo's and the tests' customer tables, for trying syncctl out: a shop's own database
    needs none of it (its customer tables are bound by `syncctl mapping install`). The database
    must be at the newest revision (`syncctl db upgrade`). Re-runnable."""
    dsn = required_dsn(settings)
    schema.require_current(dsn)
    version = reference_shop.install(dsn)
    click.echo(f"reference shop installed: schema shop, mapping version {version}")


@db.command()
@click.argument("revision")
@click.option(
    "--yes",
    is_flag=True,
    help="Confirm without a prompt (required when standard input is not a terminal).",
)
@click.pass_obj
@edge
def downgrade(settings: HasDsn, revision: str, yes: bool) -> None:
    """Downgrade the database schema to REVISION ("base" removes everything).

    Says first what will go (revisions, schemas with their data, the shop's foreign keys and
    views that point into them, the engine's triggers on the shop's tables) and asks; without
    a terminal it needs --yes."""
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
def current(settings: HasDsn) -> None:
    """Print the database's schema revision and the newest one."""
    dsn = required_dsn(settings)
    click.echo(f"current: {', '.join(schema.current_revisions(dsn)) or 'none'}")
    click.echo(f"head:    {', '.join(schema.head_revisions())}")


@db.command()
@click.pass_obj
@edge
def check(settings: HasDsn) -> None:
    """Exit non-zero unless the database is at the newest revision."""
    dsn = required_dsn(settings)
    schema.require_current(dsn)
    click.echo(f"ok: database at revision {', '.join(schema.head_revisions())}")


COMMANDS: tuple[click.Command, ...] = (db,)
