"""A time the shop passes as NULL is refused before anything is done (SY026). NULL passes every
comparison with the clock, so it used to reach a NOT NULL or CHECK constraint of the engine's
own tables, whose error's DETAIL quotes the whole row: the webshop role read an erasure
request's customer key and the person's digests that way, for any request id."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from syncctl import gdpr
from tests.feed import stage, upserted


def _verified_request(conn: psycopg.Connection[Any]) -> int:
    stage(conn, [upserted("TX00000001", 1, email="anna.null@example.nl")])
    key = gdpr.resolve_subject(conn, number="TX00000001")[0]
    conn.commit()
    request = conn.execute(
        "SELECT gdpr.receive_erasure(%s::text, 'backoffice:op-1')", [str(key)]
    ).fetchone()
    assert request is not None
    conn.execute("SELECT gdpr.verify_erasure(%s, 'backoffice:op-1')", [request[0]])
    conn.commit()
    return int(request[0])


def _refused_without_detail(
    webshop: psycopg.Connection[Any], statement: str, args: list[Any]
) -> None:
    with pytest.raises(psycopg.Error) as refused:
        webshop.execute(statement, args)
    d = refused.value.diag
    assert d.sqlstate == "SY026", (d.sqlstate, d.message_primary)
    assert d.message_detail is None
    assert "anna.null" not in (d.message_primary or "")


def test_null_times_of_the_erasure_steps_are_refused_without_the_row(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    request = _verified_request(conn)
    webshop = as_role("syncctl_webshop")
    _refused_without_detail(
        webshop, "SELECT gdpr.schedule_erasure(%s, 'backoffice:op-1', '0', NULL)", [request]
    )
    _refused_without_detail(
        webshop, "SELECT gdpr.cancel_erasure(%s, 'backoffice:op-1', NULL)", [request]
    )
    _refused_without_detail(
        webshop, "SELECT gdpr.verify_erasure(%s, 'backoffice:op-1', NULL)", [request]
    )
    _refused_without_detail(
        webshop, "SELECT gdpr.receive_erasure('1', 'backoffice:op-1', NULL)", []
    )
    # nothing changed: the request is still verified, and scheduling it with a time works
    state = conn.execute(
        "SELECT state FROM gdpr.erasure_request WHERE id = %s", [request]
    ).fetchone()
    assert state == ("verified",)
    webshop.execute("SELECT gdpr.schedule_erasure(%s, 'backoffice:op-1', '0', now())", [request])


def test_a_null_consent_time_is_refused(conn: psycopg.Connection[Any], as_role: Any) -> None:
    stage(conn, [upserted("TX00000002", 1)])
    key = gdpr.resolve_subject(conn, number="TX00000002")[0]
    conn.execute(
        "SELECT gdpr.create_policy('nulltime', 'Null times', 'Member offers', 'consent',"
        " '1 year', 'created', ARRAY['shop.wishlist'], 'consent')"
    )
    conn.execute("SELECT gdpr.activate_policy('nulltime', 'dpo')")
    conn.commit()
    _refused_without_detail(
        as_role("syncctl_webshop"),
        "SELECT gdpr.record_consent(%s::text, 'nulltime', true, 'webshop', 'webshop', NULL)",
        [str(key)],
    )


def test_a_null_job_time_is_refused_for_the_controller(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    controller = as_role("syncctl_controller")
    _refused_without_detail(
        controller, "SELECT gdpr.purge_batch(NULL::timestamptz, NULL::text, 10)", []
    )
    _refused_without_detail(controller, "SELECT gdpr.execute_due_erasures('scheduler', NULL)", [])
