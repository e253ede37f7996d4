"""The tritonX side: a ChangeSource yields pages of change records; TritonXClient is the HTTP
JSON implementation of the contract in docs/tritonx-contract.md. Another source (a file drop)
only has to implement ChangeSource. Errors become TritonXUnavailable (worth retrying, with the
Retry-After tritonX asked for) or TritonXError / TritonXProtocolError."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from syncctl.errors import TritonXError, TritonXProtocolError, TritonXUnavailable

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


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


class TritonXRefused(TritonXError):
    """tritonX refused the request for good (a 4xx other than 429); retrying will not help."""


class ChangeSource(Protocol):
    """Where change records come from."""

    name: str

    def fetch_changes(self, after: str | None, limit: int) -> ChangePage: ...

    def close(self) -> None: ...


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


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
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TritonXClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # every message names tritonX's host (never the token) and the answer's status
        host = self._http.base_url.netloc.decode("ascii", "replace")
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise TritonXUnavailable(
                f"tritonX at {host} did not answer {method} {path} in time"
            ) from exc
        except httpx.TransportError as exc:
            raise TritonXUnavailable(
                f"tritonX at {host} cannot be reached: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code == 429:
            raise TritonXUnavailable(
                f"tritonX at {host} rate-limited the request (429)",
                retry_after=_retry_after(response),
            )
        if response.status_code >= 500:
            raise TritonXUnavailable(
                f"tritonX at {host} answered {response.status_code} to {method} {path}",
                retry_after=_retry_after(response),
            )
        if response.status_code in (401, 403):
            raise TritonXError(f"tritonX at {host} refused the token ({response.status_code})")
        return response

    def fetch_changes(self, after: str | None, limit: int) -> ChangePage:
        params: dict[str, str | int] = {"limit": limit}
        if after:
            params["after"] = after
        response = self._request("GET", "/api/v1/customers/changes", params=params)
        if response.status_code != 200:
            raise TritonXError(
                f"tritonX at {self._http.base_url.netloc.decode('ascii', 'replace')} answered "
                f"{response.status_code} to the change feed"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise TritonXProtocolError(
                "the change feed answered with a body that is not JSON"
            ) from exc
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("changes"), list)
            or not isinstance(body.get("has_more"), bool)
            or not isinstance(body.get("next_cursor"), str | int)
        ):
            raise TritonXProtocolError(
                "the change feed page lacks changes, next_cursor or has_more"
            )
        last_seq = body.get("last_seq")
        return ChangePage(
            body["changes"],
            str(body["next_cursor"]),
            body["has_more"],
            last_seq if isinstance(last_seq, int) and not isinstance(last_seq, bool) else None,
        )

    def fetch_customer(self, number: str) -> CustomerAnswer:
        """GET /api/v1/customers/{number}: 200, 404 or 410 as the contract says."""
        response = self._request("GET", f"/api/v1/customers/{number}")
        try:
            body = response.json() if response.content else {}
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
        response = self._request("POST", f"/api/v1/customers/{number}/anonymize", json=body)
        if response.status_code in (200, 202, 204):
            return
        raise TritonXRefused(
            f"tritonX refused the anonymisation of {number}: {response.status_code}"
        )
