"""Fixtures of the integration suites. `shop` runs a test once on each test schema
(tests.shops.SHOPS), bound to the engine in the test's own database; the test reaches the
schema's tables only through the ShopSchema protocol."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.shops import SHOPS, ShopSchema
from tests.shops.binding import bind


@pytest.fixture(params=SHOPS, ids=[shop.name for shop in SHOPS])
def shop(request: pytest.FixtureRequest, conn: psycopg.Connection[Any]) -> ShopSchema:
    """The test schema the test runs on, installed, granted, classified and mapped."""
    schema: ShopSchema = request.param
    bind(conn, schema)
    return schema
