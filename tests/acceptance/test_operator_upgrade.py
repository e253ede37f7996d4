"""`syncctl db upgrade` as an operator runs it: twice in a row, and by a DBA login that is not
(yet) a member of the owner role on a database installed before, where it must say which
GRANT is missing instead of a bare permission error (docs/security.md, "Installing")."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.acceptance.conftest import syncctl


@pytest.fixture
def dba(conn: psycopg.Connection[Any]) -> Iterator[str]:
    """A login that is no member of a syncctl role (and may not grant itself one)."""
    name = f"dba_{secrets.token_hex(4)}"
    conn.execute(f"CREATE ROLE {name} LOGIN")
    conn.commit()
    yield name
    conn.execute(f"DROP ROLE {name}")
    conn.commit()


def test_upgrade_twice_changes_nothing_the_second_time(dsn: str) -> None:
    for _ in range(2):
        upgraded = syncctl("db", "upgrade", dsn=dsn)
        assert upgraded.returncode == 0, upgraded.stderr
        assert "database at revision 0001_baseline" in upgraded.stdout
    checked = syncctl("db", "check", dsn=dsn)
    assert checked.returncode == 0, checked.stderr


def test_an_upgrade_by_a_login_outside_the_owner_role_names_the_grant(dsn: str, dba: str) -> None:
    as_dba = make_conninfo(dsn, user=dba)
    refused = syncctl("db", "upgrade", dsn=as_dba)
    assert refused.returncode == 1, refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert f"GRANT syncctl_owner TO {dba}" in last, refused.stderr
    assert "Traceback" not in refused.stderr
