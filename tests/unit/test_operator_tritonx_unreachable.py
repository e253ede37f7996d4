"""When tritonX cannot be reached, the operator reads why: a refused connection, a host name
that does not resolve, or TLS that failed (an https:// URL to a plain HTTP port, a certificate
that does not verify), each with the host, over real sockets on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from syncctl.errors import TritonXProtocolError, TritonXUnavailable
from syncctl.tritonx import TritonXClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _why(url: str) -> str:
    with (
        TritonXClient(url, "token", timeout=5.0) as client,
        pytest.raises(TritonXUnavailable) as raised,
    ):
        client.fetch_changes(None, 10)
    return str(raised.value)


def test_a_refused_connection_says_so() -> None:
    port = _free_port()
    why = _why(f"http://127.0.0.1:{port}/")
    assert why == f"tritonX at 127.0.0.1:{port} cannot be reached: connection refused"


def test_a_host_name_that_does_not_resolve_says_so() -> None:
    why = _why("http://tritonx.invalid/")
    assert why == "tritonX at tritonx.invalid cannot be reached: the host name does not resolve"


def test_tls_to_a_plain_http_port_names_the_tls_failure(plain_http_port: int) -> None:
    why = _why(f"https://127.0.0.1:{plain_http_port}/")
    assert why.startswith(f"tritonX at 127.0.0.1:{plain_http_port} cannot be reached: TLS failed (")
    assert "token" not in why


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"<html><body>Maintenance</body></html>", "a body that is not JSON"),
        (b'{"items": []}', "a page that lacks changes, next_cursor or has_more"),
    ],
    ids=["html", "another-json"],
)
def test_a_feed_answer_that_is_not_the_contract_names_the_host(body: bytes, what: str) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    with (
        TritonXClient("https://tritonx.example/", "token", transport=transport) as client,
        pytest.raises(TritonXProtocolError) as raised,
    ):
        client.fetch_changes(None, 10)
    assert str(raised.value) == (
        f"tritonX at tritonx.example answered GET /api/v1/customers/changes with {what}"
    )
