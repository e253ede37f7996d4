"""The `syncctl` command: the root group and its global options. The commands live in the
modules of this package, one concern a module, each a few lines over a typed library function;
library errors become click errors only in `syncctl.cli.edge`."""

from __future__ import annotations

import logging
import sys

import click

from syncctl import __version__, logs
from syncctl.cli import db, engine, feed, gdpr, mapping, report, simulator
from syncctl.cli.edge import CommandLine, Settings


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


for _module in (db, engine, feed, gdpr, mapping, report, simulator):
    for _command in _module.COMMANDS:
        main.add_command(_command)


if __name__ == "__main__":
    sys.exit(main())
