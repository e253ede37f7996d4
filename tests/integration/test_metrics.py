"""The metrics endpoint, scraped over HTTP: counters from pull reports and the audit, gauges
from the database, a cumulative refresh-latency histogram, and /healthz following the last
successful pull. Every sample line parses as the Prometheus text format."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncctl.controller import PullReport
from syncctl.metrics import Metrics, MetricsServer
from tests.feed import event, stage, upserted

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana-dashboard.json"
SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)+\})? (-?[0-9.e+]+|NaN)$')


@pytest.fixture
def served() -> Iterator[tuple[Metrics, str]]:
    metrics = Metrics(healthy_within=60)
    server = MetricsServer(metrics, "127.0.0.1", 0).start()
    yield metrics, server.url
    server.stop()


def _samples(url: str) -> dict[str, float]:
    response = httpx.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in response.text.splitlines():
        if line.startswith("#"):
            continue
        assert SAMPLE.match(line), line
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def _report(**fields: Any) -> PullReport:
    report = PullReport()
    for name, value in fields.items():
        setattr(report, name, value)
    return report


def test_health_follows_the_last_successful_pull(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    assert httpx.get(url + "/healthz").status_code == 503
    metrics.observe_pull(_report(caught_up=False, states=Counter(applied=5)))
    assert httpx.get(url + "/healthz").status_code == 503
    metrics.observe_pull(_report(caught_up=True, states=Counter(applied=2, dead_letter=1)))
    assert httpx.get(url + "/healthz").status_code == 200
    metrics.last_success = 0.0
    assert httpx.get(url + "/healthz").status_code == 503
    assert httpx.get(url + "/other").status_code == 404
    samples = _samples(url)
    assert samples['syncctl_events_total{outcome="applied"}'] == 7
    assert samples['syncctl_events_total{outcome="dead_letter"}'] == 1


def test_refresh_latency_is_a_cumulative_histogram(served: tuple[Metrics, str]) -> None:
    metrics, url = served
    for seconds in (0.003, 0.03, 0.3, 30.0):
        metrics.observe_refresh(seconds)
    samples = _samples(url)
    bucket = "syncctl_refresh_latency_seconds_bucket"
    assert samples[f'{bucket}{{le="0.01"}}'] == 1
    assert samples[f'{bucket}{{le="0.05"}}'] == 2
    assert samples[f'{bucket}{{le="0.5"}}'] == 3
    assert samples[f'{bucket}{{le="10.0"}}'] == 3
    assert samples[f'{bucket}{{le="+Inf"}}'] == 4
    assert samples["syncctl_refresh_latency_seconds_count"] == 4
    assert samples["syncctl_refresh_latency_seconds_sum"] == pytest.approx(30.333)


def test_gauges_and_actions_come_from_the_database(conn: psycopg.Connection[Any]) -> None:
    stage(conn, [upserted("TX00000001", 1)])  # before the daemon started: not counted
    metrics = Metrics(healthy_within=60)
    server = MetricsServer(metrics, "127.0.0.1", 0).start()
    try:
        _gauges_and_actions(metrics, server.url, conn)
    finally:
        server.stop()


def _gauges_and_actions(metrics: Metrics, url: str, conn: psycopg.Connection[Any]) -> None:
    metrics.update_from_db(conn)  # a first cycle with nothing to count
    assert not any(k.startswith("syncctl_actions_total") for k in _samples(url))
    # the first cycle's actions count: everything audited since the process started
    stage(conn, [upserted("TX00000005", 1)])
    metrics.update_from_db(conn)
    samples = _samples(url)
    assert samples['syncctl_actions_total{action="customer.upserted",outcome="applied"}'] == 1
    stage(conn, [upserted("TX00000002", 1), upserted("TX00000003", 1), upserted("TX00000003", 1)])
    stage(conn, [event("customer.merged", "TX00000002", 2, into="TX00000003")])
    stage(conn, [{**event("customer.upserted", "TX00000004", 1), "customer": []}])
    conn.execute("SELECT * FROM sync.login('TX00000003', 'x@example.nl')")
    conn.commit()
    metrics.update_from_db(conn)
    samples = _samples(url)
    actions = {k: v for k, v in samples.items() if k.startswith("syncctl_actions_total")}
    assert actions['syncctl_actions_total{action="customer.upserted",outcome="applied"}'] == 3
    assert actions['syncctl_actions_total{action="customer.merged",outcome="applied"}'] == 1
    assert samples["syncctl_dead_letters"] == 1
    assert samples["syncctl_refresh_queue"] == 1
    assert samples["syncctl_outbox_pending"] == 0
    conn.execute(
        "SELECT sync.anonymise_from_backoffice(sync.resolve_customer('TX00000003'), 'AVG', 'bo:1')"
    )
    conn.commit()
    metrics.update_from_db(conn)
    samples = _samples(url)
    assert samples["syncctl_outbox_pending"] == 1
    assert samples['syncctl_actions_total{action="customer.anonymized",outcome="applied"}'] == 1
    assert samples['syncctl_actions_total{action="customer.upserted",outcome="applied"}'] == 3


def test_lag_is_the_age_of_the_last_applied_event_as_status_says(
    served: tuple[Metrics, str], conn: psycopg.Connection[Any]
) -> None:
    metrics, url = served
    assert math.isnan(_samples(url)["syncctl_last_event_age_seconds"]), "no event yet"
    stage(conn, [{**upserted("TX00000001", 1), "occurred_at": "2026-01-01T00:00:00Z"}])
    metrics.update_from_db(conn)
    age = _samples(url)["syncctl_last_event_age_seconds"]
    row = conn.execute(
        "SELECT extract(epoch FROM now() - timestamptz '2026-01-01T00:00:00Z')::float8"
    ).fetchone()
    conn.commit()
    assert row is not None and abs(age - row[0]) < 60


def test_every_series_has_help_and_type_and_the_dashboard_queries_only_exported_ones(
    served: tuple[Metrics, str], conn: psycopg.Connection[Any]
) -> None:
    metrics, url = served
    stage(conn, [upserted("TX00000001", 1)])
    metrics.observe_pull(_report(caught_up=True, states=Counter(applied=1), pages=1))
    metrics.observe_refresh(0.2)
    metrics.update_from_db(conn)
    text = httpx.get(url + "/metrics").text
    families = list(text_string_to_metric_families(text))
    for family in families:
        assert family.documentation, f"{family.name} has no HELP"
        assert family.type in ("counter", "gauge", "histogram"), family.name
        assert f"# TYPE {family.name}" in text
    exported = {sample.name for family in families for sample in family.samples}
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    assert expressions, "the dashboard has no queries"
    queried = {name for expr in expressions for name in re.findall(r"\bsyncctl_\w+", expr)}
    assert queried, expressions
    assert queried <= exported, f"queried but not exported: {sorted(queried - exported)}"
    documented = (DASHBOARD.parents[1] / "docs" / "operations.md").read_text(encoding="utf-8")
    missing = sorted(f.name for f in families if f.name not in documented)
    assert not missing, f"series not listed in docs/operations.md: {missing}"
