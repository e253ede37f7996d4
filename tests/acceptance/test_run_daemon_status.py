"""`syncctl status` while `syncctl run` leads and after it stopped: the leader's pid, the
lag in events against the feed's newest seq, and the queues."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg

from syncctl.tritonx import TritonXClient
from tests.acceptance.conftest import SYNCCTL, TOKEN, Simulator, syncctl


def _until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _status(dsn: str, url: str) -> str:
    result = syncctl("--tritonx-url", url, "--tritonx-token", TOKEN, "status", dsn=dsn)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _count(conn: psycopg.Connection[Any], sql: str) -> int:
    row = conn.execute(sql).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


def test_status_names_the_leader_and_the_lag_in_events(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory("--customers", "80", "--seed", "12")
    command = [*SYNCCTL, "--dsn", dsn, "--tritonx-url", simulator.url, "--tritonx-token", TOKEN]
    daemon = subprocess.Popen(
        [*command, "run", "--poll-interval", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _until(lambda: _count(conn, "SELECT count(*) FROM shop.customer") == 80, 60)
        leader_pid = _count(
            conn,
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 7343"
            " AND objid = 1 AND granted",
        )
        running = _status(dsn, simulator.url)
        assert f"leader: pid {leader_pid} " in running, running
        assert ", 0 events behind the feed," in running, running
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err

    simulator.admin("POST", "/admin/activity", json={"n": 20, "seed": 3})
    conn.execute("SELECT sync.request_refresh('TX00000001')")
    conn.execute(
        "INSERT INTO sync.outbox (customer_number, event_type, payload, state)"
        " VALUES ('TX00000002', 'customer.anonymize_requested', '{}', 'dead')"
    )
    conn.commit()
    with TritonXClient(simulator.url, TOKEN) as client:
        feed_last_seq = client.fetch_changes(None, 1).last_seq
    ours = _count(conn, "SELECT last_seq FROM sync.cursor WHERE source = 'tritonx'")
    assert feed_last_seq is not None and feed_last_seq > ours
    stopped = _status(dsn, simulator.url)
    assert "leader: none" in stopped, stopped
    lag = re.search(r"lag \d+ s, (\d+) events behind the feed", stopped)
    assert lag is not None and int(lag.group(1)) == feed_last_seq - ours, stopped
    assert "outbox dead: 1, refresh queue: 1," in stopped, stopped
    # the default retention keeps a week of payloads: all of them are still held
    held = _count(conn, "SELECT count(*) FROM sync.inbox")
    assert held >= 80 and f"inbox payloads held: {held}, oldest received at " in stopped, stopped


def test_run_does_the_daily_gdpr_job_once_at_its_time(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory("--customers", "30", "--seed", "5")
    command = [*SYNCCTL, "--dsn", dsn, "--tritonx-url", simulator.url, "--tritonx-token", TOKEN]
    # 00:00 local time has always passed today: the job is due at the first cycle
    daemon = subprocess.Popen(
        [*command, "-v", "run", "--poll-interval", "0.2", "--gdpr-daily-at", "00:00"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    finished = "SELECT count(*) FROM gdpr.job_run WHERE finished_at IS NOT NULL"
    try:
        assert _until(lambda: _count(conn, finished) == 1, 60)
        time.sleep(1.0)  # more cycles: the slot is not run again
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert _count(conn, "SELECT count(*) FROM gdpr.job_run") == 1
    assert err.count("daily GDPR job:") == 1, err
    report = syncctl("report", "gdpr-daily", "--format", "json", dsn=dsn)
    assert report.returncode == 0, report.stderr
    assert '"erasures_failed": 0' in report.stdout, report.stdout
