"""A hostile change feed through the real HTTP client, the controller's pull and the loader, into
the database as the controller role: a record nested thousands of levels deep, numbers JSON
cannot hold (NaN, Infinity, 1e400, an integer of 5000 digits), bytes that are not UTF-8, a
cursor that leads back, a Retry-After of forever, a page that never ends. The feed goes on: a
bad record becomes a dead letter with a reason naming its field, the records around it apply,
and nothing tritonX sent is lost. A feed that cannot go on (no progress, an endless page) is
an error the controller retries, never a loop that stages the same events for ever."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import psycopg
import pytest

from syncctl import controller
from syncctl.errors import TritonXProtocolError, TritonXUnavailable
from syncctl.tritonx import TritonXClient
from tests.feed import upserted

Answer = Callable[[str], tuple[int, dict[str, str], bytes]]


class _Feed(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        after = parse_qs(urlparse(self.path).query).get("after", [""])[0]
        server: Any = self.server
        server.asked.append(after)
        status, headers, body = server.answer(after)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Transfer-Encoding" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if headers.get("Transfer-Encoding") == "chunked":
            # an answer that never ends: at full speed, or a few bytes at a time (a drip)
            chunk = b" " if body == b"drip" else b'{"seq":1},' * 10_000
            try:
                while not server.stopping.wait(0.05 if body == b"drip" else 0):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            except OSError:
                pass
            return
        self.wfile.write(body)


@pytest.fixture
def feed_server() -> Iterator[Callable[[Answer], tuple[str, list[str]]]]:
    """A tritonX on loopback answering each GET of the change feed with `answer(after)`."""
    servers: list[Any] = []

    def serve(answer: Answer) -> tuple[str, list[str]]:
        server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Feed)
        server.answer, server.asked, server.stopping = answer, [], threading.Event()
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", server.asked

    yield serve
    for server in servers:
        server.stopping.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def controller_conn(as_role: Callable[[str], psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
    c = as_role("syncctl_controller")
    c.autocommit = False
    return c


def _page(records: list[bytes], next_cursor: str, has_more: bool) -> bytes:
    return (
        b'{"changes":['
        + b",".join(records)
        + b'],"next_cursor":'
        + json.dumps(next_cursor).encode()
        + b',"has_more":'
        + (b"true" if has_more else b"false")
        + b"}"
    )


def _record(number: str, seq: int) -> bytes:
    record = upserted(number, 1)
    record["seq"] = seq
    return json.dumps(record).encode()


def _with_field(number: str, seq: int, field: str, raw_value: bytes) -> bytes:
    """A record whose customer.`field` is `raw_value` as it stands in the JSON text."""
    marker = "@@" + uuid.uuid4().hex
    record = upserted(number, 1, **{field: marker})
    record["seq"] = seq
    return json.dumps(record).encode().replace(json.dumps(marker).encode(), raw_value)


def _one_page(records: list[bytes]) -> Answer:
    def answer(after: str) -> tuple[int, dict[str, str], bytes]:
        if after == "":
            return 200, {"Content-Type": "application/json"}, _page(records, "p1", False)
        return 200, {"Content-Type": "application/json"}, _page([], after, False)

    return answer


def _outcomes(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """customer number -> 'applied' or the dead letter's reason, as the owner sees it."""
    rows = conn.execute(
        "SELECT i.customer_number, coalesce(d.reason, 'applied')"
        " FROM sync.inbox AS i LEFT JOIN sync.dead_letter AS d ON d.inbox_id = i.id"
        " WHERE i.customer_number IS NOT NULL"
    ).fetchall()
    return dict(rows)


def _pull(
    controller_conn: psycopg.Connection[Any], url: str, **client_options: Any
) -> controller.PullReport:
    """`controller.pull` as the daemon runs it, stopped after a while should it never end."""
    stop = threading.Event()
    watchdog = threading.Timer(60, stop.set)
    watchdog.start()
    try:
        with TritonXClient(url, "t", **client_options) as client:
            return controller.pull(controller_conn, client, stop=stop, max_attempts=2)
    finally:
        watchdog.cancel()


DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    ("field", "raw_value"),
    [
        ("first_name", DEEP),
        ("house_number", b"NaN"),
        ("house_number", b"Infinity"),
        ("house_number", b"-Infinity"),
        ("house_number", b"1e400"),
        ("house_number", b"1" + b"0" * 5000),
    ],
    ids=["nested-5000-deep", "nan", "infinity", "minus-infinity", "1e400", "5000-digits"],
)
def test_a_record_json_cannot_hold_is_a_dead_letter_and_its_page_goes_on(
    feed_server: Callable[[Answer], tuple[str, list[str]]],
    controller_conn: psycopg.Connection[Any],
    conn: psycopg.Connection[Any],
    field: str,
    raw_value: bytes,
) -> None:
    records = [
        _record("TXA0000001", 1),
        _with_field("TXA0000002", 2, field, raw_value),
        _record("TXA0000003", 3),
    ]
    url, _ = feed_server(_one_page(records))
    report = _pull(controller_conn, url)
    assert report.caught_up
    outcomes = _outcomes(conn)
    assert outcomes["TXA0000001"] == outcomes["TXA0000003"] == "applied"
    assert f"customer.{field}" in outcomes["TXA0000002"]
    # the cursor moved past the page
    assert conn.execute("SELECT position FROM sync.cursor").fetchone() == ("p1",)


def test_deep_nesting_in_a_field_syncctl_ignores_keeps_the_record_and_its_text(
    feed_server: Callable[[Answer], tuple[str, list[str]]],
    controller_conn: psycopg.Connection[Any],
    conn: psycopg.Connection[Any],
) -> None:
    record = upserted("TXA0000004", 1)
    record["seq"] = 4
    text = json.dumps(record).encode()
    text = text[:-1] + b',"extension":' + DEEP + b"}"
    url, _ = feed_server(_one_page([text]))
    assert _pull(controller_conn, url).caught_up
    assert _outcomes(conn) == {"TXA0000004": "applied"}
    kept = conn.execute(
        "SELECT payload -> 'extension' FROM sync.inbox WHERE customer_number = 'TXA0000004'"
    ).fetchone()
    assert kept is not None and json.dumps(kept[0]).count("[") == 5000


def test_bytes_that_are_not_utf8_are_a_dead_letter_and_the_bytes_stay_recoverable(
    feed_server: Callable[[Answer], tuple[str, list[str]]],
    controller_conn: psycopg.Connection[Any],
    conn: psycopg.Connection[Any],
) -> None:
    records = [
        _record("TXA0000005", 5),
        _with_field("TXA0000006", 6, "first_name", b'"An\xff\xfena"'),
        _record("TXA0000007", 7),
    ]
    url, _ = feed_server(_one_page(records))
    assert _pull(controller_conn, url).caught_up
    outcomes = _outcomes(conn)
    assert outcomes["TXA0000005"] == outcomes["TXA0000007"] == "applied"
    assert "customer.first_name" in outcomes["TXA0000006"]
    raw = conn.execute("SELECT raw FROM sync.inbox WHERE customer_number = 'TXA0000006'").fetchone()
    assert raw is not None
    # the ASCII-escaped text names each byte that was not UTF-8 (surrogate escapes)
    first_name = json.loads(raw[0])["customer"]["first_name"]
    assert first_name.encode("utf-8", "surrogateescape") == b"An\xff\xfena"


@pytest.mark.parametrize(
    "back_to", ["", "p1", "p0"], ids=["the-start", "the-same-cursor", "an-earlier-cursor"]
)
def test_a_cursor_that_leads_back_is_an_error_not_a_loop(
    feed_server: Callable[[Answer], tuple[str, list[str]]],
    controller_conn: psycopg.Connection[Any],
    conn: psycopg.Connection[Any],
    back_to: str,
) -> None:
    # "" -> p0 -> p1 -> back_to: p0 was asked for before p1, so it leads back as well
    def answer(after: str) -> tuple[int, dict[str, str], bytes]:
        if after == "":
            return 200, {}, _page([_record("TXA0000007", 7)], "p0", True)
        if after == "p0":
            return 200, {}, _page([_record("TXA0000008", 8)], "p1", True)
        return 200, {}, _page([_record("TXA0000009", 9)], back_to, True)

    url, asked = feed_server(answer)
    with pytest.raises(TritonXProtocolError, match="next_cursor"):
        _pull(controller_conn, url)
    # the page that led back was not staged, nor anything after it
    assert conn.execute("SELECT count(*) FROM sync.inbox").fetchone() == (2,)
    assert conn.execute("SELECT position FROM sync.cursor").fetchone() == ("p1",)
    assert len(asked) <= 6


