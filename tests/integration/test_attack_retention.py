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
from tests.integration.test_gdpr_retention import START, _customers


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
