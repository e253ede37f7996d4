"""Installing as docs/security.md says: a DBA who is no superuser installs once the roles and the
owner's CREATE right exist, everything ends up owned by the NOLOGIN owner role, a second DBA in
the owner role upgrades later, and whatever is missing is named with the statement that fixes
it, before anything changes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from syncctl import schema
from syncctl.errors import MigrationError


def _as(dsn: str, login: str) -> str:
    params: dict[str, Any] = conninfo_to_dict(dsn)
    params.update(user=login, password="x")
    return make_conninfo(**params)


@pytest.fixture
def prefix(server_dsn: Callable[[str], str]) -> Any:
    """A role prefix of this test's own, with its roles dropped afterwards."""
    chosen = "inst" + uuid.uuid4().hex[:8]
    yield chosen
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as admin:
        for kind in ("owner", "controller", "webshop", "reporting"):
            admin.execute(f"DROP ROLE IF EXISTS {chosen}_{kind}")
        for login in ("dba_one", "dba_two", "outsider"):
            admin.execute(f"DROP ROLE IF EXISTS {chosen}_{login}")


def _logins(admin: psycopg.Connection[Any], prefix: str, *names: str) -> None:
    for name in names:
        admin.execute(f"CREATE ROLE {prefix}_{name} LOGIN PASSWORD 'x'")


def test_a_dba_without_superuser_installs_and_a_second_one_upgrades(
    prefix: str, fresh_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = fresh_database(f"{prefix}_db")
    with psycopg.connect(dsn, autocommit=True) as admin:
        # what docs/security.md asks a DBA with CREATEROLE and the database owner to run
        for kind in ("owner", "controller", "webshop", "reporting"):
            admin.execute(f"CREATE ROLE {prefix}_{kind} NOLOGIN")
        _logins(admin, prefix, "dba_one", "dba_two", "outsider")
        admin.execute(f"GRANT {prefix}_owner TO {prefix}_dba_one, {prefix}_dba_two")
        admin.execute(f"GRANT CREATE ON DATABASE {prefix}_db TO {prefix}_owner")
    monkeypatch.setenv("SYNCCTL_ROLE_PREFIX", prefix)

    with pytest.raises(MigrationError, match=f"GRANT {prefix}_owner TO {prefix}_outsider"):
        schema.upgrade(_as(dsn, f"{prefix}_outsider"))
    schema.upgrade(_as(dsn, f"{prefix}_dba_one"))
    with psycopg.connect(dsn) as admin:
        owners = admin.execute(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname IN ('shop', 'sync', 'gdpr', 'report', 'syncctl')"
            " UNION SELECT DISTINCT pg_get_userbyid(p.proowner) FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname IN ('shop', 'sync', 'gdpr', 'report')"
        ).fetchall()
        assert owners == [(f"{prefix}_owner",)]
        assert admin.execute("SELECT sync.role_name('webshop')").fetchone() == (
            f"{prefix}_webshop",
        )
    # a second DBA, and a request for another prefix later
    schema.upgrade(_as(dsn, f"{prefix}_dba_two"))
    assert schema.current_revisions(_as(dsn, f"{prefix}_dba_two")) == schema.head_revisions()
    monkeypatch.setenv("SYNCCTL_ROLE_PREFIX", "other")
    with pytest.raises(MigrationError, match=f"installed with role prefix '{prefix}'"):
        schema.upgrade(_as(dsn, f"{prefix}_dba_two"))


def test_what_is_missing_is_named_before_anything_changes(
    prefix: str, fresh_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = fresh_database(f"{prefix}_db")
    with psycopg.connect(dsn, autocommit=True) as admin:
        _logins(admin, prefix, "dba_one")
    monkeypatch.setenv("SYNCCTL_ROLE_PREFIX", prefix)
    with pytest.raises(MigrationError, match=f"CREATE ROLE {prefix}_owner NOLOGIN"):
        schema.upgrade(_as(dsn, f"{prefix}_dba_one"))
    with psycopg.connect(dsn, autocommit=True) as admin:
        for kind in ("owner", "controller", "webshop", "reporting"):
            admin.execute(f"CREATE ROLE {prefix}_{kind} NOLOGIN")
        admin.execute(f"GRANT {prefix}_owner TO {prefix}_dba_one")
    with pytest.raises(MigrationError, match=f"GRANT CREATE ON DATABASE {prefix}_db TO"):
        schema.upgrade(_as(dsn, f"{prefix}_dba_one"))
    with psycopg.connect(dsn, autocommit=True) as admin:
        assert admin.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('sync', 'shop', 'syncctl')"
        ).fetchone() == (0,)
        admin.execute(f"ALTER ROLE {prefix}_owner CREATEROLE")
        admin.execute(f"GRANT CREATE ON DATABASE {prefix}_db TO {prefix}_owner")
    with pytest.raises(MigrationError, match="must be a plain NOLOGIN role"):
        schema.upgrade(_as(dsn, f"{prefix}_dba_one"))
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"ALTER ROLE {prefix}_owner NOCREATEROLE LOGIN")
    # a login owner: anyone who learns its password is every object's owner
    with pytest.raises(MigrationError, match=f"ALTER ROLE {prefix}_owner NOLOGIN"):
        schema.upgrade(_as(dsn, f"{prefix}_dba_one"))
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"ALTER ROLE {prefix}_owner NOLOGIN")
        admin.execute(f"GRANT pg_read_server_files TO {prefix}_owner")
    with pytest.raises(MigrationError, match="it is a member of pg_read_server_files"):
        schema.upgrade(_as(dsn, f"{prefix}_dba_one"))
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"REVOKE pg_read_server_files FROM {prefix}_owner")
        # a hardened database: no temporary tables for PUBLIC (the feed's page is one)
        admin.execute(f"REVOKE TEMPORARY ON DATABASE {prefix}_db FROM PUBLIC")
    with pytest.raises(MigrationError, match=f"GRANT TEMPORARY ON DATABASE {prefix}_db TO"):
        schema.upgrade(_as(dsn, f"{prefix}_dba_one"))
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"GRANT TEMPORARY ON DATABASE {prefix}_db TO {prefix}_owner")
    schema.upgrade(_as(dsn, f"{prefix}_dba_one"))
