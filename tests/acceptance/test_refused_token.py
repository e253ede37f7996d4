"""A refused token is a refusal, not an outage: `syncctl pull` stops at once with a message
naming host and status (never the token), and `syncctl status` says "token refused"."""

from __future__ import annotations

from collections.abc import Callable

from tests.acceptance.conftest import Simulator, syncctl

WRONG = "not-the-token-7d41c"


def test_pull_with_a_refused_token_exits_at_once_naming_host_and_status(
    simulator_factory: Callable[..., Simulator], dsn: str
) -> None:
    simulator = simulator_factory("--customers", "10")
    host = simulator.url.removeprefix("http://")
    pulled = syncctl("--tritonx-url", simulator.url, "--tritonx-token", WRONG, "pull", dsn=dsn)
    assert pulled.returncode != 0
    assert f"tritonX at {host} refused the token: 401" in pulled.stderr
    assert "retry" not in pulled.stderr, "a refused token was retried"
    assert WRONG not in pulled.stderr + pulled.stdout


def test_status_says_token_refused(simulator_factory: Callable[..., Simulator], dsn: str) -> None:
    simulator = simulator_factory("--customers", "10")
    shown = syncctl("--tritonx-url", simulator.url, "--tritonx-token", WRONG, "status", dsn=dsn)
    assert shown.returncode == 0, shown.stderr
    assert "tritonX: token refused (" in shown.stdout
    assert WRONG not in shown.stdout + shown.stderr
