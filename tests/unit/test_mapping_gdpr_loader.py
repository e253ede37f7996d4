"""The loader's shape checks of the mapping's optional [gdpr] table (docs/mapping.md): the
facts retention policies count from, typed, and each shape problem at its line."""

from __future__ import annotations

import pytest

from syncctl import mapping, mapping_plan
from syncctl.errors import MappingInvalid
from tests.unit.test_mapping_loader import GOOD

WITH_GDPR = (
    GOOD
    + """
[gdpr]
created_column = "created_at"
last_activity_column = "Last Seen"
group_column = "segment"
last_order = { schema = "Sales", table = "Orders", column = "placed_at" }
"""
)
GDPR_LINE = GOOD.count("\n") + 2


def problems(text: str) -> list[str]:
    with pytest.raises(MappingInvalid) as caught:
        mapping.parse(text, "shop.toml")
    return caught.value.problems


def test_the_gdpr_table_loads_typed() -> None:
    loaded = mapping.parse(WITH_GDPR, "shop.toml")
    assert loaded.gdpr == mapping.Gdpr(
        created_column="created_at",
        last_activity_column="Last Seen",
        group_column="segment",
        last_order=mapping.LastOrder("Sales", "Orders", "placed_at"),
    )
    assert mapping.parse(GOOD, "shop.toml").gdpr == mapping.Gdpr()


def test_the_reference_mapping_declares_every_fact() -> None:
    facts = mapping.load(mapping.REFERENCE).gdpr
    assert facts.last_order == mapping.LastOrder("shop", "orders", "placed_at")
    assert (facts.created_column, facts.last_activity_column, facts.group_column) == (
        "created_at",
        "last_login_at",
        "customer_group",
    )


def test_a_shape_problem_of_the_gdpr_table_is_named_at_its_line() -> None:
    text = WITH_GDPR.replace('group_column = "segment"', "group_column = 3").replace(
        'column = "placed_at" }', 'column = "placed_at", customer = "x" }'
    )
    assert problems(text) == [
        f"shop.toml:{GDPR_LINE + 3}: gdpr.group_column: must be a non-empty string",
        f"shop.toml:{GDPR_LINE + 4}: gdpr.last_order.customer: unknown key (allowed: schema, "
        "table, column, customer_column)",
    ]
    assert problems(WITH_GDPR.replace('created_column = "created_at"', 'created = "x"')) == [
        f"shop.toml:{GDPR_LINE + 1}: gdpr.created: unknown key (allowed: created_column, "
        "last_activity_column, group_column, last_order)"
    ]


def test_the_plan_says_what_retention_counts_from() -> None:
    reference = mapping_plan.summary(mapping.load(mapping.REFERENCE))
    assert (
        "retention counts from ([gdpr]): created created_at, last activity last_login_at, "
        "group customer_group, last order shop.orders.placed_at"
    ) in reference
    bare = mapping_plan.summary(mapping.parse(GOOD, "shop.toml"))
    assert (
        "retention counts from ([gdpr]): nothing declared (policies needing a fact are "
        "refused)" in bare
    )
