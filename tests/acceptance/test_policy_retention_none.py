"""`syncctl policy create --retention none`: the help says "none: no limit", so the word
makes a policy without a retention period, as leaving the option out does."""

from __future__ import annotations

import pytest

from tests.acceptance.conftest import syncctl


@pytest.mark.parametrize("spelling", ["none", "NONE"])
def test_retention_none_creates_a_policy_without_a_limit(dsn: str, spelling: str) -> None:
    created = syncctl(
        "policy",
        "create",
        "forever",
        "--name",
        "Kept",
        "--description",
        "Kept as long as the customer exists",
        "--legal-basis",
        "contract",
        "--retention",
        spelling,
        "--category",
        "shop.customer",
        dsn=dsn,
    )
    assert created.returncode == 0, created.stderr
    assert "policy forever: draft" in created.stdout

    shown = syncctl("policy", "show", "forever", dsn=dsn)
    assert shown.returncode == 0, shown.stderr
    assert "retention:     no limit" in shown.stdout


def test_a_retention_that_is_no_interval_is_refused_naming_the_option(dsn: str) -> None:
    created = syncctl(
        "policy",
        "create",
        "typo",
        "--name",
        "Typo",
        "--description",
        "A mistyped period",
        "--legal-basis",
        "contract",
        "--retention",
        "2 yaers",
        "--category",
        "shop.customer",
        dsn=dsn,
    )
    assert created.returncode != 0
    assert "--retention" in created.stderr
    assert syncctl("policy", "show", "typo", dsn=dsn).returncode != 0
