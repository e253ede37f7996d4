"""`python -m bench.refresh_latency [--requests 500]`: login-time refresh latency, from
sync.request_refresh() (what sync.login() calls) to the customer applied, through NOTIFY, the
controller daemon (in a thread), GET /api/v1/customers/{n} on the loopback simulator and the
inbox. Prints p50/p99 against the goal p99 < 300 ms. No assertion: a report."""

from __future__ import annotations

import argparse
import statistics
import threading
import time

from syncctl import controller, reference_shop, schema
from syncctl.database import connect
from syncctl.embedded import EmbeddedPostgres
from syncctl.simulator.server import SimulatorServer
from syncctl.tritonx import TritonXClient

GOAL_P99_MS = 300.0


def measure(requests: int, customers: int) -> list[float]:
    latencies: list[float] = []
    with (
        EmbeddedPostgres() as pg,
        SimulatorServer(customers=customers, seed=1) as simulator,
        TritonXClient(simulator.url, simulator.token) as client,
    ):
        schema.upgrade(pg.dsn)
        reference_shop.install(pg.dsn)
        stop = threading.Event()
        daemon = threading.Thread(
            target=controller.run,
            args=(lambda autocommit: connect(pg.dsn, autocommit=autocommit), client),
            kwargs={"poll_interval": 60.0, "stop": stop, "on_refresh_latency": latencies.append},
            daemon=True,
        )
        daemon.start()
        with connect(pg.dsn, autocommit=True) as shop:
            while shop.execute("SELECT count(*) FROM shop.customer").fetchone() != (customers,):
                time.sleep(0.2)  # the initial import
            for i in range(requests):
                before = len(latencies)
                shop.execute("SELECT sync.request_refresh(%s)", [f"TX{1 + i % customers:08d}"])
                deadline = time.monotonic() + 5
                while len(latencies) == before and time.monotonic() < deadline:
                    time.sleep(0.001)
        stop.set()
        daemon.join(timeout=30)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.refresh_latency")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    latencies = [s * 1000 for s in measure(args.requests, args.customers)]
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"refresh request -> applied, {len(latencies)} requests on loopback: "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms; "
        f"goal p99 < {GOAL_P99_MS:.0f} ms: {'met' if p99 < GOAL_P99_MS else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
