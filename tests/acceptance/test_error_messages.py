"""Every error names its cause, in one line, without a traceback or a password: the database
connection (libpq's message and where it went), an unmigrated schema (run syncctl db
upgrade), a privilege the role lacks (the object), tritonX (host and status), a file that
cannot be written, a missing token or a URL without scheme (at once, never retried), and in
JSON log mode the final error is a JSON line too."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.acceptance.conftest import SYNCCTL, TOKEN, Simulator, syncctl
from tests.feed import stage, upserted


def _fails_in_one_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr
    return result.stderr


def test_connection_failures_say_what_libpq_said_and_where_without_the_password(
    dsn: str,
) -> None:
    params = conninfo_to_dict(dsn)
    missing = make_conninfo(dsn, dbname="no_such_database")
    err = _fails_in_one_line(
        syncctl("status", dsn=missing), 'database "no_such_database" does not exist'
    )
    assert f"role {params.get('user')}" in err and "database no_such_database" in err
    secret = "pw-" + secrets.token_hex(8)
    refused = f"postgresql://someone:{secret}@127.0.0.1:1/shopdb"
    for command in (["status"], ["report", "actions"], ["db", "current"]):
        err = _fails_in_one_line(
            syncctl(*command, dsn=refused), "127.0.0.1", "port 1", "role someone"
        )
        assert "database shopdb" in err and "SQLSTATE None" not in err
        assert secret not in err


@pytest.fixture
def unmigrated(server_dsn: Callable[[str], str]) -> Iterator[str]:
    name = "unmigrated_" + secrets.token_hex(4)
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield server_dsn(name)
        finally:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.slow
def test_every_command_on_an_unmigrated_database_says_run_db_upgrade(unmigrated: str) -> None:
    for command in (
        ["report", "actions"],
        ["coverage"],
        ["status"],
        ["links", "check"],
        ["outbox", "list"],
        ["policy", "list"],
        ["deadletter", "list"],
    ):
        err = _fails_in_one_line(syncctl(*command, dsn=unmigrated), "run `syncctl db upgrade`")
        assert "does not exist" not in err, command


@pytest.fixture
def bare_role(dsn: str, conn: psycopg.Connection[Any]) -> Iterator[str]:
    """A login role that may read the schema revision and nothing else."""
    role = "bare_" + secrets.token_hex(4)
    conn.execute(f"CREATE ROLE {role} LOGIN")
    conn.execute(f"GRANT USAGE ON SCHEMA syncctl TO {role}")
    conn.execute(f"GRANT SELECT ON syncctl.alembic_version TO {role}")
    conn.commit()
    try:
        yield make_conninfo(dsn, user=role)
    finally:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")
        conn.commit()


def test_a_privilege_error_names_the_object(
    bare_role: str, simulator_factory: Callable[..., Simulator]
) -> None:
    _fails_in_one_line(
        syncctl("report", "actions", dsn=bare_role), "permission denied for schema report"
    )
    simulator = simulator_factory("--customers", "10")
    daemon = subprocess.Popen(
        [
            *SYNCCTL,
            *("--dsn", bare_role, "--tritonx-url", simulator.url, "--tritonx-token", TOKEN),
            *("run", "--poll-interval", "0.1"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert daemon.stderr is not None
    try:
        errors = []
        for line in daemon.stderr:
            if "permission denied" in line or "database error" in line:
                errors.append(line)
                if len(errors) == 2:
                    break
    finally:
        daemon.terminate()
        daemon.communicate(timeout=60)
    assert errors and all("permission denied for" in line for line in errors), errors


def test_tritonx_errors_name_the_host_and_the_status(
    dsn: str, simulator_factory: Callable[..., Simulator]
) -> None:
    simulator = simulator_factory("--customers", "10")
    host = simulator.url.split("://", 1)[1]
    wrong = syncctl("--tritonx-url", simulator.url, "--tritonx-token", "wrong", "status", dsn=dsn)
    assert f"tritonX at {host} refused the token: 401" in wrong.stdout, wrong.stdout
    away = syncctl("--tritonx-url", "http://127.0.0.1:1", "--tritonx-token", "t", "status", dsn=dsn)
    refused = "tritonX at 127.0.0.1:1 cannot be reached: connection refused"
    assert refused in away.stdout, away.stdout


def test_no_token_and_a_url_without_scheme_are_refused_at_once(dsn: str) -> None:
    no_token = syncctl("--tritonx-url", "http://127.0.0.1:1", "pull", dsn=dsn, timeout=60)
    _fails_in_one_line(no_token, "no tritonX token", "--tritonx-token", "TRITONX_TOKEN")
    schemeless = syncctl(
        "--tritonx-url", "tritonx.example.com", "--tritonx-token", "t", "pull", dsn=dsn, timeout=60
    )
    err = _fails_in_one_line(schemeless, "needs a scheme and a host")
    assert "retry" not in err
    no_url = syncctl("pull", dsn=dsn, timeout=60)
    _fails_in_one_line(no_url, "no tritonX URL", "--tritonx-url")
    # a missing or contradictory setting is a usage error (docs/operations.md)
    assert (no_token.returncode, schemeless.returncode, no_url.returncode) == (2, 2, 2)


def test_a_file_that_cannot_be_written_is_one_line(
    dsn: str, conn: psycopg.Connection[Any], tmp_path: Any
) -> None:
    stage(conn, [upserted("TX00000001", 1)])
    target = tmp_path / "missing" / "export.json"
    err = _fails_in_one_line(
        syncctl("export", "TX00000001", "--output", str(target), dsn=dsn),
        "No such file or directory",
        str(target),
    )
    assert len(err.strip().splitlines()) == 1, err


def test_in_json_log_mode_the_final_error_is_json(dsn: str) -> None:
    result = syncctl("--log-format", "json", "pull", dsn=dsn, env={"TRITONX_URL": ""})
    assert result.returncode == 2  # a missing setting: usage
    last = json.loads(result.stderr.strip().splitlines()[-1])
    assert last["level"] == "error" and "--tritonx-url" in last["message"]
    assert last["exit_code"] == 2
    usage = syncctl("--log-format", "json", "db", "downgrade", "base", dsn=dsn)
    assert json.loads(usage.stderr.strip().splitlines()[-1])["exit_code"] == 2


def test_the_simulators_admin_commands_name_an_unreachable_simulator() -> None:
    _fails_in_one_line(
        syncctl("simulator", "merge", "--url", "http://127.0.0.1:1", "TX1", "TX2"),
        "the simulator at http://127.0.0.1:1 cannot be reached: connection refused",
    )
    _fails_in_one_line(
        syncctl("simulator", "anonymise", "--url", "127.0.0.1:1", "TX1"),
        "not an http:// or https:// URL",
    )
