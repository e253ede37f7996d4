"""Prometheus metrics and a health check for `syncctl run`, served on a loopback port
(`--metrics-port`): GET /metrics (text exposition format) and GET /healthz (200 while the last
successful pull is recent, 503 otherwise). Counters come from the controller's reports,
gauges from the database after each cycle, and audited actions by type and outcome counted
from the audit rows written since the daemon started (by audit id: a row of a concurrent
transaction that commits after a later id was counted is missed, so these are close, not exact).
Labels are event types, actions and outcomes only."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg

from syncctl.controller import PullReport
from syncctl.database import named_queries, queries

_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _label(value: str) -> str:
    """A label value, quoted and escaped as the text exposition format requires."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class Metrics:
    def __init__(self, healthy_within: float = 300.0) -> None:
        self._lock = threading.Lock()
        self.healthy_within = healthy_within
        self.events: Counter[str] = Counter()
        self.pages = 0
        self.retries = 0
        self.last_success: float | None = None
        self.gauges: dict[str, float] = {}
        self.refresh_buckets = [0] * len(_BUCKETS)
        self.refresh_count = 0
        self.refresh_sum = 0.0
        self.actions: Counter[tuple[str, str]] = Counter()
        self.payloads_dropped = 0
        self._audit_after: int | None = None

    def observe_pull(self, report: PullReport) -> None:
        with self._lock:
            self.events.update(report.states)
            self.pages += report.pages
            self.retries += report.retries
            if report.caught_up:
                self.last_success = time.time()
            if report.lag_seconds is not None:
                self.gauges["syncctl_lag_seconds"] = report.lag_seconds

    def observe_refresh(self, seconds: float) -> None:
        with self._lock:
            self.refresh_count += 1
            self.refresh_sum += seconds
            for i, bound in enumerate(_BUCKETS):
                if seconds <= bound:
                    self.refresh_buckets[i] += 1

    def observe_payloads_dropped(self, rows: int) -> None:
        with self._lock:
            self.payloads_dropped += rows

    def update_from_db(self, conn: psycopg.Connection[Any]) -> None:
        q = queries()
        counts = conn.execute(q["status_counts"]).fetchone()
        queues = conn.execute(q["status_queues"]).fetchone()
        self._count_actions(conn)
        conn.commit()
        if counts is None or queues is None:
            return
        with self._lock:
            self.gauges["syncctl_dead_letters"] = float(counts[1])
            self.gauges["syncctl_inbox_pending"] = float(counts[2])
            self.gauges["syncctl_outbox_backlog"] = float(queues[0])
            self.gauges["syncctl_outbox_dead"] = float(queues[1])
            self.gauges["syncctl_refresh_queue"] = float(queues[2])

    def _count_actions(self, conn: psycopg.Connection[Any]) -> None:
        mq = named_queries("metrics_queries.sql")
        if self._audit_after is None:
            row = conn.execute(mq["audit_last_id"]).fetchone()
            self._audit_after = int(row[0]) if row else 0
            return
        rows = conn.execute(mq["audit_actions_since"], {"after": self._audit_after}).fetchall()
        with self._lock:
            for action, outcome, count, last_id in rows:
                self.actions[(str(action), str(outcome))] += int(count)
                self._audit_after = max(self._audit_after, int(last_id))

    def healthy(self) -> bool:
        with self._lock:
            return (
                self.last_success is not None
                and time.time() - self.last_success < self.healthy_within
            )

    def exposition(self) -> str:
        with self._lock:
            lines = [
                "# HELP syncctl_events_total Staged events by what became of them.",
                "# TYPE syncctl_events_total counter",
            ]
            lines += [
                f"syncctl_events_total{{outcome={_label(state)}}} {count}"
                for state, count in sorted(self.events.items())
            ]
            lines += [
                "# HELP syncctl_actions_total Audited actions since start, by type and outcome.",
                "# TYPE syncctl_actions_total counter",
            ]
            lines += [
                f"syncctl_actions_total{{action={_label(action)},outcome={_label(outcome)}}} {n}"
                for (action, outcome), n in sorted(self.actions.items())
            ]
            lines += [
                "# HELP syncctl_pages_total Pages staged.",
                "# TYPE syncctl_pages_total counter",
                f"syncctl_pages_total {self.pages}",
                "# HELP syncctl_pull_retries_total Retried pulls (tritonX or database trouble).",
                "# TYPE syncctl_pull_retries_total counter",
                f"syncctl_pull_retries_total {self.retries}",
                "# HELP syncctl_payloads_dropped_total Inbox payloads dropped after retention.",
                "# TYPE syncctl_payloads_dropped_total counter",
                f"syncctl_payloads_dropped_total {self.payloads_dropped}",
                "# HELP syncctl_last_success_timestamp_seconds When a pull last caught up.",
                "# TYPE syncctl_last_success_timestamp_seconds gauge",
                f"syncctl_last_success_timestamp_seconds {self.last_success or 0}",
            ]
            for name, value in sorted(self.gauges.items()):
                lines += [f"# TYPE {name} gauge", f"{name} {value}"]
            lines += [
                "# HELP syncctl_refresh_latency_seconds Refresh request to applied.",
                "# TYPE syncctl_refresh_latency_seconds histogram",
            ]
            lines += [
                f'syncctl_refresh_latency_seconds_bucket{{le="{bound}"}} {count}'
                for bound, count in zip(_BUCKETS, self.refresh_buckets, strict=True)
            ]
            lines += [
                f'syncctl_refresh_latency_seconds_bucket{{le="+Inf"}} {self.refresh_count}',
                f"syncctl_refresh_latency_seconds_sum {self.refresh_sum}",
                f"syncctl_refresh_latency_seconds_count {self.refresh_count}",
            ]
            return "\n".join(lines) + "\n"


class MetricsServer:
    """/metrics and /healthz on a loopback address, in a daemon thread."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 9187) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    status, body = 200, metrics.exposition()
                    kind = "text/plain; version=0.0.4"
                elif self.path == "/healthz":
                    ok = metrics.healthy()
                    status, body, kind = (
                        (200 if ok else 503),
                        ("ok\n" if ok else "stale\n"),
                        "text/plain",
                    )
                else:
                    status, body, kind = 404, "not found\n", "text/plain"
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._http = ThreadingHTTPServer((host, port), Handler)
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
