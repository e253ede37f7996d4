"""The tritonX side: a ChangeSource yields pages of change records; TritonXClient is the HTTP
JSON implementation of the contract in docs/tritonx-contract.md. Another source (a file drop)
only has to implement ChangeSource. Errors become TritonXUnavailable (worth retrying, with the
Retry-After tritonX asked for), TritonXRefused (for good: TokenRefused for 401/403) or
TritonXProtocolError. A customer number goes into a URL path only when it is one (letters and
digits), and quoted even then: the bearer token goes with every request."""

from __future__ import annotations

import math
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from syncctl import feed_json, grammar
from syncctl.errors import (
    InvalidCustomerNumber,
    TokenRefused,
    TritonXProtocolError,
    TritonXRefused,
    TritonXUnavailable,
)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# An answer ends within this many seconds and bytes, or it is an error the controller retries:
# a server that drips its answer, or never ends it, holds neither the feed nor the memory.
MAX_ANSWER_SECONDS = 120.0
MAX_PAGE_BYTES = 256 * 1024 * 1024
# Retry-After is honoured up to an hour: "forever" would stop the feed for good
MAX_RETRY_AFTER_SECONDS = 3600.0
# how many of the cursors asked with are remembered to tell a feed leading back in a loop
CURSORS_KEPT = 10_000
# answers that mean "not now" rather than "no"
_TRANSIENT = frozenset({408, 429})


def customer_path(number: object, suffix: str = "") -> str:
    """/api/v1/customers/{number}{suffix}, for a well-formed number only (the value itself is
    never quoted in the error: it may be anything a login form was given)."""
    if not isinstance(number, str) or not grammar.is_customer_number(number):
        length = len(number) if isinstance(number, str) else 0
        raise InvalidCustomerNumber(
            f"not a tritonX customer number ({length} characters); nothing was sent"
        )
    return f"/api/v1/customers/{quote(number, safe='')}{suffix}"


@dataclass(frozen=True)
class ChangePage:
    changes: list[Any]
    next_cursor: str
    has_more: bool
    # the feed's newest seq, when tritonX says it (optional): progress and lag in events
    last_seq: int | None = None


@dataclass(frozen=True)
class CustomerAnswer:
    """tritonX's answer about one customer: live (with snapshot and version), merged (into),
    anonymised, or gone (unknown or deleted)."""

    status: str
    snapshot: dict[str, Any] | None = None
    version: int | None = None
    into: str | None = None


class ChangeSource(Protocol):
    """Where change records come from."""

    name: str

    def fetch_changes(self, after: str | None, limit: int) -> ChangePage: ...

    def close(self) -> None: ...


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds tritonX asked to wait (a number or an HTTP date), at most
    MAX_RETRY_AFTER_SECONDS; None when it asked nothing readable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


@dataclass(frozen=True)
class _Answer:
    status_code: int
    content: bytes


