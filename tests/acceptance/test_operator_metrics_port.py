"""`syncctl run --metrics-port` that cannot be served: a port out of range is a usage error
(exit 2), a port another process holds (a second daemon on the same host with the same
SYNCCTL_METRICS_PORT) ends the daemon with one line naming the address; never a traceback."""

from __future__ import annotations

import socket

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
