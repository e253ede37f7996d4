"""The registry: customer-linked tables are discovered from foreign keys, every column of
them needs a PII strategy (the coverage check fails otherwise), and dry runs print the same
per-table counts the real run records in the audit."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import psycopg
from click.testing import CliRunner

from syncctl import engine
from syncctl.cli.engine import anonymise, coverage, merge
from tests.feed import stage, upserted


def test_linked_tables_are_discovered_from_foreign_keys(conn: psycopg.Connection[Any]) -> None:
    def linked() -> set[str]:
        return {t for (t,) in conn.execute("SELECT qualified_name FROM sync.customer_links()")}

    assert linked() == {
        "shop.address",
        "shop.orders",
        "shop.favourite",
        "shop.wishlist",
        "shop.cart",
        "shop.newsletter_subscription",
        "shop.login_identity",
        # the GDPR schema's customer data (revision 0013_gdpr)
        "gdpr.consent",
        "gdpr.erasure_request",
    }
    conn.execute("CREATE SCHEMA loyalty")
    conn.execute(
        "CREATE TABLE loyalty.points (customer_id bigint REFERENCES shop.customer (id),"
        " points integer)"
    )
    assert "loyalty.points" in linked()


def test_reference_shop_is_fully_classified(conn: psycopg.Connection[Any]) -> None:
    assert conn.execute("SELECT * FROM sync.coverage_defects()").fetchall() == []
    assert engine.coverage_defects(conn) == []


def test_coverage_fails_after_a_column_is_added(conn: psycopg.Connection[Any], dsn: str) -> None:
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)
    assert runner.invoke(coverage, [], obj=settings).exit_code == 0

    conn.execute("ALTER TABLE shop.orders ADD COLUMN gift_message text")
    conn.commit()

    assert conn.execute("SELECT * FROM sync.unclassified_columns()").fetchall() == [
        ("shop.orders", "gift_message")
    ]
    result = runner.invoke(coverage, [], obj=settings)
    assert result.exit_code != 0
    assert "shop.orders.gift_message: column has no PII strategy" in result.output


def test_a_new_linked_table_needs_every_column_classified_and_an_index(
    conn: psycopg.Connection[Any],
) -> None:
    conn.execute(
        "CREATE TABLE shop.review (id bigint PRIMARY KEY,"
        " customer_id bigint REFERENCES shop.customer (id), body text)"
    )
    defects = {(d.table, d.column, d.kind) for d in engine.coverage_defects(conn)}
    assert defects == {
        ("shop.review", "id", "unclassified"),
        ("shop.review", "customer_id", "unclassified"),
        ("shop.review", "body", "unclassified"),
        ("shop.review", "customer_id", "unindexed"),
        # the engine works on it as the owner role, which a DBA grants what it needs
        ("shop.review", None, "privilege"),
    }
    conn.execute("GRANT SELECT, UPDATE, DELETE ON shop.review TO syncctl_owner")
    conn.execute(
        "INSERT INTO sync.pii_column VALUES ('shop', 'review', 'id', 'not_personal', NULL),"
        " ('shop', 'review', 'customer_id', 'not_personal', NULL),"
        " ('shop', 'review', 'body', 'null', NULL)"
    )
    conn.execute("CREATE INDEX ON shop.review (customer_id)")
    assert engine.coverage_defects(conn) == []


def _customer_with_rows(conn: psycopg.Connection[Any], number: str) -> int:
    stage(conn, [upserted(number, 1)])
    row = conn.execute(
        "SELECT id FROM shop.customer WHERE customer_number = %s", [number]
    ).fetchone()
    assert row is not None
    for n in range(3):
        conn.execute(
            "INSERT INTO shop.orders (customer_id, order_number) VALUES (%s, %s)",
            [row[0], f"{number}-{n}"],
        )
    conn.execute("INSERT INTO shop.favourite (customer_id, sku) VALUES (%s, 'A')", [row[0]])
    conn.execute("INSERT INTO shop.cart (customer_id) VALUES (%s)", [row[0]])
    conn.commit()
    return int(row[0])


def _last_counts(conn: psycopg.Connection[Any], action: str) -> dict[str, int]:
    row = conn.execute(
        "SELECT counts FROM sync.audit WHERE action = %s ORDER BY id DESC LIMIT 1", [action]
    ).fetchone()
    assert row is not None
    return dict(row[0])


def test_merge_dry_run_counts_equal_the_real_run(conn: psycopg.Connection[Any], dsn: str) -> None:
    _customer_with_rows(conn, "TX00000501")
    _customer_with_rows(conn, "TX00000502")
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)

    planned = engine.merge(conn, "TX00000501", "TX00000502", actor="ops:test", dry_run=True)
    dry = runner.invoke(merge, ["TX00000501", "TX00000502", "--dry-run"], obj=settings)
    assert conn.execute("SELECT count(*) FROM sync.redirect").fetchone() == (0,)
    real = runner.invoke(merge, ["TX00000501", "TX00000502", "--actor", "ops:test"], obj=settings)

    assert dry.exit_code == 0 and real.exit_code == 0, dry.output + real.output
    assert planned.counts == {
        "shop.orders": 3,
        "shop.favourite": 1,
        "shop.cart": 1,
        "shop.customer": 1,
    }
    assert _last_counts(conn, "customer.merged") == planned.counts
    assert "shop.orders" in dry.output and "resolved by rule union" in dry.output
    assert dry.output.splitlines()[1:] != [] and "dry run: would apply" in dry.output


def test_merge_dry_run_reports_refusals(conn: psycopg.Connection[Any], dsn: str) -> None:
    _customer_with_rows(conn, "TX00000511")
    result = CliRunner().invoke(
        merge, ["TX00000511", "TX00000511", "--dry-run"], obj=SimpleNamespace(dsn=dsn)
    )
    assert result.exit_code == 1 and "merge of TX00000511 into itself" in result.output
    # the refusal's code, as docs/errors.md lists it
    assert "(SQLSTATE SY001)" in result.output


def test_several_customers_merge_into_one_in_one_command(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    """`syncctl merge OLD... SURVIVOR`: an N-way merge in one transaction
    (sync.merge_customers); its dry run carries the merge out and rolls it back, so it counts
    what the run then does (the second old customer's favourite clashes with the one the first
    brought along); an impossible pair refuses the whole command, and nothing is merged."""
    for number in ("TX00000531", "TX00000532", "TX00000533"):
        _customer_with_rows(conn, number)
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)
    numbers = ["TX00000531", "TX00000532", "TX00000533"]

    refused = runner.invoke(merge, ["TX00000531", "TX00000533", "TX00000533"], obj=settings)
    assert refused.exit_code != 0 and "into itself" in refused.output
    dry = runner.invoke(merge, [*numbers, "--dry-run"], obj=settings)
    assert conn.execute("SELECT count(*) FROM sync.redirect").fetchone() == (0,)
    real = runner.invoke(merge, [*numbers, "--actor", "ops:test"], obj=settings)

    assert dry.exit_code == 0 and real.exit_code == 0, dry.output + real.output
    assert "dry run: would apply (2 customers merged)" in dry.output
    assert "done: applied (2 customers merged)" in real.output
    assert dry.output.splitlines()[1:] == real.output.splitlines()[1:]
    assert "shop.orders" in real.output
    survivor = conn.execute("SELECT syncmap.key_of('TX00000533')::integer").fetchone()
    assert survivor is not None
    assert conn.execute(
        "SELECT count(*) FROM shop.orders WHERE customer_id = %s", [survivor[0]]
    ).fetchone() == (9,)
    assert conn.execute(
        "SELECT count(*) FROM sync.redirect WHERE survivor_number = 'TX00000533'"
    ).fetchone() == (2,)


def test_anonymise_dry_run_counts_equal_the_real_run(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    _customer_with_rows(conn, "TX00000521")
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)
    args = ["TX00000521", "--reason-code", "AVG", "--actor", "ops:test"]

    planned = engine.anonymise(conn, "TX00000521", reason_code="AVG", actor="x", dry_run=True)
    dry = runner.invoke(anonymise, [*args, "--dry-run"], obj=settings)
    assert conn.execute("SELECT count(*) FROM sync.tombstone").fetchone() == (0,)
    real = runner.invoke(anonymise, args, obj=settings)

    assert dry.exit_code == 0 and real.exit_code == 0, dry.output + real.output
    assert planned.counts["shop.orders"] == 3 and planned.counts["shop.cart"] == 1
    assert _last_counts(conn, "customer.anonymized") == planned.counts
    assert conn.execute("SELECT count(*) FROM sync.outbox").fetchone() == (1,)
    again = runner.invoke(anonymise, args, obj=settings)
    assert again.exit_code == 1 and "already anonymised" in again.output
