"""A tritonX that answers a page larger than syncctl asked for: the page is staged and applied
whole, in one transaction, and the cursor moves past it (docs/tritonx-contract.md)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg

from syncctl import controller
from syncctl.tritonx import TritonXClient
from tests.feed import upserted


def test_a_page_larger_than_asked_for_is_applied_whole(conn: psycopg.Connection[Any]) -> None:
    asked: list[int] = []
    records = [upserted(f"TX{70000000 + i:08d}", 1) for i in range(30)]

    def feed(request: httpx.Request) -> httpx.Response:
        asked.append(int(request.url.params["limit"]))
        if request.url.params.get("after"):
            return httpx.Response(200, json={"changes": [], "next_cursor": "p1", "has_more": False})
        body = {"changes": records, "next_cursor": "p1", "has_more": False}
        return httpx.Response(200, content=json.dumps(body).encode())

    transport = httpx.MockTransport(feed)
    with TritonXClient("https://tritonx.example/", "token", transport=transport) as client:
        report = controller.pull(conn, client, page_size=10)
    assert asked[0] == 10
    assert report.events == 30 and report.pages == 1
    applied = conn.execute(
        "SELECT count(*) FROM shop.customer WHERE customer_number LIKE 'TX7%'"
    ).fetchone()
    cursor = conn.execute("SELECT position FROM sync.cursor WHERE source = 'tritonx'").fetchone()
    conn.commit()
    assert applied == (30,) and cursor == ("p1",)
