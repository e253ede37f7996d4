"""`syncctl status` tells the truth while the leader's page waits for a lock a DBA holds on
the customer table: the leader line says for how long it waits and which session holds the
lock, where the feed's state alone would still say `caught up`."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import psycopg

from tests.acceptance.conftest import SYNCCTL, TOKEN, Simulator, syncctl
from tests.acceptance.test_operator_stop_under_lock import WAITING, _value
from tests.acceptance.test_run_daemon_status import _until


def test_status_says_the_leader_waits_for_a_lock_and_who_holds_it(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory("--customers", "20", "--seed", "7")
    tx = ["--tritonx-url", simulator.url, "--tritonx-token", TOKEN]
    daemon = subprocess.Popen(
        [*SYNCCTL, "--dsn", dsn, *tx, "run", "--poll-interval", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _until(lambda: _value(conn, "SELECT count(*) FROM shop.customer") == 20, 60)
        with psycopg.connect(dsn) as dba:
            dba.execute("LOCK TABLE shop.customer IN ACCESS EXCLUSIVE MODE")
            holder = dba.info.backend_pid
            simulator.admin("POST", "/admin/customers/TX00000004", json={"city": "Elburg"})
            assert _until(lambda: _value(conn, WAITING) >= 1, 60), "the daemon never waited"
            shown = syncctl(*tx, "status", dsn=dsn, timeout=30)
            dba.rollback()
        assert shown.returncode == 0, shown.stderr
        assert "linked customers: unknown (the customer table is locked)" in shown.stdout
        leader = next(line for line in shown.stdout.splitlines() if line.startswith("leader:"))
        assert re.search(rf"waiting \d+ s for a lock held by pid {holder}\b", leader), leader
        assert _until(
            lambda: (
                _value(conn, "SELECT city FROM shop.customer WHERE customer_number = 'TX00000004'")
                == "Elburg"
            ),
            60,
        )
        after = syncctl(*tx, "status", dsn=dsn)
        assert "waiting" not in after.stdout, after.stdout
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
