"""`syncctl ... | head`: the reader goes away before the output is written. The command stops
quietly (click's exit status 1), instead of printing `Error: Broken pipe`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import click
    from syncctl.cli.edge import CommandLine, edge

    @click.group(cls=CommandLine)
    def main():
        pass

    @main.command()
    @edge
    def lines():
        for n in range(200_000):
            click.echo(f"line {n}")

    main()
    """
)


def test_a_reader_that_goes_away_stops_the_command_quietly() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "lines"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as writer:
        assert writer.stdout is not None and writer.stderr is not None
        assert writer.stdout.readline() == b"line 0\n"
        writer.stdout.close()  # the reader goes away, as `head -1` does
        errors = writer.stderr.read()
        assert writer.wait(timeout=60) == 1
    assert errors == b""
