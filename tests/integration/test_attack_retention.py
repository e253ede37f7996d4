"""A shop trigger that refuses the retention run's anonymisation of one customer (with the
person's e-mail in its error) stops neither the run nor the daily job for everybody else: that
customer is left for the next run, with an audit row naming the SQLSTATE and the table, never
the value; the others are anonymised."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

from syncctl import gdpr
from tests.integration.test_gdpr_retention import START, _customers, _policy


@pytest.mark.parametrize(
    "raise_",
    [
        "RAISE EXCEPTION 'customer % may not go', OLD.email",
        "RAISE EXCEPTION USING ERRCODE = 'SY500', MESSAGE = 'keep ' || OLD.email",
    ],
    ids=["message", "sy-class"],
)
def test_one_refused_customer_does_not_stop_retention_for_the_others(
    conn: psycopg.Connection[Any], raise_: str
) -> None:
    ids = _customers(conn, 5)
    gdpr.activate_policy(conn, "webshop", actor="dpo:test", now=START)
    refused = ids[2]
    conn.execute(
        "CREATE FUNCTION public.keep_one() RETURNS trigger LANGUAGE plpgsql AS $f$"
        f" BEGIN IF OLD.id = {refused} THEN {raise_}; END IF; RETURN NEW; END $f$;"
        "CREATE TRIGGER keep_one BEFORE UPDATE ON shop.customer"
        " FOR EACH ROW EXECUTE FUNCTION public.keep_one()"
    )
    conn.commit()
    email = conn.execute("SELECT email FROM shop.customer WHERE id = %s", [refused]).fetchone()
    assert email is not None

    report = gdpr.purge(conn, now=START + timedelta(days=800), batch_size=2)

    assert (report.customers, report.refused) == (4, 1)
    anonymised = conn.execute(
        "SELECT customer_id FROM sync.audit WHERE action = 'customer.anonymized'"
        " AND outcome = 'applied' ORDER BY 1"
    ).fetchall()
    assert anonymised == [(i,) for i in ids if i != refused]
    failed = conn.execute(
        "SELECT customer_id, reason FROM sync.audit WHERE action = 'customer.anonymized'"
        " AND outcome = 'failed'"
    ).fetchall()
    assert [f[0] for f in failed] == [refused]
    assert "SQLSTATE" in failed[0][1] and email[0] not in failed[0][1]
    assert (
        conn.execute("SELECT email FROM shop.customer WHERE id = %s", [refused]).fetchone() == email
    )


@pytest.mark.parametrize("table", ["shop.wishlist", "shop.orders"], ids=["delete", "scrub"])
def test_a_refused_row_of_a_set_based_step_does_not_stop_retention(
    conn: psycopg.Connection[Any], table: str
) -> None:
    # a table's rows deleted (wishlist) or scrubbed (orders) set-based: a shop trigger refusing
    # one customer's row fails the step's statement; the step is done customer by customer,
    # that one customer is left for the next run, audited by SQLSTATE and table
    ids = _customers(conn, 4)
    _policy(conn, "wishes", "30 days", ["shop.wishlist", "shop.orders"])
    refused = ids[1]
    conn.execute(
        "CREATE FUNCTION public.keep_row() RETURNS trigger LANGUAGE plpgsql AS $f$"
        f" BEGIN IF OLD.customer_id = {refused} THEN"
        "  RAISE EXCEPTION 'row of % kept', OLD.customer_id; END IF;"
        " RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END; END $f$;"
        f"CREATE TRIGGER keep_row BEFORE UPDATE OR DELETE ON {table}"
        " FOR EACH ROW EXECUTE FUNCTION public.keep_row()"
    )
    conn.commit()

    report = gdpr.purge(conn, now=START + timedelta(days=31), batch_size=10)

    assert report.refused == 1
    assert report.counts[table] == 3
    left = conn.execute(f"SELECT customer_id FROM {table} WHERE customer_id = %s", [refused])
    assert left.fetchall() == [(refused,)]
    failed = conn.execute(
        "SELECT customer_id, reason FROM sync.audit WHERE outcome = 'failed'"
    ).fetchall()
    assert [f[0] for f in failed] == [refused]
    assert table in failed[0][1] and "SQLSTATE" in failed[0][1]
