"""`syncctl mapping check|plan|install|show`: the mapping that binds the engine to the shop's
customer table (docs/mapping.md), over syncctl.mapping (the file), syncctl.mapping_database and
syncctl.mapping_plan. Every problem and defect is printed as `FILE:LINE: path: problem`; exit 1
when the file is invalid or the mapping does not fit the database (warnings alone do not fail),
2 for a usage error. These commands act on a configured database only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import psycopg

from syncctl import mapping as mapping_file
from syncctl import mapping_database, mapping_plan
from syncctl.cli.edge import HasDsn, connection, edge
from syncctl.errors import MappingInvalid, MappingNotInstalled

_file = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))


def _loaded(file: Path) -> mapping_file.Mapping:
    """The mapping in FILE; its problems printed and exit 1 when it is not a valid mapping."""
    try:
        return mapping_file.load(file)
    except MappingInvalid as exc:
        for problem in exc.problems:
            click.echo(problem)
        raise click.ClickException(
            f"{len(exc.problems)} problem(s): {file} is not a valid mapping"
        ) from exc


def _checked(
    conn: psycopg.Connection[Any], loaded: mapping_file.Mapping, *, grants_later: bool = False
) -> list[mapping_database.Defect]:
    """The mapping's defects and warnings printed; exit 1 when there is a defect (with
    `grants_later`, missing privileges are left to the caller)."""
    found = mapping_database.defects(conn, loaded)
    for defect in found:
        click.echo(f"{loaded.where(defect.path)}: {defect.problem}")
    refusing = [d for d in found if not d.warning and not (grants_later and d.grant)]
    if refusing:
        raise click.ClickException(
            f"{len(refusing)} defect(s): the mapping does not fit this database"
        )
    return found


@click.group("mapping")
def mapping() -> None:
    """The mapping of the shop's customer table (docs/mapping.md)."""


@mapping.command()
@_file
@click.pass_obj
@edge
def check(settings: HasDsn, file: Path) -> None:
    """Check FILE against the database: each defect as FILE:LINE: path: problem.

    Exit 1 when there is a defect; warnings ("warning: ...") alone exit 0."""
    loaded = _loaded(file)
    with connection(settings) as conn:
        found = _checked(conn, loaded)
    warnings = len(found)
    click.echo(f"ok: {file} fits this database" + (f" ({warnings} warning(s))" if found else ""))


@mapping.command()
@_file
@click.pass_obj
@edge
def plan(settings: HasDsn, file: Path) -> None:
    """Check FILE, then print what the engine will write and the SQL it compiles to.

    Nothing is installed or executed."""
    loaded = _loaded(file)
    with connection(settings) as conn:
        found = _checked(conn, loaded, grants_later=True)
        sql = mapping_database.compiled(conn, loaded)
    grants = list(dict.fromkeys(g for g in (d.grant for d in found) if g))
    click.echo("")
    for line in mapping_plan.summary(loaded, grants):
        click.echo(line)
    click.echo("")
    if sql is None:
        click.echo("-- the mapping compiler is not installed in this database: no SQL to show")
    else:
        click.echo(sql)
    if grants:
        raise click.ClickException(
            f"{len(grants)} privilege(s) missing: run the GRANT statements above, then install"
        )


@mapping.command()
@_file
@click.pass_obj
@edge
def install(settings: HasDsn, file: Path) -> None:
    """Check FILE, then install it as the active mapping (versioned, audited).

    Prints the new version number. A defect refuses it (exit 1), as the database does."""
    loaded = _loaded(file)
    with connection(settings) as conn:
        _checked(conn, loaded)
        version = mapping_database.install(conn, loaded, source=str(file))
    click.echo(f"installed mapping version {version} from {file}")


@mapping.command()
@click.pass_obj
@edge
def show(settings: HasDsn) -> None:
    """Print the active mapping: version, checksum, who installed it when, and what it maps.

    Exit 1 when no mapping is installed."""
    with connection(settings) as conn:
        active = mapping_database.active(conn)
    if active is None:
        raise MappingNotInstalled()
    click.echo(f"version:      {active.version}")
    click.echo(f"sha256:       {active.sha256}")
    click.echo(f"source:       {active.source}")
    click.echo(f"installed by: {active.installed_by}")
    click.echo(f"installed at: {active.installed_at.isoformat()}")
    stored = mapping_file.from_document(active.document, f"version {active.version}")
    for line in mapping_plan.summary(stored):
        click.echo(line)


COMMANDS: tuple[click.Command, ...] = (mapping,)
