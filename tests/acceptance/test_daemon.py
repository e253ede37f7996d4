"""`syncctl run` as operators run it: two daemons on one database (one leads, the other
stands by and takes over after a kill -9), login-time refresh through NOTIFY, bootstrap and
link repair through the CLI."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg

from tests.acceptance.conftest import SYNCCTL, TOKEN, Simulator, syncctl
from tests.truth import assert_database_equals_tritonx


def _daemon(dsn: str, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *SYNCCTL,
            "--dsn",
            dsn,
            "--tritonx-url",
            url,
            "--tritonx-token",
            TOKEN,
            "-v",
            "run",
            "--poll-interval",
            "0.3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _leader_pid(conn: psycopg.Connection[Any]) -> int | None:
    row = conn.execute(
        "SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.classid = 7343 AND l.objid = 1 AND l.granted"
    ).fetchone()
    conn.commit()
    return row[0] if row else None


def _one(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    conn.commit()
    return None if row is None else row[0]


def _wait(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_one_leader_and_a_standby_that_takes_over_after_kill_9(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory("--customers", "500", "--seed", "4")
    first = _daemon(dsn, simulator.url)
    assert _wait(lambda: _leader_pid(conn) is not None, 30), "no daemon became the leader"
    second = _daemon(dsn, simulator.url)
    assert second.stderr is not None
    for line in second.stderr:  # it tried to lead while the first leads
        if "standing by" in line:
            break
    else:
        raise AssertionError("the second daemon ended without standing by")
    leader_before = _leader_pid(conn)
    holders = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7343 AND granted"
    ).fetchone()
    assert holders == (1,), "two controllers hold leadership"
    first.kill()
    first.communicate(timeout=30)
    assert _wait(lambda: _leader_pid(conn) not in (None, leader_before), 15), (
        "the standby did not take over within 15 s"
    )
    simulator.admin("POST", "/admin/activity", json={"n": 50, "seed": 2})
    truth = simulator.admin("GET", "/admin/state").json()

    def caught_up() -> bool:
        try:
            assert_database_equals_tritonx(conn, truth)
            return True
        except AssertionError:
            return False

    assert _wait(caught_up, 60), "the new leader did not follow tritonX"
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=30)
    assert second.returncode == 0, err


def test_a_login_is_refreshed_through_notify(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory("--customers", "100", "--seed", "6")
    daemon = _daemon(dsn, simulator.url)
    try:
        assert _wait(
            lambda: _one(conn, "SELECT count(*) FROM shop.customer") == 100,
            60,
        )
        simulator.admin("POST", "/admin/customers/TX00000042", json={"city": "Maastricht"})
        conn.execute("SELECT * FROM sync.login('TX00000042', 'x@example.nl')")
        conn.commit()

        def refreshed() -> bool:
            row = conn.execute(
                "SELECT city FROM shop.customer WHERE customer_number = 'TX00000042'"
            ).fetchone()
            conn.commit()
            return row == ("Maastricht",)

        assert _wait(refreshed, 10)
        audit = conn.execute(
            "SELECT count(*) FROM sync.audit WHERE event_id LIKE 'refresh:%'"
        ).fetchone()
        assert audit is not None and audit[0] >= 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)


def test_bootstrap_adopts_existing_local_customers_and_resumes(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory("--customers", "300", "--seed", "8")
    state = simulator.admin("GET", "/admin/state").json()
    emails = [state[f"TX{i:08d}"]["snapshot"]["email"] for i in (5, 6, 7)]
    for email in emails:
        conn.execute("INSERT INTO shop.customer (email) VALUES (%s)", [email.upper()])
    conn.execute("INSERT INTO shop.customer (email) VALUES ('only-local@x.nl')")
    local = conn.execute(
        "SELECT id FROM shop.customer WHERE email = %s", [emails[0].upper()]
    ).fetchone()
    assert local is not None
    conn.execute(
        "INSERT INTO shop.orders (customer_id, order_number) VALUES (%s, 'legacy-1')", [local[0]]
    )
    conn.commit()
    result = syncctl(
        "--tritonx-url",
        simulator.url,
        "--tritonx-token",
        TOKEN,
        "bootstrap",
        "--page-size",
        "100",
        dsn=dsn,
    )
    assert result.returncode == 0, result.stderr
    assert "local customers adopted:        3" in result.stdout
    assert "local customers left unlinked:  1" in result.stdout
    assert "%" in result.stderr and "ETA" in result.stderr
    owner = conn.execute(
        "SELECT c.customer_number FROM shop.orders o JOIN shop.customer c"
        " ON c.id = o.customer_id WHERE o.order_number = 'legacy-1'"
    ).fetchone()
    assert owner == ("TX00000005",)
    again = syncctl("--tritonx-url", simulator.url, "--tritonx-token", TOKEN, "bootstrap", dsn=dsn)
    assert again.returncode == 0, again.stderr
    assert "events imported:                0" in again.stdout
    assert "local customers adopted:        0" in again.stdout
    check = syncctl("links", "check", dsn=dsn)
    assert check.returncode == 1 and "local customer without a tritonX number" in check.stdout


def test_links_check_probes_tritonx_for_unknown_numbers(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory("--customers", "20", "--seed", "2")
    pulled = syncctl("--tritonx-url", simulator.url, "--tritonx-token", TOKEN, "pull", dsn=dsn)
    assert pulled.returncode == 0, pulled.stderr
    conn.execute("INSERT INTO shop.customer (customer_number) VALUES ('TX77777777')")
    conn.commit()
    check = syncctl(
        "--tritonx-url",
        simulator.url,
        "--tritonx-token",
        TOKEN,
        "links",
        "check",
        "--probe",
        "100",
        dsn=dsn,
    )
    assert check.returncode == 1, check.stderr
    assert "1  linked numbers unknown to tritonX (of 21 asked)" in check.stdout
