"""/healthz of two `syncctl run` daemons on one database: the leader answers 200 `ok` once it
caught up; the standby, connected and waiting for the leader's lock, answers 200 `standby`
(a liveness probe must not restart it in a loop), and 503 `no database` while it cannot reach
the database; once it can again, 200 `standby`."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.acceptance.conftest import SYNCCTL, TOKEN, Simulator
from tests.acceptance.test_daemon import _leader_pid, _wait


@dataclass
class Daemon:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def url(self) -> str | None:
        for line in list(self.lines):
            found = re.search(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", line)
            if found:
                return found.group(1)
        return None

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


@contextmanager
def _daemon(dsn: str, simulator: Simulator) -> Iterator[Daemon]:
    process = subprocess.Popen(
        [
            *SYNCCTL,
            "--dsn",
            dsn,
            "--tritonx-url",
            simulator.url,
            "--tritonx-token",
            TOKEN,
            "-v",
            "run",
            "--poll-interval",
            "0.3",
            "--metrics-port",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    daemon = Daemon(process)
    assert process.stderr is not None
    reader = threading.Thread(
        target=lambda: daemon.lines.extend(iter(process.stderr.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    )
    reader.start()
    try:
        assert _wait(lambda: daemon.url() is not None, 30), daemon.lines[:5]
        yield daemon
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            reader.join(timeout=5)
            process.stderr.close()


def _health(daemon: Daemon) -> tuple[int, str]:
    url = daemon.url()
    assert url is not None
    answer = httpx.get(url + "/healthz", timeout=10)
    return answer.status_code, answer.text.strip()


def _allow_connections(dsn: str, allowed: bool) -> None:
    """Whether the test's database takes new sessions (altered from the maintenance database:
    a session cannot alter its own)."""
    database = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(make_conninfo(dsn, dbname="postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(str(database)), sql.Literal(allowed)
            )
        )


def test_a_standby_is_healthy_while_it_reaches_the_database(
    simulator_factory: Callable[..., Simulator], dsn: str
) -> None:
    simulator = simulator_factory("--customers", "50", "--seed", "8")
    # the test's own session, opened before connections are refused
    conn = psycopg.connect(dsn, autocommit=False)
    try:
        with _daemon(dsn, simulator) as leader:
            assert _wait(lambda: _leader_pid(conn) is not None, 30), leader.lines[-5:]
            assert _wait(lambda: _health(leader) == (200, "ok"), 60), leader.lines[-5:]
            with _daemon(dsn, simulator) as standby:
                assert _wait(lambda: standby.said("standing by"), 30), standby.lines[-5:]
                assert _wait(lambda: _health(standby) == (200, "standby"), 30)
                # the database refuses new sessions, and the standby's are ended: it connects
                # again and again, in vain (the leader keeps the sessions it has)
                _allow_connections(dsn, False)
                try:
                    conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND application_name = 'syncctl'"
                    )
                    conn.commit()
                    assert _wait(lambda: _health(standby) == (503, "no database"), 30), (
                        _health(standby),
                        standby.lines[-5:],
                    )
                    assert _health(leader) == (200, "ok")
                finally:
                    _allow_connections(dsn, True)
                assert _wait(lambda: _health(standby) == (200, "standby"), 60), standby.lines[-5:]
                assert standby.said("connected to the database again")
    finally:
        conn.close()
