"""The mapping's optional [gdpr] table against the live catalog (sync.mapping_defects): the
customer columns retention counts from, the group column, and the last order on a
customer-linked table (a foreign key, or a [[reference]] of the same mapping)."""

from __future__ import annotations

import copy
import json
from typing import Any

import psycopg
import pytest

from tests.shops import Boutique
from tests.shops.binding import bind_boutique

SHOP = Boutique()


def _defects(conn: psycopg.Connection[Any], gdpr: Any) -> list[tuple[str, str]]:
    """The defects at [gdpr] paths (the boutique's short columns have warnings of their own)."""
    document = copy.deepcopy(SHOP.mapping)
    document["gdpr"] = gdpr
    rows = conn.execute(
        "SELECT path, problem FROM sync.mapping_defects(%s::jsonb)", [json.dumps(document)]
    ).fetchall()
    return [(str(path), str(problem)) for path, problem in rows if str(path).startswith("gdpr")]


@pytest.fixture
def boutique(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    bind_boutique(conn, SHOP)
    return conn


def test_the_boutique_declarations_fit(boutique: psycopg.Connection[Any]) -> None:
    assert _defects(boutique, SHOP.mapping["gdpr"]) == []
    # a declared reference is a customer link too: reviews have no foreign key
    review = {"schema": "sales", "table": "Review", "column": "written_at"}
    assert _defects(boutique, {"last_order": review}) == []


@pytest.mark.parametrize(
    ("gdpr", "expected"),
    [
        (
            {"created_column": "email"},
            [
                (
                    "gdpr.created_column",
                    "email is character varying(254); a retention period counts from a date,"
                    " timestamp or timestamptz column",
                )
            ],
        ),
        (
            {"last_activity_column": "last_seen"},
            [("gdpr.last_activity_column", "crm.customer has no column last_seen")],
        ),
        (
            {"group_column": "birthday"},
            [
                (
                    "gdpr.group_column",
                    "birthday is date; customer_group membership compares a text, varchar or"
                    " char column",
                )
            ],
        ),
        (
            {"created_column": "modified_at"},
            [
                (
                    "gdpr.created_column",
                    "warning: modified_at may be NULL: a retention period cannot count from"
                    " NULL, so a customer without it is held until a later fact (last activity,"
                    " last order) is known",
                )
            ],
        ),
        (
            {"created": "created_at"},
            [
                (
                    "gdpr.created",
                    "is not a key of [gdpr] (created_column, last_activity_column, group_column,"
                    " last_order)",
                )
            ],
        ),
        ("created_at", [("gdpr", "must be a table")]),
        (
            {"last_order": {"schema": "crm", "table": "CustomerAddress", "column": "city"}},
            [
                (
                    "gdpr.last_order.column",
                    "city is character varying(80); the last order's time is a date, timestamp"
                    " or timestamptz column",
                ),
                (
                    "gdpr.last_order.table",
                    'crm."CustomerAddress" is not customer-linked: it has no foreign key to'
                    " crm.customer (customer_uuid) and no [[reference]] declares a column of it",
                ),
            ],
        ),
        (
            {
                "last_order": {
                    "schema": "sales",
                    "table": "orders",
                    "column": "placed_at",
                    "customer_column": "status",
                }
            },
            [
                (
                    "gdpr.last_order.customer_column",
                    "status does not refer to the customer: no foreign key from it to"
                    " crm.customer (customer_uuid) and no [[reference]] declares it",
                )
            ],
        ),
        (
            {"last_order": {"schema": "sales", "table": "order", "column": "placed_at"}},
            [("gdpr.last_order.table", 'table sales."order" does not exist (or is not a table)')],
        ),
        (
            {"last_order": {"schema": "sales", "table": "orders"}},
            [("gdpr.last_order.column", "is missing")],
        ),
    ],
)
def test_a_declaration_that_does_not_fit_is_a_defect(
    boutique: psycopg.Connection[Any], gdpr: Any, expected: list[tuple[str, str]]
) -> None:
    assert _defects(boutique, gdpr) == expected


def test_install_refuses_a_mapping_whose_gdpr_table_does_not_fit(
    boutique: psycopg.Connection[Any],
) -> None:
    document = copy.deepcopy(SHOP.mapping)
    document["gdpr"]["group_column"] = "shop_id"
    boutique.execute("SET ROLE syncctl_owner")
    with pytest.raises(psycopg.Error, match=r"gdpr\.group_column: shop_id is integer") as refused:
        boutique.execute("SELECT sync.install_mapping(%s::jsonb, 'x')", [json.dumps(document)])
    assert refused.value.sqlstate == "SY060"
