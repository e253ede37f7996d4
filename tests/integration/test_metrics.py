"""The metrics endpoint, scraped over HTTP: counters from pull reports and the audit, gauges
from the database, a cumulative refresh-latency histogram, and /healthz following the last
successful pull. Every sample line parses as the Prometheus text format."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from syncctl.controller import PullReport
from syncctl.metrics import Metrics, MetricsServer
from tests.feed import event, stage, upserted

SAMPLE = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)+\})? -?[0-9.e+]+(\.0)?$')


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


def test_gauges_and_actions_come_from_the_database(
    served: tuple[Metrics, str], conn: psycopg.Connection[Any]
) -> None:
    metrics, url = served
    stage(conn, [upserted("TX00000001", 1)])  # before the daemon started: not counted
    metrics.update_from_db(conn)
    stage(conn, [upserted("TX00000002", 1), upserted("TX00000003", 1), upserted("TX00000003", 1)])
    stage(conn, [event("customer.merged", "TX00000002", 2, into="TX00000003")])
    stage(conn, [{**event("customer.upserted", "TX00000004", 1), "customer": []}])
    conn.execute("SELECT * FROM sync.login('TX00000003', 'x@example.nl')")
    conn.commit()
    metrics.update_from_db(conn)
    samples = _samples(url)
    actions = {k: v for k, v in samples.items() if k.startswith("syncctl_actions_total")}
    assert actions['syncctl_actions_total{action="customer.upserted",outcome="applied"}'] == 2
    assert actions['syncctl_actions_total{action="customer.merged",outcome="applied"}'] == 1
    assert samples["syncctl_dead_letters"] == 1
    assert samples["syncctl_refresh_queue"] == 1
    assert samples["syncctl_outbox_backlog"] == 0
    conn.execute(
        "SELECT sync.anonymise_from_backoffice(sync.resolve_customer('TX00000003'), 'AVG', 'bo:1')"
    )
    conn.commit()
    metrics.update_from_db(conn)
    samples = _samples(url)
    assert samples["syncctl_outbox_backlog"] == 1
    assert samples['syncctl_actions_total{action="customer.anonymized",outcome="applied"}'] == 1
    assert samples['syncctl_actions_total{action="customer.upserted",outcome="applied"}'] == 2
