"""`syncctl status` asks tritonX for its feed's head and says why it could not read one: an
answer that is not the contract is "not the contract", as the leader's state says, not an
outage ("not reachable"). Over a real socket on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from syncctl import status


@pytest.fixture
def maintenance_page() -> Iterator[str]:
    """A server that answers every GET with 200 and an HTML page, as a proxy in maintenance."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body>Maintenance</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_an_answer_that_is_not_json_is_not_the_contract(maintenance_page: str) -> None:
    head = status.feed_head(maintenance_page, "token")
    assert head.last_seq is None
    assert head.problem is not None
    assert head.problem.startswith("not the contract ("), head.problem
    assert "token" not in head.problem


def test_a_closed_port_is_not_reachable() -> None:
    head = status.feed_head("http://127.0.0.1:9/", "token")
    assert head.problem is not None
    assert head.problem.startswith("not reachable ("), head.problem
