"""SIGTERM while a DBA holds a lock on the customer table: the daemon's page waits for the lock.
`syncctl run` still stops (systemd's stop timeout is a minute): the statement still waiting
after the grace period is cancelled, its transaction (the page and the cursor) rolled back,
and the daemon exits 0. Nothing is half-applied; the next daemon applies the page, once."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from typing import Any

import psycopg

from tests.acceptance.conftest import SYNCCTL, TOKEN, Simulator, syncctl
from tests.acceptance.test_run_daemon_status import _until


def _value(conn: psycopg.Connection[Any], sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    conn.commit()
    return None if row is None else row[0]


CITY = "SELECT city FROM shop.customer WHERE customer_number = 'TX00000004'"
WAITING = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND application_name LIKE 'syncctl%%' AND wait_event_type = 'Lock'"
)


def _sigterm_while_locked(
    dsn: str, conn: psycopg.Connection[Any], command: list[str], then: Callable[[], object]
) -> tuple[int, str]:
    """Run `command` while a DBA holds the customer table, do `then` (give it a page), send
    SIGTERM once it waits for the lock; the lock stays held until it has gone."""
    with psycopg.connect(dsn) as dba:
        dba.execute("LOCK TABLE shop.customer IN ACCESS EXCLUSIVE MODE")
        process = subprocess.Popen(
            [*SYNCCTL, "--dsn", dsn, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            then()
            assert _until(lambda: _value(conn, WAITING) >= 1, 60), "it never waited"
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
            dba.rollback()
    return process.returncode, err


def test_sigterm_stops_the_daemon_while_a_dba_holds_the_customer_table(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory("--customers", "20", "--seed", "5")
    tx = ["--tritonx-url", simulator.url, "--tritonx-token", TOKEN]
    pulled = syncctl(*tx, "pull", dsn=dsn)
    assert pulled.returncode == 0, pulled.stderr
    cursor = _value(conn, "SELECT last_seq FROM sync.cursor")
    code, err = _sigterm_while_locked(
        dsn,
        conn,
        [*tx, "run", "--poll-interval", "0.3"],
        lambda: simulator.admin("POST", "/admin/customers/TX00000004", json={"city": "Elburg"}),
    )
    assert code == 0, err
    assert "Traceback" not in err
    assert _value(conn, "SELECT last_seq FROM sync.cursor") == cursor, "the cursor moved"
    assert _value(conn, CITY) != "Elburg", "the page was applied under the lock"
    again = syncctl(*tx, "pull", dsn=dsn)
    assert again.returncode == 0, again.stderr
    assert _value(conn, CITY) == "Elburg"
    assert _value(conn, "SELECT count(event_id) - count(DISTINCT event_id) FROM sync.audit") == 0


def test_sigterm_stops_a_pull_while_a_dba_holds_the_customer_table(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory("--customers", "20", "--seed", "6")
    tx = ["--tritonx-url", simulator.url, "--tritonx-token", TOKEN]
    code, err = _sigterm_while_locked(dsn, conn, [*tx, "pull"], lambda: None)
    assert code == 143, err
    assert "run `syncctl pull` again to continue" in err and "Traceback" not in err
    assert _value(conn, "SELECT count(*) FROM shop.customer") == 0, "half a page was applied"
    again = syncctl(*tx, "pull", dsn=dsn)
    assert again.returncode == 0, again.stderr
    assert _value(conn, "SELECT count(*) FROM shop.customer") == 20
