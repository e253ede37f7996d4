"""Operating `syncctl run`: Prometheus metrics and health scraped over HTTP, and structured
JSON logs that carry no personal data of the customers the daemon handled."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from tests.acceptance.conftest import SYNCCTL, TOKEN, Simulator


def _personal_values(state: dict[str, Any]) -> set[str]:
    values: set[str] = set()
    for entry in state.values():
        snap = entry.get("snapshot") or {}
        for field in ("email", "phone", "mobile", "street", "postcode", "loyalty_card"):
            if snap.get(field):
                values.add(str(snap[field]))
        if snap.get("last_name") and snap.get("first_name"):
            values.add(f"{snap['first_name']} {snap['last_name']}")
    return values


@pytest.mark.slow
def test_metrics_health_and_json_logs_without_personal_data(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory(
        "--customers",
        "400",
        "--seed",
        "12",
        "--chaos-malformed",
        "0.5",
        "--chaos-server-error",
        "0.2",
        "--chaos-seed",
        "2",
    )
    before = simulator.admin("GET", "/admin/state").json()
    daemon = subprocess.Popen(
        [
            *SYNCCTL,
            "--log-format",
            "json",
            "-vv",
            "--dsn",
            dsn,
            "--tritonx-url",
            simulator.url,
            "--tritonx-token",
            TOKEN,
            "run",
            "--poll-interval",
            "0.3",
            "--page-size",
            "100",
            "--metrics-port",
            "0",
            "--keep-payloads-days",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(daemon.stderr.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            for line in list(lines):
                found = re.search(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", line)
                if found:
                    url = found.group(1)
            time.sleep(0.1)
        assert url, f"no metrics endpoint announced: {lines[:5]}"
        healthy = False
        deadline = time.monotonic() + 60
        while not healthy and time.monotonic() < deadline:
            healthy = httpx.get(url + "/healthz").status_code == 200
            time.sleep(0.2)
        assert healthy
        # after the first import has caught up: a login racing the import of the same number
        # is sync.login's concern, not this test's
        simulator.admin("POST", "/admin/activity", json={"n": 60, "seed": 3})
        conn.execute("SELECT * FROM sync.login('TX00000007', 'someone@example.nl')")
        conn.commit()
        refreshed = None
        deadline = time.monotonic() + 30
        while refreshed is None and time.monotonic() < deadline:
            text = httpx.get(url + "/metrics").text
            refreshed = re.search(r"^syncctl_refresh_latency_seconds_count [1-9]", text, re.M)
            time.sleep(0.2)
        assert refreshed, "the login's refresh was not measured"
        time.sleep(1.0)
        text = httpx.get(url + "/metrics").text
        applied = re.search(r'^syncctl_events_total\{outcome="applied"\} (\d+)\.0$', text, re.M)
        assert applied and int(applied.group(1)) >= 400
        dead = conn.execute("SELECT count(*) FROM sync.dead_letter").fetchone()
        conn.commit()
        assert dead is not None
        assert re.search(rf"^syncctl_dead_letters {dead[0]}\.0$", text, re.M)
        assert "syncctl_refresh_latency_seconds_count" in text
        assert "syncctl_last_event_age_seconds" in text
        # payloads kept for 0 days: an applied event's record is never written to the inbox
        # (an envelope of a merge, anonymisation or delete is dropped a cycle later); dead
        # letters keep theirs
        assert re.search(r"^syncctl_payloads_dropped_total \d+\.0$", text, re.M)
        held = conn.execute(
            "SELECT count(*) FILTER (WHERE d.inbox_id IS NULL AND i.payload IS NULL),"
            " count(*) FILTER (WHERE d.inbox_id IS NOT NULL AND i.payload IS NULL)"
            " FROM sync.inbox AS i LEFT JOIN sync.dead_letter AS d ON d.inbox_id = i.id"
        ).fetchone()
        conn.commit()
        assert held is not None and held[0] >= 400 and held[1] == 0
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        reader.join(timeout=5)
        for pipe in (daemon.stdout, daemon.stderr):
            if pipe is not None:
                pipe.close()
    assert daemon.returncode == 0
    parsed = [json.loads(line) for line in lines if line.strip()]
    assert parsed and {"time", "level", "logger", "message"} <= set(parsed[0])
    assert any(entry["level"] == "warning" for entry in parsed), "no error path was logged"
    log_text = "\n".join(lines)
    truth = simulator.admin("GET", "/admin/state").json()
    seeded = _personal_values(before) | _personal_values(truth)
    assert len(seeded) > 1000, "too few personal values to search for"
    # a Belgian postcode ("8035") is four digits, as are ports and milliseconds: too short to tell
    leaked = [v for v in seeded if len(v) >= 6 and v in log_text]
    assert leaked == []