@pytest.mark.parametrize(
    "retry_after",
    [
        "inf",
        "1e12",
        "-5",
        "nan",
        "86400000",
        "Wed, 21 Oct 2099 07:28:00 GMT",
        "Wed, 21 Oct 2015 07:28:00 GMT",
        "Wed, 21 Oct 2099 07:28:00",
        "soon",
    ],
)
def test_a_retry_after_of_forever_is_capped(retry_after: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": retry_after})

    client = TritonXClient("http://tritonx.invalid", "t", transport=httpx.MockTransport(handle))
    with pytest.raises(TritonXUnavailable) as raised:
        client.fetch_changes(None, 10)
    wait = raised.value.retry_after
    assert wait is None or 0.0 <= wait <= 3600.0


def test_the_daemon_goes_on_after_a_retry_after_of_forever(
    feed_server: Callable[[Answer], tuple[str, list[str]]],
    controller_conn: psycopg.Connection[Any],
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # waits are what the client caps; the backoff's own jitter is kept to nothing here
    monkeypatch.setattr("syncctl.tritonx.MAX_RETRY_AFTER_SECONDS", 0.2, raising=False)
    records = [_record("TXA0000010", 10)]
    answered: list[int] = []

    def answer(after: str) -> tuple[int, dict[str, str], bytes]:
        if not answered:
            answered.append(1)
            return 503, {"Retry-After": "1e12"}, b""
        return _one_page(records)(after)

    url, _ = feed_server(answer)
    report = _pull(controller_conn, url)
    assert report.caught_up and _outcomes(conn) == {"TXA0000010": "applied"}


@pytest.mark.parametrize(
    ("body", "options", "error", "message"),
    [
        (b"", {"max_page_bytes": 4_000_000}, TritonXProtocolError, "more than 4000000 bytes"),
        (b"drip", {"max_answer_seconds": 1.0}, TritonXUnavailable, "did not finish its answer"),
    ],
    ids=["endless", "dripping"],
)
def test_an_answer_that_never_ends_is_an_error_not_a_hang(
    feed_server: Callable[[Answer], tuple[str, list[str]]],
    controller_conn: psycopg.Connection[Any],
    conn: psycopg.Connection[Any],
    body: bytes,
    options: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    def answer(after: str) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}, body

    url, _ = feed_server(answer)
    with pytest.raises(error, match=message):
        _pull(controller_conn, url, **options)
    assert conn.execute("SELECT count(*) FROM sync.inbox").fetchone() == (0,)


@pytest.mark.parametrize(
    "cursor_json", [b'"a\\u0000b"', b'"a\\ud800b"'], ids=["nul", "lone-surrogate"]
)
def test_a_next_cursor_postgresql_cannot_keep_is_an_error_not_a_crash(
    feed_server: Callable[[Answer], tuple[str, list[str]]],
    controller_conn: psycopg.Connection[Any],
    conn: psycopg.Connection[Any],
    cursor_json: bytes,
) -> None:
    def answer(after: str) -> tuple[int, dict[str, str], bytes]:
        body = _page([_record("TXA0000011", 11)], "x", False)
        return 200, {}, body.replace(b'"x"', cursor_json)

    url, _ = feed_server(answer)
    with pytest.raises(TritonXProtocolError, match="next_cursor"):
        _pull(controller_conn, url)
    assert conn.execute("SELECT count(*) FROM sync.inbox").fetchone() == (0,)


def test_a_record_nested_600_deep_holding_nul_is_a_dead_letter(
    feed_server: Callable[[Answer], tuple[str, list[str]]],
    controller_conn: psycopg.Connection[Any],
    conn: psycopg.Connection[Any],
) -> None:
    nested = b"[" * 600 + b'"\\u0000"' + b"]" * 600
    records = [
        _record("TXA0000012", 12),
        _with_field("TXA0000013", 13, "first_name", nested),
        _record("TXA0000014", 14),
    ]
    url, _ = feed_server(_one_page(records))
    assert _pull(controller_conn, url).caught_up
    outcomes = _outcomes(conn)
    assert outcomes["TXA0000012"] == outcomes["TXA0000014"] == "applied"
    # kept as its text, as any record holding U+0000 is
    assert "kept as text in sync.inbox.raw" in outcomes["TXA0000013"]
