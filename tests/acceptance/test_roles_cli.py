"""The CLI as the roles a deployment logs in with (the DSN's options set the role, as a login
in the group would be): the controller can check the schema revision and show the status; a
privilege the role lacks is a one-line error, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.acceptance.conftest import TOKEN, Simulator, syncctl
from tests.truth import assert_database_equals_tritonx


def _as(dsn: str, role: str) -> str:
    return make_conninfo(dsn, options=f"-c role={role}")


def test_the_controller_checks_the_revision_and_shows_the_status(dsn: str) -> None:
    controller = _as(dsn, "syncctl_controller")
    checked = syncctl("db", "check", dsn=controller)
    assert checked.returncode == 0, checked.stderr
    status = syncctl("status", dsn=controller)
    assert status.returncode == 0, status.stderr
    assert "leader: none" in status.stdout


def test_a_missing_privilege_is_one_line_without_a_traceback(dsn: str) -> None:
    refused = syncctl("report", "actions", dsn=_as(dsn, "syncctl_controller"))
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert refused.stderr.strip() == ("Error: permission denied for schema report (SQLSTATE 42501)")
    # the role really is the one the DSN's options name: reporting may read the report
    allowed = syncctl("report", "actions", dsn=_as(dsn, "syncctl_reporting"))
    assert allowed.returncode == 0, allowed.stderr


def test_a_role_without_the_schema_cannot_check_it_and_says_so(dsn: str) -> None:
    refused = syncctl("db", "check", dsn=_as(dsn, "syncctl_reporting"))
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "permission denied for schema syncctl (SQLSTATE 42501)" in refused.stderr


@pytest.mark.slow
def test_the_controller_pulls_a_feed_with_merges_and_anonymisations(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """Everything the daemon's role needs, it has: the apply, merges and anonymisations included
    (they run as the owner inside the feed's trigger); what it does not need is refused."""
    simulator = simulator_factory("--customers", "300", "--seed", "11")
    simulator.admin("POST", "/admin/activity", json={"n": 120, "seed": 12})
    controller = _as(dsn, "syncctl_controller")
    pulled = syncctl(
        "--tritonx-url", simulator.url, "--tritonx-token", TOKEN, "pull", dsn=controller
    )
    assert pulled.returncode == 0, pulled.stderr
    assert_database_equals_tritonx(conn, simulator.admin("GET", "/admin/state").json())
    for command in (("links", "check"), ("deadletter", "list"), ("outbox", "list"), ("status",)):
        done = syncctl(*command, dsn=controller)
        assert done.returncode == 0, (command, done.stderr)
    refused = syncctl("merge", "TX00000001", "TX00000002", dsn=controller)
    assert refused.returncode == 1
    assert "permission denied for function merge_customer (SQLSTATE 42501)" in refused.stderr
