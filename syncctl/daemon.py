"""`syncctl run` assembled: the controller loop with the metrics endpoint, payload retention
and the daily GDPR job as parts of every cycle. syncctl.controller runs the loop; this module
only wires the parts an operator configures."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time, timedelta
from threading import Event
from typing import Any

from syncctl import controller, gdpr
from syncctl.controller import PullReport
from syncctl.database import connect
from syncctl.metrics import Metrics, MetricsServer
from syncctl.payload_retention import PayloadRetention
from syncctl.tritonx import TritonXClient

log = logging.getLogger("syncctl")


@dataclass(frozen=True)
class DaemonOptions:
    poll_interval: float = 5.0
    page_size: int = 5000
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    gdpr_daily_at: time | None = None
    keep_payloads: timedelta = timedelta(days=7)


def serve(dsn: str, client: TritonXClient, options: DaemonOptions, stop: Event) -> PullReport:
    """Run the daemon until `stop` is set; what it pulled in total."""
    metrics = Metrics(healthy_within=max(60.0, 10 * options.poll_interval))
    server = None
    if options.metrics_port is not None:
        server = MetricsServer(metrics, options.metrics_host, options.metrics_port).start()
        log.info("metrics on %s/metrics, health on %s/healthz", server.url, server.url)

    def on_pull(report: PullReport) -> None:
        metrics.observe_pull(report)
        if report.events:
            log.info("pulled %d events in %.2f s", report.events, report.seconds)

    payload_retention = PayloadRetention(options.keep_payloads)
    every_cycle: list[tuple[str, Callable[[Any], Any]]] = [
        ("payload retention", lambda c: metrics.observe_payloads_dropped(payload_retention(c))),
        ("metrics", metrics.update_from_db),
    ]
    if options.gdpr_daily_at is not None:
        every_cycle.append(("daily GDPR job", gdpr.DailyJob(options.gdpr_daily_at)))
    total = controller.run(
        lambda autocommit: connect(dsn, autocommit=autocommit),
        client,
        poll_interval=options.poll_interval,
        page_size=options.page_size,
        stop=stop,
        on_pull=on_pull,
        on_refresh_latency=metrics.observe_refresh,
        on_state=metrics.observe_state,
        every_cycle=every_cycle,
        # a retention of zero: the inbox never holds an applied event's snapshot
        keep_payloads=options.keep_payloads > timedelta(0),
    )
    if server is not None:
        server.stop()
    return total
