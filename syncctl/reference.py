"""The command-line reference (docs/cli.md), generated from the commands' own --help:
`python -m syncctl.reference > docs/cli.md`. A test checks the file is current."""

from __future__ import annotations

import click

from syncctl.cli import main

WIDTH = 100


def _sections(command: click.Command, path: list[str], parent: click.Context | None) -> list[str]:
    ctx = click.Context(
        command,
        info_name=path[-1],
        parent=parent,
        terminal_width=WIDTH,
        max_content_width=WIDTH,
    )
    found = [f"## {' '.join(path)}\n\n```\n{command.get_help(ctx)}\n```\n"]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                found.extend(_sections(sub, [*path, name], ctx))
    return found


def render() -> str:
    header = (
        "# Command-line reference\n\n"
        "Generated from `--help` by `python -m syncctl.reference > docs/cli.md`; a test keeps\n"
        "it current. Options before the command name (`--dsn`, `--tritonx-url`, ...) belong to\n"
        "`syncctl` itself.\n"
    )
    return "\n".join([header, *_sections(main, ["syncctl"], None)])


if __name__ == "__main__":
    click.echo(render(), nl=False)
