"""The CLI as the roles a deployment logs in with (the DSN's options set the role, as a login
in the group would be): the controller can check the schema revision and show the status; a
privilege the role lacks is a one-line error, never a traceback."""

from __future__ import annotations

from psycopg.conninfo import make_conninfo

from tests.acceptance.conftest import syncctl


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
