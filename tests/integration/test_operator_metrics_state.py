"""What a daemon's /metrics says about itself, scraped over HTTP: whether it leads
(`syncctl_leader`), whether it reaches the database (`syncctl_database_connected`), and no
invented zero for the queues it never read: a standby's dead letters are not 0, they are unknown
(NaN) until it leads and reads them."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from syncctl import controller
from syncctl.database import connect
from syncctl.errors import DatabaseUnavailable
from syncctl.metrics import Metrics, MetricsServer
from syncctl.simulator.server import SimulatorServer
from syncctl.tritonx import TritonXClient
from tests.feed import stage, upserted
from tests.integration.test_daemon_serving import wait


def _samples(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics").text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


@pytest.fixture
def tritonx() -> Iterator[TritonXClient]:
    with (
        SimulatorServer(customers=10, seed=3) as server,
        TritonXClient(server.url, server.token, timeout=1.0) as client,
    ):
        yield client


def test_metrics_say_whether_the_daemon_leads_and_reaches_the_database(
    tritonx: TritonXClient, dsn: str, conn: psycopg.Connection[Any]
) -> None:
    stage(conn, [{**upserted("TX00000001", 1), "customer": []}])  # one dead letter
    metrics = Metrics(healthy_within=60)
    server = MetricsServer(metrics, "127.0.0.1", 0).start()
    database_down = threading.Event()
    stop = threading.Event()

    def connect_unless_down(autocommit: bool) -> psycopg.Connection[Any]:
        if database_down.is_set():
            raise DatabaseUnavailable("cannot connect to the database: down for the test")
        return connect(dsn, autocommit=autocommit)

    daemon = threading.Thread(
        target=lambda: controller.run(
            connect_unless_down,
            tritonx,
            poll_interval=0.2,
            stop=stop,
            every_cycle=[("metrics", metrics.update_from_db)],
            on_state=metrics.observe_state,
        ),
        daemon=True,
    )
    leader = psycopg.connect(dsn, autocommit=True)
    leader.execute("SELECT pg_advisory_lock(7343, 1)")  # another daemon leads
    try:
        daemon.start()
        wait(
            lambda: _samples(server.url).get("syncctl_database_connected") == 1,
            "the standby shows it is connected",
        )
        standby = _samples(server.url)
        assert standby["syncctl_leader"] == 0
        assert math.isnan(standby["syncctl_dead_letters"]), "a standby read no dead letters"
        leader.execute("SELECT pg_advisory_unlock(7343, 1)")
        wait(lambda: _samples(server.url)["syncctl_leader"] == 1, "the daemon leads")
        wait(lambda: _samples(server.url)["syncctl_dead_letters"] == 1, "dead letters read")
        database_down.set()
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
            " current_database() AND pid <> pg_backend_pid() AND application_name LIKE 'syncctl%'"
        )
        conn.commit()
        wait(
            lambda: _samples(server.url)["syncctl_database_connected"] == 0,
            "the lost database shows",
        )
        assert _samples(server.url)["syncctl_leader"] == 0
        database_down.clear()
        wait(lambda: _samples(server.url)["syncctl_leader"] == 1, "the daemon leads again")
        assert _samples(server.url)["syncctl_database_connected"] == 1
    finally:
        stop.set()
        daemon.join(timeout=60)
        leader.close()
        server.stop()
