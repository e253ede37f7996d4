"""What a new operator meets with a real database configured: no invented customers because a
tritonX URL was forgotten, long repairs that keep their work when interrupted, and a
downgrade that says what it drops and asks first."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.acceptance.conftest import SYNCCTL, syncctl

NO_TRITONX = {"TRITONX_URL": "", "TRITONX_TOKEN": ""}


def _one(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    conn.commit()
    assert row is not None
    return row[0]


def test_a_configured_database_gets_no_simulator_without_being_asked(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    for command in (["pull"], ["run", "--poll-interval", "0.1"], ["bootstrap"]):
        refused = syncctl(*command, dsn=dsn, env=NO_TRITONX, timeout=120)
        assert refused.returncode != 0, command
        assert "--tritonx-url" in refused.stderr and "TRITONX_URL" in refused.stderr, command
        assert "--simulator" in refused.stderr, command
        assert "Traceback" not in refused.stderr
    assert _one(conn, "SELECT count(*) FROM shop.customer") == 0
    assert _one(conn, "SELECT count(*) FROM sync.inbox") == 0
    asked = syncctl("pull", "--simulator", "--customers", "40", dsn=dsn, env=NO_TRITONX)
    assert asked.returncode == 0, asked.stderr
    assert _one(conn, "SELECT count(*) FROM shop.customer") == 40


def _adoptable(conn: psycopg.Connection[Any], n: int) -> None:
    """n linked customers (their e-mail written by a tritonX snapshot), each with an unlinked
    local twin of the same e-mail."""
    conn.execute(
        "INSERT INTO shop.customer (customer_number, email, tritonx_version)"
        " SELECT 'TX' || lpad(i::text, 8, '0'), 'c' || i || '@x.nl', 1"
        " FROM generate_series(1, %(n)s) AS i",
        {"n": n},
    )
    conn.execute(
        "INSERT INTO shop.customer (email) SELECT 'C' || i || '@X.nl '"
        " FROM generate_series(1, %(n)s) AS i",
        {"n": n},
    )
    conn.commit()


@pytest.mark.slow
def test_an_interrupted_links_repair_keeps_each_fix_and_says_how_to_go_on(
    dsn: str, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    # enough fixes that the interrupt, sent after the first progress line with fixes done
    # (a second in), lands mid-way at ten times today's rate of some 60 fixes a second
    total = 600
    _adoptable(conn, total)
    with (tmp_path / "stdout").open("w+") as out_file:
        process = subprocess.Popen(
            [*SYNCCTL, "--dsn", dsn, "links", "repair", "--actor", "ops:test"],
            stdout=out_file,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        seen = []
        for line in process.stderr:
            seen.append(line)
            if re.match(r"fixes: [1-9]", line):
                break  # fixes are committed: interrupt as Ctrl-C would
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
        out_file.seek(0)
        assert process.returncode == 130, (seen, out_file.read(), err)
    assert "syncctl links repair" in err and "again" in err, err
    kept = _one(conn, "SELECT count(*) FROM sync.audit WHERE action = 'customer.adopted'")
    assert 0 < kept < total, "an interrupted repair keeps the fixes it committed"
    assert _one(conn, "SELECT count(*) FROM shop.customer WHERE customer_number IS NULL") == (
        total - kept
    )
    assert (
        _one(conn, "SELECT count(DISTINCT at) FROM sync.audit WHERE action = 'customer.adopted'")
        == kept
    )
    again = syncctl("links", "repair", "--actor", "ops:test", dsn=dsn)
    assert again.returncode == 0, again.stderr
    assert f"done: {total - kept} changes" in again.stdout
    assert _one(conn, "SELECT count(*) FROM sync.audit WHERE action = 'customer.adopted'") == total


def test_db_downgrade_says_what_goes_and_asks_first(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    conn.execute(
        "CREATE TABLE public.shop_orders (id int PRIMARY KEY,"
        " customer_number text CONSTRAINT shop_orders_customer"
        " REFERENCES sync.customer_link (customer_number))"
    )
    conn.commit()
    refused = syncctl("db", "downgrade", "base", dsn=dsn, input="y\n")
    assert refused.returncode == 2, refused.stderr
    assert "--yes" in refused.stderr
    assert "drops schema sync" in refused.stdout
    # the shop's tables are not the engine's: the reference shop's included, they stay
    assert "drops schema shop" not in refused.stdout
    assert "shop_orders_customer on public.shop_orders -> sync.customer_link" in refused.stdout
    # the engine's triggers on the shop's customer table go with its functions
    assert "drops the trigger customer_deleted_by_shop on shop.customer" in refused.stdout
    assert _one(conn, "SELECT to_regclass('sync.inbox') IS NOT NULL")
    done = syncctl("db", "downgrade", "base", "--yes", dsn=dsn)
    assert done.returncode == 0, done.stderr
    assert "database at revision base" in done.stdout
    assert _one(conn, "SELECT to_regclass('sync.inbox') IS NULL")
    assert (
        _one(conn, "SELECT count(*) FROM pg_constraint WHERE conname = 'shop_orders_customer'") == 0
    )
    assert _one(conn, "SELECT count(*) FROM shop.customer") == 0


def test_db_downgrade_counts_the_rows_it_drops_without_statistics(
    dsn: str, conn: psycopg.Connection[Any]
) -> None:
    # a restored backup, or a server after a crash, has no statistics yet: the rows that go must
    # be counted all the same, never shown as none
    conn.execute("INSERT INTO sync.cursor (source, position) VALUES ('tritonx', '41')")
    conn.commit()
    tables = conn.execute(
        "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables"
        " WHERE schemaname = 'sync'"
    ).fetchall()
    held = sum(_one(conn, f"SELECT count(*) FROM {table}") for (table,) in tables)
    _one(conn, "SELECT pg_stat_reset()")
    refused = syncctl("db", "downgrade", "base", dsn=dsn, input="y\n")
    assert refused.returncode == 2, refused.stderr
    assert f"drops schema sync: {len(tables)} tables, {held:,} rows" in refused.stdout, (
        refused.stdout
    )


def test_db_downgrade_at_a_terminal_changes_nothing_unless_confirmed(dsn: str) -> None:
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [*SYNCCTL, "--dsn", dsn, "db", "downgrade", "base"],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(leader, b"n\n")
        out, err = process.communicate(timeout=120)
    finally:
        os.close(leader)
        os.close(follower)
    assert process.returncode == 1, (out, err)
    assert "nothing changed" in err
    with psycopg.connect(dsn) as check:
        assert check.execute("SELECT to_regclass('sync.inbox') IS NOT NULL").fetchone() == (True,)
