"""A rectification of a column that holds a consent field is recorded as what it is: a
rectification by the actor who asked for it, not a decision of the back office's that nobody
took. A plain local change of the column stays the back office's."""

from __future__ import annotations

from typing import Any

import psycopg


def _local_customer(conn: psycopg.Connection[Any], email: str) -> int:
    row = conn.execute(
        "INSERT INTO shop.customer (email) VALUES (%s) RETURNING id", [email]
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_rectified_consent_names_the_rectification_and_its_actor(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    conn.execute("SELECT gdpr.activate_policy('newsletter', 'dpo')")
    cid = _local_customer(conn, "rectified@example.nl")
    conn.commit()
    shop = as_role("syncctl_webshop")
    shop.execute(
        "SELECT gdpr.rectify(%s, '{\"newsletter_opt_in\": true}', 'backoffice:op-17')", [cid]
    )
    recorded = conn.execute(
        "SELECT granted, source, actor FROM gdpr.consent WHERE customer_key = %s::text",
        [cid],
    ).fetchall()
    assert recorded == [(True, "rectification", "backoffice:op-17")]
    # the job's name lasts for the rectification only: the shop's own change after it, in the
    # same transaction, is the back office's again
    conn.execute("SELECT gdpr.rectify(%s, '{\"newsletter_opt_in\": false}', 'bo:3')", [cid])
    conn.execute("UPDATE shop.customer SET newsletter_opt_in = true WHERE id = %s", [cid])
    conn.commit()
    last = conn.execute(
        "SELECT granted, source, actor FROM gdpr.consent WHERE customer_key = %s::text "
        "ORDER BY id DESC LIMIT 1",
        [cid],
    ).fetchone()
    assert last == (True, "back_office", "back_office")


def test_a_refused_rectification_leaves_no_job_named(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    conn.execute("SELECT gdpr.activate_policy('newsletter', 'dpo')")
    cid = _local_customer(conn, "refused@example.nl")
    conn.commit()
    shop = as_role("syncctl_webshop")
    # a value that does not fit its field: refused inside the rectification
    try:
        shop.execute(
            "SELECT gdpr.rectify(%s, '{\"newsletter_opt_in\": \"perhaps\"}', 'bo:2')", [cid]
        )
    except psycopg.Error as error:
        assert error.sqlstate == "SY085"
    else:
        raise AssertionError("the rectification was not refused")
    shop.rollback()
    conn.execute("UPDATE shop.customer SET newsletter_opt_in = true WHERE id = %s", [cid])
    conn.commit()
    assert conn.execute(
        "SELECT source, actor FROM gdpr.consent WHERE customer_key = %s::text", [cid]
    ).fetchall() == [("back_office", "back_office")]
