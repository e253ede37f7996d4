"""`syncctl pull` and `syncctl bootstrap` as an operator runs them, with a `statement_timeout` on
the login shorter than a page's apply (ALTER ROLE ... IN DATABASE, and a shop trigger whose time
grows with the page): they lower the page size, say so, and finish with everything applied."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.acceptance.conftest import TOKEN, Simulator, syncctl
from tests.integration.test_operator_statement_timeout import TIMEOUT_MS, slow_shop

__all__ = ["slow_shop"]  # the fixture, for pytest


@pytest.mark.parametrize("command", ["pull", "bootstrap"])
def test_the_command_lowers_the_page_size_and_finishes(
    simulator_factory: Callable[..., Simulator],
    slow_shop: psycopg.Connection[Any],
    dsn: str,
    command: str,
) -> None:
    simulator = simulator_factory("--customers", "120", "--seed", "3")
    done = syncctl(
        "--tritonx-url",
        simulator.url,
        "--tritonx-token",
        TOKEN,
        command,
        "--page-size",
        "64",
        dsn=dsn,
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"page apply exceeded statement_timeout ({TIMEOUT_MS} ms); page size lowered to 32"
        in done.stderr
    )
    row = slow_shop.execute("SELECT count(*) FROM shop.customer").fetchone()
    slow_shop.commit()
    assert row == (120,)
