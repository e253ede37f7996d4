"""The engine installs alone on a shop's database: `syncctl db upgrade` creates no customer table
of its own (no `shop` schema), a feed refuses to start until a mapping is installed, and the
demo's reference shop comes only from `syncctl db reference-shop`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from tests.acceptance.conftest import TOKEN, Simulator, syncctl


def _one(dsn: str, query: str) -> Any:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_an_upgrade_creates_no_shop_tables_and_a_feed_waits_for_a_mapping(
    fresh_database: Callable[[str], str], simulator_factory: Callable[..., Simulator]
) -> None:
    dsn = fresh_database("own_shop")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA crm; CREATE TABLE crm.client (id int PRIMARY KEY)")
    upgraded = syncctl("db", "upgrade", dsn=dsn)
    assert upgraded.returncode == 0, upgraded.stderr
    assert _one(dsn, "SELECT to_regnamespace('shop') IS NULL")
    assert _one(dsn, "SELECT count(*) FROM sync.mapping_version") == 0
    assert _one(dsn, "SELECT count(*) FROM gdpr.policy") == 0

    simulator = simulator_factory("--customers", "20", "--seed", "3")
    refused = syncctl("--tritonx-url", simulator.url, "--tritonx-token", TOKEN, "pull", dsn=dsn)
    assert refused.returncode != 0
    assert "no mapping is installed" in refused.stderr
    assert "syncctl mapping install" in refused.stderr
    assert _one(dsn, "SELECT count(*) FROM sync.inbox") == 0
    assert _one(dsn, "SELECT count(*) FROM sync.dead_letter") == 0


def test_the_reference_shop_is_installed_on_request_and_again_without_change(
    fresh_database: Callable[[str], str], simulator_factory: Callable[..., Simulator]
) -> None:
    dsn = fresh_database("demo_shop")
    assert syncctl("db", "upgrade", dsn=dsn).returncode == 0
    first = syncctl("db", "reference-shop", dsn=dsn)
    assert first.returncode == 0, first.stderr
    assert "mapping version 1" in first.stdout
    again = syncctl("db", "reference-shop", dsn=dsn)
    assert again.returncode == 0, again.stderr
    assert "mapping version 1" in again.stdout
    assert _one(dsn, "SELECT count(*) FROM sync.mapping_version") == 1
    assert _one(dsn, "SELECT count(*) FROM gdpr.policy WHERE state = 'draft'") == 4

    simulator = simulator_factory("--customers", "20", "--seed", "3")
    pulled = syncctl("--tritonx-url", simulator.url, "--tritonx-token", TOKEN, "pull", dsn=dsn)
    assert pulled.returncode == 0, pulled.stderr
    assert _one(dsn, "SELECT count(*) FROM shop.customer") == 20
