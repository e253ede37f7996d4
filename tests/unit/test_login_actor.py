"""The CLI's default actor is an identifier whatever the login name is."""

from __future__ import annotations

import getpass
import re

import pytest

from syncctl.cli import edge


@pytest.mark.parametrize("name", ["anna@corp.example", "Anna de Vries", "rené", "x" * 200])
def test_the_default_actor_is_an_identifier(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: name)
    actor = edge._login_actor()
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", actor), actor
    assert actor.startswith("cli:")