class TritonXClient:
    """HTTP client for the tritonX customer API (bearer token, JSON)."""

    name = "tritonx"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        max_page_bytes: int = MAX_PAGE_BYTES,
        max_answer_seconds: float = MAX_ANSWER_SECONDS,
    ) -> None:
        self.max_page_bytes = max_page_bytes
        self.max_answer_seconds = max_answer_seconds
        # the cursors asked with, in the order first asked (the latest CURSORS_KEPT): a page
        # whose next_cursor was first asked before the cursor of the page leads back
        self._asked: dict[str, int] = {}
        self._asks = 0
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        url = self._http.base_url
        # for messages: where, never who (no user info, no token)
        self.host = url.host + (f":{url.port}" if url.port else "")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TritonXClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> _Answer:
        # every message names tritonX's host (never the token) and the answer's status
        try:
            with self._http.stream(method, path, **kwargs) as response:
                status = response.status_code
                if status in _TRANSIENT or status >= 500:
                    raise TritonXUnavailable(
                        f"tritonX at {self.host} answered {status} to {method} {path}",
                        retry_after=_retry_after(response),
                    )
                if status in (401, 403):
                    raise TokenRefused(
                        f"tritonX at {self.host} refused the token: {status} to {method} {path}",
                        status=status,
                    )
                return _Answer(status, self._read(response, method, path))
        except httpx.TimeoutException as exc:
            raise TritonXUnavailable(
                f"tritonX at {self.host} did not answer {method} {path} in time"
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise TritonXRefused("the tritonX URL is not an http:// or https:// URL") from exc
        except httpx.HTTPError as exc:
            raise TritonXUnavailable(
                f"tritonX at {self.host} cannot be reached: {unreachable(exc)}"
            ) from exc

    def _read(self, response: httpx.Response, method: str, path: str) -> bytes:
        """The answer's body (decompressed), within max_page_bytes and max_answer_seconds."""
        deadline = time.monotonic() + self.max_answer_seconds
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self.max_page_bytes:
                raise TritonXProtocolError(
                    f"tritonX at {self.host} answered {method} {path} with more than "
                    f"{self.max_page_bytes} bytes"
                )
            if time.monotonic() > deadline:
                raise TritonXUnavailable(
                    f"tritonX at {self.host} did not finish its answer to {method} {path} in "
                    f"{self.max_answer_seconds:.0f} s"
                )
        return bytes(body)

    def fetch_changes(self, after: str | None, limit: int) -> ChangePage:
        params: dict[str, str | int] = {"limit": limit}
        if after:
            params["after"] = after
        path = "/api/v1/customers/changes"
        response = self._request("GET", path, params=params)
        status = response.status_code
        if 300 <= status < 500:
            raise TritonXRefused(
                f"tritonX at {self.host} refused the change feed: {status} to GET {path}",
                status=status,
            )
        if status != 200:
            raise TritonXProtocolError(f"tritonX at {self.host} answered {status} to GET {path}")
        try:
            body = feed_json.loads(response.content)
        except ValueError as exc:
            raise TritonXProtocolError(
                f"tritonX at {self.host} answered GET {path} with a body that is not JSON"
            ) from exc
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("changes"), list)
            or not isinstance(body.get("has_more"), bool)
            or not isinstance(body.get("next_cursor"), str | int)
        ):
            raise TritonXProtocolError(
                f"tritonX at {self.host} answered GET {path} with a page that lacks changes, "
                "next_cursor or has_more"
            )
        if not feed_json.storable(str(body["next_cursor"])):
            # the cursor is kept in the database with the page: it could never be
            raise TritonXProtocolError(
                f"tritonX at {self.host} answered a next_cursor holding \\u0000 or a lone "
                "surrogate, which PostgreSQL's text cannot keep"
            )
        if body["has_more"] and self._leads_back(after or "", str(body["next_cursor"])):
            # the feed would start again, or repeat pages, for ever
            raise TritonXProtocolError(
                f"tritonX at {self.host} answered more to come with a next_cursor that leads "
                "back (empty, the cursor asked with, or one asked with before it)"
            )
        last_seq = body.get("last_seq")
        return ChangePage(
            body["changes"],
            str(body["next_cursor"]),
            body["has_more"],
            last_seq if isinstance(last_seq, int) and not isinstance(last_seq, bool) else None,
        )

    def _leads_back(self, after: str, following: str) -> bool:
        """Whether `following`, the next cursor of the page asked with `after`, is the start, that
        cursor, or one first asked with before it (asking a page again, after a failure, is
        not leading back: its next cursor was asked with after it)."""
        if after not in self._asked:
            self._asks += 1
            self._asked[after] = self._asks
            if len(self._asked) > CURSORS_KEPT:
                del self._asked[next(iter(self._asked))]
        if following in ("", after):
            return True
        return self._asked.get(following, self._asks + 1) < self._asked[after]

    def rewind(self, cursor: str | None) -> None:
        """The feed goes on from `cursor` again in pages of another size (the controller
        lowered it): forget the cursors first asked after it, which the new pages reach again
        without leading back."""
        position = self._asked.get(cursor or "")
        if position is not None:
            self._asked = {c: n for c, n in self._asked.items() if n <= position}

    def fetch_customer(self, number: str) -> CustomerAnswer:
        """GET /api/v1/customers/{number}: 200, 404 or 410 as the contract says."""
        response = self._request("GET", customer_path(number))
        try:
            body = feed_json.loads(response.content) if response.content else {}
        except ValueError as exc:
            raise TritonXProtocolError(f"the answer about {number} is not JSON") from exc
        if response.status_code == 404:
            return CustomerAnswer("gone")
        if response.status_code == 410 and isinstance(body, dict):
            if isinstance(body.get("merged_into"), str):
                return CustomerAnswer("merged", into=body["merged_into"])
            if body.get("anonymized") is True:
                return CustomerAnswer("anonymised")
        if response.status_code == 200 and isinstance(body, dict):
            version = body.pop("version", None)
            if isinstance(version, int) and not isinstance(version, bool):
                return CustomerAnswer("live", snapshot=body, version=version)
        raise TritonXProtocolError(
            f"unexpected answer {response.status_code} about customer {number}"
        )

    def request_anonymisation(self, number: str, body: dict[str, Any]) -> None:
        """POST /api/v1/customers/{number}/anonymize; tritonX applies each idempotency key once."""
        response = self._request("POST", customer_path(number, "/anonymize"), json=body)
        if response.status_code in (200, 202, 204):
            return
        raise TritonXRefused(
            f"tritonX refused the anonymisation of {number}: {response.status_code}",
            status=response.status_code,
        )


def unreachable(exc: BaseException) -> str:
    """Why a request never got an answer, from the socket or TLS error under the HTTP
    library's: words and the TLS library's reason code (WRONG_VERSION_NUMBER,
    CERTIFICATE_VERIFY_FAILED), never a message; the HTTP library's class otherwise."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause.reason or type(cause).__name__})"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(cause, ConnectionResetError):
            return "the connection was reset"
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__
