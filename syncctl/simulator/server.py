"""The simulator's HTTP server (stdlib ThreadingHTTPServer on loopback): the tritonX contract
of docs/tritonx-contract.md under /api/v1, admin commands under /admin, both behind the bearer
token. Chaos never changes the truth: it repeats events, redelivers older ones with their
original ids, delays, refuses (429 with Retry-After, 5xx) or adds malformed extra records."""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from syncctl.errors import SimulatorConflict
from syncctl.simulator.state import TritonX, encode

log = logging.getLogger("syncctl.simulator")
DEFAULT_TOKEN = "simulator-token"
MAX_LIMIT = 5000


@dataclass
class ChaosConfig:
    """Per-request probabilities of each kind of trouble."""

    duplicate: float = 0.0
    stale: float = 0.0
    rate_limit: float = 0.0
    server_error: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 2.0
    malformed: float = 0.0
    seed: int = 1
    # "changes" or "customers": trouble on that endpoint only ("" everywhere)
    only: str = ""
    # the change feed answers this status to every request (0: it answers normally)
    feed_status: int = 0


def _malformed(rng: random.Random, like: dict[str, Any]) -> Any:
    broken = dict(like, event_id=str(uuid.UUID(int=rng.getrandbits(128))))
    kind = rng.randrange(6)
    if kind == 0:
        del broken["event_id"]
    elif kind == 1:
        broken["version"] = "seven"
    elif kind == 2:
        broken["type"] = "customer.renamed"
    elif kind == 3:
        broken["customer_number"] = 12345
    elif kind == 4 and isinstance(broken.get("customer"), dict):
        broken["customer"] = dict(broken["customer"], birth_date="2026-02-31")
    else:
        return "this is not a change record"
    return broken


class _Handler(BaseHTTPRequestHandler):
    server: SimulatorHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("simulator: " + format, *args)

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send_json_text(status, encode(body), headers)

    def _send_json_text(
        self, status: int, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        return json.loads(self.rfile.read(length))

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.server.token}":
            return True
        self._send(401, {"error": "missing or wrong bearer token"})
        return False

    def _dispatch(self, method: str) -> None:
        if not self._authorised():
            return
        parts = urlsplit(self.path)
        try:
            self.server.route(self, method, parts.path, parse_qs(parts.query))
        except KeyError as exc:
            self._send(404, {"error": f"unknown customer {exc.args[0]}"})
        except SimulatorConflict as exc:
            self._send(409, {"error": str(exc)})
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            self._send(400, {"error": str(exc)})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


