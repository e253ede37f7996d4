"""A redelivered older event (at least once: tritonX may send an event again after the cursor
moved past it) is a duplicate; the cursor's last seq and last event time stay where the feed
had got to, so `syncctl status` does not count the feed's newest events as behind, nor the lag
jump back (docs/login-and-refresh.md, "Health")."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg

from syncctl import controller
from syncctl.tritonx import TritonXClient
from tests.feed import upserted


def test_a_redelivered_older_event_keeps_the_cursors_last_seq(
    conn: psycopg.Connection[Any],
) -> None:
    records = [
        dict(upserted(f"TX{71000000 + i:08d}", 1), seq=i, occurred_at=f"2026-11-2{i}T10:00:00Z")
        for i in (1, 2, 3)
    ]

    def feed(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("after"):
            # caught up, but the first event comes again
            body = {"changes": records[:1], "next_cursor": "3", "has_more": False}
        else:
            body = {"changes": records, "next_cursor": "3", "has_more": False}
        return httpx.Response(200, content=json.dumps(body).encode())

    transport = httpx.MockTransport(feed)
    with TritonXClient("https://tritonx.example/", "token", transport=transport) as client:
        first = controller.pull(conn, client)
        again = controller.pull(conn, client)
    cursor = conn.execute(
        "SELECT position, last_seq, last_occurred_at::text FROM sync.cursor"
        " WHERE source = 'tritonx'"
    ).fetchone()
    conn.commit()
    assert first.last_seq == 3
    assert again.states["duplicate"] == 1
    assert cursor == ("3", 3, "2026-11-23 10:00:00+00")
