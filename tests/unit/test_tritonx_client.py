"""The tritonX HTTP client against httpx.MockTransport: a refusal is not an outage, and a
customer number reaches tritonX's URL path only when it is one."""

from __future__ import annotations

import httpx
import pytest

from syncctl.errors import (
    InvalidCustomerNumber,
    TokenRefused,
    TritonXRefused,
    TritonXUnavailable,
)
from syncctl.tritonx import TritonXClient

TOKEN = "secret-bearer-token-3f9a"


def _client(answer: httpx.Response | None = None) -> tuple[TritonXClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer if answer is not None else httpx.Response(404, json={})

    transport = httpx.MockTransport(handle)
    return TritonXClient("https://tritonx.example:8443/", TOKEN, transport=transport), seen


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_a_refusal_naming_host_and_status_never_the_token(
    status: int,
) -> None:
    client, seen = _client(httpx.Response(status, json={"error": "no"}))
    with pytest.raises(TokenRefused) as raised:
        client.fetch_changes(None, 10)
    assert len(seen) == 1
    message = str(raised.value)
    assert "tritonx.example" in message and str(status) in message
    assert "token" in message and TOKEN not in message
    assert raised.value.status == status
    assert not isinstance(raised.value, TritonXUnavailable)


@pytest.mark.parametrize("status", [400, 404, 405, 410, 422])
def test_other_permanent_answers_of_the_change_feed_are_refusals(status: int) -> None:
    client, _ = _client(httpx.Response(status, json={}))
    with pytest.raises(TritonXRefused) as raised:
        client.fetch_changes("17", 10)
    assert not isinstance(raised.value, TokenRefused)
    assert raised.value.status == status
    assert "tritonx.example" in str(raised.value) and str(status) in str(raised.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_outages_stay_outages(status: int) -> None:
    client, _ = _client(httpx.Response(status, headers={"Retry-After": "3"}))
    with pytest.raises(TritonXUnavailable) as raised:
        client.fetch_changes(None, 10)
    assert raised.value.retry_after == 3.0


@pytest.mark.parametrize("url", ["tritonx.example/api", "ftp://tritonx.example/"])
def test_a_url_without_http_scheme_is_refused_not_retried(url: str) -> None:
    with TritonXClient(url, TOKEN) as client, pytest.raises(TritonXRefused) as raised:
        client.fetch_changes(None, 10)
    assert TOKEN not in str(raised.value)


def test_an_http_library_error_is_an_outage_not_a_crash() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.DecodingError("broken gzip", request=request)

    with (
        TritonXClient("https://tritonx.example", TOKEN, transport=httpx.MockTransport(handle)) as c,
        pytest.raises(TritonXUnavailable),
    ):
        c.fetch_changes(None, 10)


@pytest.mark.parametrize(
    "number",
    ["../../admin/x", "TX1\x01", "TX00000001\n", "TX 1", "TX1/anonymize", "", "T" * 33, "TX%2F"],
)
def test_a_number_that_is_not_a_customer_number_never_reaches_tritonx(number: str) -> None:
    client, seen = _client()
    with pytest.raises(InvalidCustomerNumber) as raised:
        client.fetch_customer(number)
    with pytest.raises(InvalidCustomerNumber):
        client.request_anonymisation(number, {"reason_code": "AVG"})
    assert seen == [], "a request went out with the bearer token"
    assert number not in str(raised.value) or number == ""


def test_a_customer_number_is_the_last_path_segment() -> None:
    client, seen = _client(httpx.Response(200, json={"version": 3, "city": "Zwolle"}))
    answer = client.fetch_customer("TX00000042")
    assert answer.status == "live" and answer.version == 3
    assert seen[0].url.raw_path == b"/api/v1/customers/TX00000042"
    assert seen[0].url.host == "tritonx.example"


def test_a_refused_anonymisation_request_is_a_refusal_but_a_refused_token_is_not_final() -> None:
    client, _ = _client(httpx.Response(409, json={}))
    with pytest.raises(TritonXRefused) as refused:
        client.request_anonymisation("TX00000042", {"reason_code": "AVG"})
    assert not isinstance(refused.value, TokenRefused)
    client, _ = _client(httpx.Response(401, json={}))
    with pytest.raises(TokenRefused):
        client.request_anonymisation("TX00000042", {"reason_code": "AVG"})
