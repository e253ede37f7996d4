"""docs/cli.md is what the commands' --help says today."""

from __future__ import annotations

from pathlib import Path

from syncctl import reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_the_cli_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == reference.render(), (
        "docs/cli.md is stale: python -m syncctl.reference > docs/cli.md"
    )


def test_every_command_is_in_it() -> None:
    text = reference.render()
    for command in ("## syncctl run", "## syncctl erasure execute", "## syncctl policy revise"):
        assert command in text
