"""Prometheus metrics and a health check for `syncctl run`, served on a loopback port
(`--metrics-port`): GET /metrics (the Prometheus text format, written by prometheus_client:
every series with HELP and TYPE) and GET /healthz (200 while the last successful pull is
recent, or while the daemon stands by connected to the database; 503 otherwise).
docs/operations.md lists the series; deploy/grafana-dashboard.json queries them (a test checks
it against what is exported).

Counters count from the start of the process: pull reports as they come, and audited actions
by type and outcome from the audit rows written since the process started (the first cycle's
too). They are counted by audit id after the first read, so a row of a concurrent transaction
that commits after a later id was counted is missed: close, not exact. Gauges come from the
database after each cycle. Lag is one thing here and in `syncctl status`: the age of the last
applied event, now minus the occurred_at tritonX gave it (syncctl_last_event_age_seconds).
Labels are event outcomes and audit actions only."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from syncctl import queries, status
from syncctl.controller import PullReport
from syncctl.errors import ConfigurationError

# no *_created series: they double the series count and no dashboard uses them
disable_created_metrics()  # type: ignore[no-untyped-call]

_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, healthy_within: float = 300.0) -> None:
        self._lock = threading.Lock()
        self.healthy_within = healthy_within
        self.started_at = datetime.now(UTC)
        self.last_success: float | None = None
        self.last_event_at: datetime | None = None
        self._audit_after: int | None = None
        # staged events not decided, read at the cost of what was staged since the last cycle
        self._pending = status.PendingTracker()
        self.registry = r = CollectorRegistry()
        self.events = Counter(
            "syncctl_events", "Staged events by what became of them.", ["outcome"], registry=r
        )
        self.pages = Counter("syncctl_pages", "Pages of the change feed staged.", registry=r)
        self.retries = Counter(
            "syncctl_pull_retries",
            "Retried pulls (tritonX unavailable, or a page to stage again).",
            registry=r,
        )
        self.payloads_dropped = Counter(
            "syncctl_payloads_dropped",
            "Snapshots dropped from applied inbox events after the retention period.",
            registry=r,
        )
        self.actions = Counter(
            "syncctl_actions",
            "Audited actions (merges, anonymisations, adoptions, ...) by type and outcome.",
            ["action", "outcome"],
            registry=r,
        )
        self.refresh_latency = Histogram(
            "syncctl_refresh_latency_seconds",
            "From a login's refresh request to the customer's snapshot applied.",
            buckets=_BUCKETS,
            registry=r,
        )
        Gauge(
            "syncctl_last_success_timestamp_seconds",
            "Unix time of the last pull that caught up with the feed (0: none yet).",
            registry=r,
        ).set_function(lambda: self.last_success or 0.0)
        Gauge(
            "syncctl_last_event_age_seconds",
            "Lag: seconds from the occurred_at of the last applied event to now (NaN: none "
            "yet). Grows while the feed is quiet, as syncctl status shows.",
            registry=r,
        ).set_function(self._last_event_age)
        self.gauges = {
            name: Gauge(name, doc, registry=r)
            for name, doc in (
                ("syncctl_dead_letters", "Events in the dead-letter state."),
                ("syncctl_inbox_pending", "Staged events not decided."),
                ("syncctl_outbox_pending", "Events for tritonX waiting to be delivered."),
                ("syncctl_outbox_dead", "Events for tritonX given up on (see outbox list)."),
                ("syncctl_refresh_queue", "Login-time refresh requests waiting."),
            )
        }
        for gauge in self.gauges.values():
            # read from the database by the leader only: a standby has no reading (not 0)
            gauge.set(math.nan)
        self.leader = Gauge(
            "syncctl_leader", "1 while this daemon leads, 0 while it stands by.", registry=r
        )
        self.database_connected = Gauge(
            "syncctl_database_connected",
            "1 while this daemon is connected to the database, 0 while it connects again.",
            registry=r,
        )
        self.page_size = Gauge(
            "syncctl_page_size",
            "Events per page the feed asks for: --page-size, or less while pages exceeded "
            "the statement_timeout (NaN: no page yet).",
            registry=r,
        )
        self.page_size.set(math.nan)
        # what observe_state heard last: None until the daemon first connected or failed to
        self.connected: bool | None = None
        self.leading = False

    def _last_event_age(self) -> float:
        at = self.last_event_at
        return math.nan if at is None else max(0.0, (datetime.now(UTC) - at).total_seconds())

    def observe_pull(self, report: PullReport) -> None:
        for state, count in report.states.items():
            self.events.labels(state).inc(count)
        self.pages.inc(report.pages)
        self.retries.inc(report.retries)
        if report.page_size is not None:
            self.page_size.set(float(report.page_size))
        with self._lock:
            if report.caught_up:
                self.last_success = time.time()
            if report.last_occurred_at is not None:
                self.last_event_at = max(
                    report.last_occurred_at, self.last_event_at or report.last_occurred_at
                )

    def observe_state(self, connected: bool, leading: bool) -> None:
        self.database_connected.set(1.0 if connected else 0.0)
        self.leader.set(1.0 if leading else 0.0)
        with self._lock:
            self.connected = connected
            self.leading = leading

    def observe_refresh(self, seconds: float) -> None:
        self.refresh_latency.observe(seconds)

    def observe_payloads_dropped(self, rows: int) -> None:
        self.payloads_dropped.inc(rows)

    def update_from_db(self, conn: psycopg.Connection[Any]) -> None:
        dead_letters = status.dead_letters(conn)
        pending = self._pending.read(conn)
        queues = status.queues(conn)
        cursors = status.cursors(conn)
        self._count_actions(conn)
        conn.commit()
        for name, value in (
            ("syncctl_dead_letters", dead_letters),
            ("syncctl_inbox_pending", pending),
            ("syncctl_outbox_pending", queues.outbox_pending),
            ("syncctl_outbox_dead", queues.outbox_dead),
            ("syncctl_refresh_queue", queues.refresh_queue),
        ):
            self.gauges[name].set(float(value))
        stamps = [
            c.last_event_at
            for c in cursors
            if c.source == "tritonx" and c.last_event_at is not None
        ]
        if stamps:
            with self._lock:
                self.last_event_at = stamps[0]

    def _count_actions(self, conn: psycopg.Connection[Any]) -> None:
        if self._audit_after is None:
            last = queries.one(conn, "audit_last_id")
            self._audit_after = int(last[0]) if last else 0
            rows = queries.all(
                conn, "audit_actions_from", started=self.started_at, last_id=self._audit_after
            )
        else:
            rows = queries.all(conn, "audit_actions_since", after=self._audit_after)
        for action, outcome, count, last_id in rows:
            self.actions.labels(str(action), str(outcome)).inc(int(count))
            self._audit_after = max(self._audit_after, int(last_id))

    def health(self) -> tuple[bool, str]:
        """/healthz: healthy while a pull caught up recently (the leader's rule), or while
        this daemon stands by connected to the database; and the one word that says which."""
        with self._lock:
            if (
                self.last_success is not None
                and time.time() - self.last_success < self.healthy_within
            ):
                return True, "ok"
            if self.connected and not self.leading:
                return True, "standby"
            if self.connected is False:
                return False, "no database"
            return False, "stale"

    def exposition(self) -> str:
        return generate_latest(self.registry).decode("utf-8")


class MetricsServer:
    """/metrics and /healthz on a loopback address, in a daemon thread."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 9187) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    status, body, kind = 200, metrics.exposition(), CONTENT_TYPE_PLAIN_0_0_4
                elif self.path == "/healthz":
                    ok, word = metrics.health()
                    status, body, kind = (200 if ok else 503), f"{word}\n", "text/plain"
                else:
                    status, body, kind = 404, "not found\n", "text/plain"
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        try:
            self._http = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:  # in use, or an address this host does not have
            raise ConfigurationError(
                f"cannot serve the metrics on {host}:{port}: {exc.strerror or type(exc).__name__}"
            ) from exc
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, daemon=True, name="syncctl-metrics"
        )

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
