"""`syncctl run --metrics-port` that cannot be served: a port out of range is a usage error
(exit 2), a port another process holds (a second daemon on the same host with the same
SYNCCTL_METRICS_PORT) ends the daemon with one line naming the address; never a traceback."""

from __future__ import annotations

import socket

import pytest

from tests.acceptance.conftest import syncctl

AWAY = ["--tritonx-url", "http://127.0.0.1:1", "--tritonx-token", "t"]


def test_a_port_out_of_range_is_a_usage_error(dsn: str) -> None:
    refused = syncctl(*AWAY, "run", "--metrics-port", "99999", dsn=dsn)
    assert refused.returncode == 2, refused.stderr
    assert "--metrics-port" in refused.stderr and "Traceback" not in refused.stderr


def test_a_port_in_use_is_named(dsn: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = syncctl(*AWAY, "run", "--metrics-port", str(port), dsn=dsn)
    assert refused.returncode == 1, refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: cannot serve the metrics on 127.0.0.1:"), refused.stderr
    assert str(port) in last and "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    "options",
    [
        ["pull", "--page-size", "0"],
        ["pull", "--page-size", "5001"],
        ["bootstrap", "--page-size", "-3"],
        ["run", "--page-size", "0"],
        ["run", "--poll-interval", "-5"],
        ["run", "--poll-interval", "0"],
    ],
    ids=lambda options: " ".join(options),
)
def test_a_page_size_or_poll_interval_outside_the_contract_is_a_usage_error(
    dsn: str, options: list[str]
) -> None:
    """tritonX takes a limit of 1 to 5,000 (docs/tritonx-contract.md); a poll interval of 0 or
    less would ask the feed without a pause."""
    refused = syncctl(*AWAY, *options, dsn=dsn, timeout=60)
    assert refused.returncode == 2, (refused.stdout, refused.stderr)
    assert options[1] in refused.stderr and "Traceback" not in refused.stderr
