"""Input discipline on the SQL API: actors and reason codes are identifiers (never an e-mail or
free text), caller-given times do not lie in the future, every text argument is refused when
too long before anything is done, refusals are SY-class and never quote the value, and the
refresh notification names no one."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from tests.feed import stage, upserted

EMAIL = "anna.de.vries@example.nl"
FREE_TEXT = "Anna de Vries asked by phone"
# incompressible: TOAST cannot shrink it, the server holds all 10 MB
HUGE = secrets.token_urlsafe(7_500_000)


def _customer(conn: psycopg.Connection[Any], number: str = "TX00000001") -> int:
    stage(conn, [upserted(number, 1)])
    row = conn.execute("SELECT id FROM shop.customer WHERE customer_number = %s", [number])
    found = row.fetchone()
    assert found is not None
    conn.execute("SELECT gdpr.activate_policy('newsletter', 'dpo')")
    conn.commit()
    return int(found[0])


def _refused(conn: psycopg.Connection[Any], statement: str, *params: Any) -> str:
    """Run a refused statement; its SQLSTATE (after checking the error quotes no value)."""
    with pytest.raises(psycopg.Error) as refusal:
        conn.execute(statement, list(params))
    conn.rollback()
    error = refusal.value
    said = f"{error.diag.message_primary} {error.diag.message_detail} {error.diag.message_hint}"
    for value in params:
        if isinstance(value, str) and len(value) > 3:
            assert value not in said and value[:40] not in said, "the refusal quotes the value"
    assert error.sqlstate is not None
    return error.sqlstate


ACTOR_CALLS = [
    "SELECT sync.anonymise_from_backoffice(%(cid)s, 'AVG', %(actor)s)",
    "SELECT sync.anonymise_customer('TX00000001', 'AVG', %(actor)s)",
    "SELECT gdpr.record_consent(%(cid)s, 'newsletter', true, 'webshop', %(actor)s)",
    'SELECT gdpr.rectify(%(cid)s, \'{"preferred_language": "nl"}\', %(actor)s)',
    "SELECT gdpr.receive_erasure(%(cid)s, %(actor)s)",
    "SELECT gdpr.verify_erasure(%(request)s, %(actor)s)",
    "SELECT gdpr.schedule_erasure(%(request)s, %(actor)s, '1 day')",
    "SELECT gdpr.cancel_erasure(%(request)s, %(actor)s)",
    "SELECT gdpr.revise_policy('newsletter', 'Weekly offers.', %(actor)s)",
    "SELECT sync.repair_redirected_link('TX00000001', %(actor)s)",
    "SELECT gdpr.rotate_proof_key(%(actor)s)",
    "SELECT sync.merge_customer('TX00000001', 'TX00000002', NULL, %(actor)s)",
    "SELECT sync.merge_customers(ARRAY['TX00000001'], 'TX00000002', %(actor)s)",
    "SELECT sync.discard_dead_letter(1, %(actor)s)",
    "SELECT sync.adopt_local_customer(1, 2, %(actor)s)",
]


@pytest.mark.parametrize("actor", [EMAIL, FREE_TEXT, "", "x" * 65, "ops:\n1"])
def test_actors_are_identifiers_never_an_email_or_free_text(
    conn: psycopg.Connection[Any], actor: str
) -> None:
    cid = _customer(conn)
    request = conn.execute("SELECT gdpr.receive_erasure(%s, 'bo:1')", [cid]).fetchone()
    conn.commit()
    assert request is not None
    for call in ACTOR_CALLS:
        params = {"cid": cid, "request": request[0], "actor": actor}
        with pytest.raises(psycopg.Error) as refusal:
            conn.execute(call, params)
        conn.rollback()
        assert refusal.value.sqlstate == "SY023", call
        if actor:
            assert actor not in str(refusal.value), call
    actors = [a for (a,) in conn.execute("SELECT actor FROM sync.audit")]
    assert all("@" not in a and " " not in a for a in actors), actors


@pytest.mark.parametrize("reason", [EMAIL, FREE_TEXT, "AVG; --", ""])
def test_reason_codes_are_identifiers(conn: psycopg.Connection[Any], reason: str) -> None:
    cid = _customer(conn)
    assert (
        _refused(conn, "SELECT sync.anonymise_from_backoffice(%s, %s, 'bo:1')", cid, reason)
        == "SY023"
    )
    outbox = conn.execute("SELECT count(*) FROM sync.outbox").fetchone()
    assert outbox == (0,), "a refused anonymisation queued an outbound event"


def test_a_consent_in_the_future_is_refused_and_cannot_outlive_a_withdrawal(
    conn: psycopg.Connection[Any],
) -> None:
    cid = _customer(conn)
    far = datetime(2099, 1, 1, tzinfo=UTC)
    record = "SELECT gdpr.record_consent(%s, 'newsletter', %s, 'webshop', 'webshop', %s)"
    assert _refused(conn, record, cid, True, far) == "SY026"
    ahead = datetime.now(UTC) + timedelta(hours=1)
    assert _refused(conn, record, cid, True, ahead) == "SY026"
    # within the documented clock skew: taken as given
    conn.execute(record, [cid, True, datetime.now(UTC) + timedelta(minutes=1)])
    conn.execute(record, [cid, False, datetime.now(UTC) + timedelta(minutes=2)])
    conn.commit()
    held = conn.execute("SELECT gdpr.has_consent(%s, 'newsletter')", [cid]).fetchone()
    assert held == (False,), "the withdrawal made now does not count"


def test_erasure_times_in_the_future_are_refused(conn: psycopg.Connection[Any]) -> None:
    cid = _customer(conn)
    later = datetime.now(UTC) + timedelta(days=30)
    assert _refused(conn, "SELECT gdpr.receive_erasure(%s, 'bo:1', %s)", cid, later) == "SY026"
    request = conn.execute("SELECT gdpr.receive_erasure(%s, 'bo:1')", [cid]).fetchone()
    conn.commit()
    assert request is not None
    for call in (
        "SELECT gdpr.verify_erasure(%s, 'bo:1', %s)",
        "SELECT gdpr.schedule_erasure(%s, 'bo:1', '0', %s)",
        "SELECT gdpr.cancel_erasure(%s, 'bo:1', %s)",
    ):
        assert _refused(conn, call, request[0], later) == "SY026", call


HUGE_CALLS = [
    ("SELECT * FROM sync.login('TX00000002', %(huge)s)", "SY025"),
    ("SELECT sync.request_refresh(%(huge)s)", "SY027"),
    # refused before the look-up, whatever the plan (no redirect is recorded here)
    ("SELECT sync.resolve_customer_number(%(huge)s)", "SY025"),
    ("SELECT sync.resolve_customer(%(huge)s)", "SY025"),
    ("SELECT gdpr.has_consent(%(cid)s, %(huge)s)", "SY025"),
    ("SELECT gdpr.record_consent(%(cid)s, %(huge)s, true)", "SY025"),
    ("SELECT gdpr.record_consent(%(cid)s, 'newsletter', true, %(huge)s)", "SY025"),
    ("SELECT gdpr.record_consent(%(cid)s, 'newsletter', true, 'webshop', %(huge)s)", "SY023"),
    ("SELECT sync.anonymise_from_backoffice(%(cid)s, %(huge)s, 'bo:1')", "SY023"),
    ("SELECT sync.anonymise_from_backoffice(%(cid)s, 'AVG', %(huge)s)", "SY023"),
    (
        "SELECT gdpr.rectify(%(cid)s,"
        " jsonb_build_object('preferred_language', %(huge)s::text), 'bo:1')",
        "SY025",
    ),
    ("SELECT gdpr.receive_erasure(%(cid)s, %(huge)s)", "SY023"),
    # the customer by key as text
    ("SELECT gdpr.has_consent(%(huge)s, 'newsletter')", "SY025"),
    ("SELECT gdpr.record_consent(%(huge)s, 'newsletter', true)", "SY025"),
    ("SELECT * FROM gdpr.subject_data(%(huge)s)", "SY025"),
    ("SELECT gdpr.receive_erasure(%(huge)s, 'bo:1')", "SY025"),
]


def test_a_ten_megabyte_argument_is_refused_before_anything_is_done(
    conn: psycopg.Connection[Any],
) -> None:
    cid = _customer(conn)
    before = conn.execute(
        "SELECT (SELECT count(*) FROM sync.link_conflict), (SELECT count(*) FROM shop.customer),"
        " (SELECT count(*) FROM sync.refresh_request), (SELECT count(*) FROM sync.audit),"
        " (SELECT count(*) FROM gdpr.consent)"
    ).fetchone()
    for call, code in HUGE_CALLS:
        with pytest.raises(psycopg.Error) as refusal:
            conn.execute(call, {"cid": cid, "huge": HUGE})
        conn.rollback()
        assert refusal.value.sqlstate == code, call
        assert len(str(refusal.value)) < 500, "the refusal quotes the value"
        assert HUGE[:20] not in str(refusal.value)
    after = conn.execute(
        "SELECT (SELECT count(*) FROM sync.link_conflict), (SELECT count(*) FROM shop.customer),"
        " (SELECT count(*) FROM sync.refresh_request), (SELECT count(*) FROM sync.audit),"
        " (SELECT count(*) FROM gdpr.consent)"
    ).fetchone()
    assert after == before


def test_rectify_measures_its_fields_as_given_not_as_stored(
    conn: psycopg.Connection[Any],
) -> None:
    """A value read from a table reaches the function compressed: two megabytes of one letter
    are a few kilobytes on disk. The 64 kB limit is on what the fields hold."""
    cid = _customer(conn)
    conn.execute(
        "CREATE TEMP TABLE big AS"
        " SELECT jsonb_build_object('preferred_language', repeat('a', 2000000)) AS fields"
    )
    stored = conn.execute("SELECT pg_column_size(fields) FROM big").fetchone()
    assert stored is not None and stored[0] < 65536, "the value was not stored compressed"
    with pytest.raises(psycopg.Error) as refusal:
        conn.execute("SELECT gdpr.rectify(%s, fields, 'bo:1') FROM big", [cid])
    assert refusal.value.sqlstate == "SY025"


@pytest.mark.parametrize(
    "number", ["../../admin/x", "TX0001\n", "TX\x01", "TX 0001", "", "TX0001@x", "x" * 33]
)
def test_a_refresh_is_requested_for_customer_numbers_only(
    conn: psycopg.Connection[Any], number: str
) -> None:
    assert _refused(conn, "SELECT sync.request_refresh(%s)", number) == "SY027"
    assert conn.execute("SELECT count(*) FROM sync.refresh_request").fetchone() == (0,)


def test_a_listening_plain_session_learns_no_customer_number(
    conn: psycopg.Connection[Any], as_role: Any
) -> None:
    conn.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'plain_listener')"
        " THEN CREATE ROLE plain_listener NOLOGIN; END IF; END $$"
    )
    conn.commit()
    listener = as_role("plain_listener")
    listener.execute("LISTEN syncctl_refresh")
    conn.execute("SELECT * FROM sync.login('TX00000077', 'a@b.nl')")
    conn.commit()
    conn.execute("SELECT sync.request_refresh('TX00000078')")
    conn.commit()
    payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=2)]
    assert len(payloads) >= 1, "no notification reached the listener"
    for payload in payloads:
        assert "TX0000007" not in payload
        assert payload == "", "the notification carries something"