_CUSTOMER = re.compile(r"^/api/v1/customers/(?P<n>[^/]+)$")
_ANONYMIZE = re.compile(r"^/api/v1/customers/(?P<n>[^/]+)/anonymize$")
_ADMIN_CUSTOMER = re.compile(r"^/admin/customers/(?P<n>[^/]+)$")
_ADMIN_ANONYMISE = re.compile(r"^/admin/customers/(?P<n>[^/]+)/anonymise$")


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], state: TritonX, token: str, chaos: ChaosConfig
    ) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.token = token
        self.chaos = chaos
        self._rng = random.Random(chaos.seed)
        self._rng_lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that timed out and hung up (chaos "slow"): not worth a traceback on stderr
        log.debug("simulator: request from %s failed", client_address, exc_info=True)

    def set_chaos(self, chaos: ChaosConfig) -> None:
        with self._rng_lock:
            self.chaos = chaos
            self._rng = random.Random(chaos.seed)

    def _roll(self, probability: float) -> bool:
        with self._rng_lock:
            return probability > 0 and self._rng.random() < probability

    def route(self, h: _Handler, method: str, path: str, query: dict[str, list[str]]) -> None:
        state = self.state
        if method == "GET" and path == "/api/v1/customers/changes":
            self._changes(h, query)
        elif method == "GET" and (m := _CUSTOMER.match(path)):
            if self._refuse(h, "customers"):
                return
            c = state.customer(m["n"])
            if c is None or c.status == "deleted":
                h._send(404, {"error": "unknown customer"})
            elif c.status == "merged":
                h._send(410, {"merged_into": c.into})
            elif c.status == "anonymised":
                h._send(410, {"anonymized": True})
            else:
                h._send(200, {**(c.snapshot or {}), "version": c.version})
        elif method == "POST" and (m := _ANONYMIZE.match(path)):
            if self._refuse(h, "customers"):
                return
            body = h._body()
            if not isinstance(body, dict) or not body.get("idempotency_key"):
                raise ValueError("idempotency_key is required")
            if state.customer(m["n"]) is None:
                raise KeyError(m["n"])
            state.request_anonymisation(m["n"], body)
            h._send(202, {"accepted": True})
        elif method == "POST" and path == "/admin/customers":
            h._send(201, {"customer_number": state.create()})
        elif method == "POST" and (m := _ADMIN_ANONYMISE.match(path)):
            body = h._body()
            h._send(200, state.anonymise(m["n"], str(body.get("reason_code") or "AVG")))
        elif method == "POST" and (m := _ADMIN_CUSTOMER.match(path)):
            h._send(200, state.edit(m["n"], **h._body()))
        elif method == "DELETE" and (m := _ADMIN_CUSTOMER.match(path)):
            h._send(200, state.delete(m["n"]))
        elif method == "POST" and path == "/admin/merge":
            body = h._body()
            h._send(200, state.merge(str(body["old"]), str(body["into"])))
        elif method == "POST" and path == "/admin/activity":
            body = h._body()
            h._send(200, state.random_activity(int(body.get("n", 100)), int(body.get("seed", 1))))
        elif method == "PUT" and path == "/admin/chaos":
            self.set_chaos(ChaosConfig(**h._body()))
            h._send(200, asdict(self.chaos))
        elif method == "GET" and path == "/admin/state":
            h._send(200, state.current_state())
        elif method == "GET" and path == "/admin/received":
            h._send(200, state.received_anonymize_requests)
        else:
            h._send(404, {"error": f"no route {method} {path}"})

    def _refuse(self, h: _Handler, endpoint: str) -> bool:
        chaos = self.chaos
        if chaos.only not in ("", endpoint):
            return False
        if self._roll(chaos.slow):
            time.sleep(chaos.slow_seconds)
        if self._roll(chaos.rate_limit):
            h._send(429, {"error": "rate limited"}, {"Retry-After": "0.05"})
            return True
        if self._roll(chaos.server_error):
            h._send(503, {"error": "temporarily unavailable"})
            return True
        return False

    def _changes(self, h: _Handler, query: dict[str, list[str]]) -> None:
        try:
            after = int((query.get("after") or ["0"])[0] or 0)
            limit = min(MAX_LIMIT, max(1, int((query.get("limit") or ["1000"])[0])))
        except ValueError:
            h._send(400, {"error": "after and limit must be integers"})
            return
        if self.chaos.feed_status:
            h._send(self.chaos.feed_status, {"error": "the change feed is refused (chaos)"})
            return
        if self._refuse(h, "changes"):
            return
        # the events' JSON text as the state keeps it: the page is joined, not encoded
        events, next_cursor, has_more = self.state.encoded_changes(after, limit)
        page = list(events)
        chaos = self.chaos
        if events and self._roll(chaos.duplicate):
            # repeat part of the page, and stop the cursor short so the rest comes again
            with self._rng_lock:
                cut = self._rng.randrange(len(events))
            page.extend(events[cut:])
            next_cursor = after + 1 + cut  # the seq of events[cut]
            has_more = True
        if after > 1 and self._roll(chaos.stale):
            with self._rng_lock:
                older = self._rng.randrange(1, after + 1)
            page.insert(0, self.state.encoded_event(older))
        if events and self._roll(chaos.malformed):
            last = self.state.event(after + len(events))
            with self._rng_lock:
                page.append(encode(_malformed(self._rng, last)))
        # what json.dumps({"changes": [...], "next_cursor": ..., "has_more": ...,
        # "last_seq": ...}) writes, byte for byte
        h._send_json_text(
            200,
            b'{"changes": ['
            + b", ".join(page)
            + b'], "next_cursor": '
            + encode(str(next_cursor))
            + b', "has_more": '
            + encode(has_more)
            + b', "last_seq": '
            + encode(self.state.last_seq)
            + b"}",
        )


class SimulatorServer:
    """The simulator on 127.0.0.1 for the lifetime of a `with` block (port 0: any free one)."""

    def __init__(
        self,
        customers: int = 1000,
        seed: int = 1,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        chaos: ChaosConfig | None = None,
    ) -> None:
        self.state = TritonX(customers=customers, seed=seed)
        self.token = token
        self._http = SimulatorHTTPServer((host, port), self.state, token, chaos or ChaosConfig())
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def set_chaos(self, chaos: ChaosConfig) -> None:
        self._http.set_chaos(chaos)

    def start(self) -> SimulatorServer:
        self._thread = threading.Thread(
            target=self._http.serve_forever, name="tritonx-sim", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._http.serve_forever()

    def shutdown(self) -> None:
        self._http.shutdown()

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
