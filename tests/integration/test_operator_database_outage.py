"""An operator's bad day with the database: the server restarts (every session of the daemon
is terminated) while the daemon runs. The daemon says in its log that the connection was lost
and, once it is back, that it connected again; it takes the lead again, keeps its cursor and
follows the feed on, applying each event once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from syncctl import controller
from syncctl.simulator.server import SimulatorServer
from syncctl.tritonx import TritonXClient
from tests.integration.test_daemon_serving import running, wait


@pytest.fixture
def tritonx() -> Iterator[tuple[SimulatorServer, TritonXClient]]:
    with (
        SimulatorServer(customers=40, seed=11) as server,
        TritonXClient(server.url, server.token, timeout=1.0) as client,
    ):
        yield server, client


def _one(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> Any:
    row = conn.execute(sql, params).fetchone()
    conn.commit()
    return None if row is None else row[0]


def _leading(conn: psycopg.Connection[Any]) -> bool:
    shown = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'syncctl run:%%'"
    return bool(_one(conn, shown))


def _terminate_the_daemon(conn: psycopg.Connection[Any]) -> int:
    """What a server restart does to the daemon's sessions (this test's own one is spared)."""
    return int(
        _one(
            conn,
            "SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND application_name LIKE 'syncctl%%'",
        )
    )


def test_a_restarted_database_is_named_in_the_log_and_the_feed_goes_on_from_its_cursor(
    tritonx: tuple[SimulatorServer, TritonXClient],
    conn: psycopg.Connection[Any],
    dsn: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    simulator, client = tritonx
    controller.pull(conn, client)
    caplog.set_level(logging.INFO, logger="syncctl")
    with running(dsn, client) as daemon:
        wait(lambda: _leading(conn), "the daemon leads")
        simulator.state.edit("TX00000005", city="Zwolle")
        wait(
            lambda: (
                _one(conn, "SELECT city FROM shop.customer WHERE customer_number = 'TX00000005'")
                == "Zwolle"
            ),
            "the first edit was applied",
        )
        caplog.clear()
        assert _terminate_the_daemon(conn) >= 1
        simulator.state.edit("TX00000006", city="Kampen")
        wait(
            lambda: (
                _one(conn, "SELECT city FROM shop.customer WHERE customer_number = 'TX00000006'")
                == "Kampen"
            ),
            "the edit after the restart was applied",
        )
        wait(lambda: _leading(conn), "the daemon leads again")
        assert daemon.thread.is_alive(), daemon.result
    assert "error" not in daemon.result
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors, "the lost connection was not logged"
    assert all("the database connection was lost" in e for e in errors[:1]), errors
    assert not any("SQLSTATE -" in e for e in errors), errors
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "connected to the database again" in infos, infos
    assert _one(conn, "SELECT position FROM sync.cursor") == str(simulator.state.last_seq)
    assert _one(conn, "SELECT count(*) FROM sync.dead_letter") == 0
    assert _one(conn, "SELECT count(event_id) - count(DISTINCT event_id) FROM sync.audit") == 0, (
        "an event was applied twice"
    )
