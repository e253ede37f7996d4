"""The controller as a user runs it: `syncctl pull` and `syncctl run` in subprocesses against
`syncctl simulator serve` and a real database; the database must end equal to tritonX."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.acceptance.conftest import SYNCCTL, TOKEN, Simulator, syncctl
from tests.truth import assert_database_equals_tritonx


def _audit_effects(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT event_id, count(*) FROM sync.audit WHERE event_id IS NOT NULL "
        "GROUP BY event_id HAVING count(*) > 1"
    ).fetchall()


def test_pull_until_caught_up_then_again_changes_nothing(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory("--customers", "2000", "--seed", "5")
    first = syncctl("--tritonx-url", simulator.url, "--tritonx-token", TOKEN, "pull", dsn=dsn)
    assert first.returncode == 0, first.stderr
    assert "2000 events" in first.stdout and "applied 2000" in first.stdout
    second = syncctl("--tritonx-url", simulator.url, "--tritonx-token", TOKEN, "pull", dsn=dsn)
    assert second.returncode == 0, second.stderr
    assert "0 events" in second.stdout
    assert_database_equals_tritonx(conn, simulator.admin("GET", "/admin/state").json())


def test_chaos_feed_ends_in_the_same_state_with_each_effect_once(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory(
        "--customers",
        "1500",
        "--seed",
        "9",
        "--chaos-duplicate",
        "0.2",
        "--chaos-stale",
        "0.1",
        "--chaos-rate-limit",
        "0.1",
        "--chaos-server-error",
        "0.1",
        "--chaos-malformed",
        "0.3",
        "--chaos-seed",
        "3",
    )
    simulator.admin("POST", "/admin/activity", json={"n": 300, "seed": 4})
    result = syncctl(
        "--tritonx-url",
        simulator.url,
        "--tritonx-token",
        TOKEN,
        "pull",
        "--page-size",
        "200",
        dsn=dsn,
    )
    assert result.returncode == 0, result.stderr
    assert_database_equals_tritonx(conn, simulator.admin("GET", "/admin/state").json())
    assert _audit_effects(conn) == []
    dead = conn.execute("SELECT count(*) FROM sync.dead_letter").fetchone()
    assert dead is not None and dead[0] > 0, "chaos produced no malformed record to dead-letter"


@pytest.mark.slow
# a retention of 0 stages every page through the session's page with the records read from it
@pytest.mark.parametrize("retention", ["7", "0"], ids=["kept", "retention 0"])
def test_kill_9_in_the_middle_of_a_pull_loses_nothing_and_applies_nothing_twice(
    simulator_factory: Callable[..., Simulator],
    dsn: str,
    conn: psycopg.Connection[Any],
    retention: str,
) -> None:
    simulator = simulator_factory("--customers", "20000", "--seed", "11")
    daemon = subprocess.Popen(
        [
            *SYNCCTL,
            "--dsn",
            dsn,
            "--tritonx-url",
            simulator.url,
            "--tritonx-token",
            TOKEN,
            "run",
            "--page-size",
            "100",
            "--poll-interval",
            "0.2",
            "--keep-payloads-days",
            retention,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    staged = 0
    while time.monotonic() < deadline:
        row = conn.execute("SELECT count(*) FROM sync.inbox").fetchone()
        conn.commit()
        staged = row[0] if row else 0
        if staged >= 3000:
            break
        time.sleep(0.05)
    daemon.kill()  # SIGKILL: no clean-up of any kind
    daemon.communicate(timeout=30)
    assert 0 < staged < 20000, f"the kill did not land mid-pull (staged {staged})"

    restarted = subprocess.Popen(
        [
            *SYNCCTL,
            "--dsn",
            dsn,
            "--tritonx-url",
            simulator.url,
            "--tritonx-token",
            TOKEN,
            "run",
            "--page-size",
            "1000",
            "--poll-interval",
            "0.2",
            "--keep-payloads-days",
            retention,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        row = conn.execute("SELECT count(*) FROM sync.audit").fetchone()
        conn.commit()
        if row and row[0] >= 20000:
            break
        time.sleep(0.2)
    restarted.send_signal(signal.SIGTERM)
    out, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err
    assert "stopped" in out
    assert_database_equals_tritonx(conn, simulator.admin("GET", "/admin/state").json())
    assert _audit_effects(conn) == []
    inbox = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM sync.inbox").fetchone()
    assert inbox == (20000, 20000), "a page was staged twice or lost"


def test_reports_print_as_table_csv_and_json(
    simulator_factory: Callable[..., Simulator], dsn: str
) -> None:
    simulator = simulator_factory("--customers", "200", "--seed", "13")
    simulator.admin("POST", "/admin/activity", json={"n": 80, "seed": 1})
    pulled = syncctl("--tritonx-url", simulator.url, "--tritonx-token", TOKEN, "pull", dsn=dsn)
    assert pulled.returncode == 0, pulled.stderr
    table = syncctl("report", "actions", dsn=dsn)
    assert table.returncode == 0 and "customer.merged" in table.stdout, table.stderr
    as_csv = syncctl("report", "merges", "--format", "csv", dsn=dsn)
    assert as_csv.stdout.splitlines()[0].startswith("at,old_number,survivor_number")
    as_json = syncctl("report", "anonymisations", "--format", "json", dsn=dsn)
    rows = json.loads(as_json.stdout)
    assert rows and {"reason_code", "customer_number"} <= set(rows[0])
    assert "@" not in table.stdout + as_csv.stdout + as_json.stdout
