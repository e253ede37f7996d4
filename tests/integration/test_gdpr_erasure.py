"""Erasure requests: received -> verified -> scheduled -> done, cancelled in the grace period,
failed and retried; executing anonymises through the back-office path (the outbound event for
tritonX is queued) and proves it with a residue search over every text and JSON column, whose
result is kept as counts; the person's values are never stored, only digests, cleared at the
end."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from syncctl import errors, gdpr, schema
from syncctl.cli.gdpr import erasure
from tests.feed import stage, upserted

NOW = datetime(2026, 11, 1, tzinfo=UTC)
VALUES = ("anna.erase@example.nl", "Keizersgracht", "1015 CJ", "+31 6 1234 5678", "LC-0001")


def _customer(conn: psycopg.Connection[Any]) -> int:
    stage(conn, [upserted("TX00000001", 1, email=VALUES[0])])
    cid = gdpr.resolve_subject(conn, number="TX00000001")[0]
    conn.execute(
        "INSERT INTO shop.orders (customer_id, order_number, delivery_name, delivery_postcode,"
        " contact_email) VALUES (%s, 'O-1', 'Anna van der Berg', '1015 CJ', %s)",
        [cid, VALUES[0]],
    )
    conn.execute(
        "INSERT INTO shop.wishlist (customer_id, sku, note) VALUES (%s, 'w',"
        " 'cadeau voor Anna van der Berg')",
        [cid],
    )
    conn.commit()
    return cid


def _everything(conn: psycopg.Connection[Any]) -> str:
    rows = conn.execute(
        "SELECT string_agg(to_jsonb(e)::text, ' ') FROM gdpr.erasure_request AS e"
    ).fetchone()
    return str(rows[0] if rows else "")


def test_lifecycle_erases_queues_and_proves(conn: psycopg.Connection[Any]) -> None:
    cid = _customer(conn)
    # residue the anonymisation cannot know about: someone kept a copy in a table of their own
    conn.execute("CREATE TABLE public.notes (id int PRIMARY KEY, body text, extra jsonb)")
    conn.execute(
        "INSERT INTO public.notes VALUES (1, 'call Anna van der Berg back', NULL),"
        " (2, NULL, %s::jsonb)",
        ['{"contact": {"mail": "ANNA.ERASE@example.nl "}}'],
    )
    conn.commit()

    request = gdpr.receive_erasure(conn, cid, actor="backoffice:test", now=NOW)
    with pytest.raises(errors.GdprRefusal) as twice:
        gdpr.receive_erasure(conn, cid, actor="backoffice:test", now=NOW)
    assert twice.value.sqlstate == "SY087"
    with pytest.raises(errors.GdprRefusal) as early:
        gdpr.execute_erasure(conn, request, actor="backoffice:test", now=NOW)
    assert early.value.sqlstate == "SY087"
    gdpr.verify_erasure(conn, request, actor="backoffice:test", now=NOW)
    stored = _everything(conn)
    for value in VALUES:
        assert value not in stored and value.lower() not in stored
    due = gdpr.schedule_erasure(conn, request, actor="backoffice:test", grace_days=7, now=NOW)
    assert due == NOW + timedelta(days=7)
    with pytest.raises(errors.GdprRefusal):
        gdpr.execute_erasure(conn, request, actor="backoffice:test", now=NOW)

    # the residue the notes hold makes the first attempt fail, with counts only
    proof = gdpr.execute_erasure(conn, request, actor="backoffice:test", now=due)
    assert proof.state == "failed"
    assert proof.residue == {"public.notes.body": 1, "public.notes.extra": 1}
    assert proof.outbox_id is not None
    assert conn.execute(
        "SELECT customer_number, payload ->> 'reason_code' FROM sync.outbox"
    ).fetchall() == [("TX00000001", "ERASURE")]
    (listed,) = gdpr.erasure_requests(conn)
    assert (listed.state, listed.attempts, listed.residue_hits) == ("failed", 1, 2)
    assert listed.last_error == (
        "residue found in 2 column(s): public.notes.body, public.notes.extra"
    )

    conn.execute("DELETE FROM public.notes")
    conn.commit()
    proof = gdpr.execute_erasure(conn, request, actor="backoffice:test", now=due)
    assert proof.state == "done", proof
    assert proof.residue_hits == 0
    assert proof.columns_searched is not None and proof.columns_searched > 20
    (done,) = gdpr.erasure_requests(conn)
    assert (done.state, done.attempts, done.residue_hits) == ("done", 2, 0)
    assert conn.execute("SELECT digests FROM gdpr.erasure_request").fetchone() == (None,)
    assert conn.execute("SELECT count(*) FROM sync.outbox").fetchone() == (1,)
    assert conn.execute("SELECT first_name FROM shop.customer").fetchone() == (None,)
    actions = conn.execute(
        "SELECT actor, action, outcome FROM sync.audit WHERE actor LIKE 'erasure%%' ORDER BY id"
    ).fetchall()
    assert actions == [
        ("erasure:backoffice:test", "erasure.received", "applied"),
        ("erasure:backoffice:test", "erasure.verified", "applied"),
        ("erasure:backoffice:test", "erasure.scheduled", "applied"),
        ("erasure:backoffice:test", "customer.anonymized", "applied"),
        ("erasure:backoffice:test", "erasure.executed", "failed"),
        ("erasure:backoffice:test", "erasure.executed", "applied"),
    ]
    audit = conn.execute("SELECT string_agg(to_jsonb(a)::text, ' ') FROM sync.audit AS a")
    text = str(audit.fetchone())
    for value in VALUES:
        assert value not in text


def test_cancel_in_the_grace_period_and_the_commands(
    conn: psycopg.Connection[Any], dsn: str
) -> None:
    cid = _customer(conn)
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)

    def run(*args: str) -> str:
        result = runner.invoke(erasure, [*args, "--actor", "bo:test"], obj=settings)
        assert result.exit_code == 0, result.output
        return result.output

    assert "erasure request 1: received" in run("receive", "TX00000001")
    run("verify", "1")
    assert "scheduled for" in run("schedule", "1", "--grace-days", "14")
    assert "cancelled" in run("cancel", "1")
    assert conn.execute("SELECT digests FROM gdpr.erasure_request").fetchone() == (None,)
    assert conn.execute("SELECT first_name FROM shop.customer").fetchone() == ("Anna",)

    assert "erasure request 2: received" in run("receive", "--id", str(cid))
    run("verify", "2")
    run("schedule", "2")
    executed = run("execute", "2")
    assert "erasure request 2: done" in executed and "residue hits 0" in executed
    listed = runner.invoke(erasure, ["list"], obj=settings).output
    assert "\tcancelled\t" in listed and "\tdone\t" in listed
    refused = runner.invoke(erasure, ["cancel", "2", "--actor", "bo:test"], obj=settings)
    assert refused.exit_code != 0 and "erasure request 2 is done" in refused.output


def test_due_requests_run_from_the_daily_job(conn: psycopg.Connection[Any]) -> None:
    cid = _customer(conn)
    request = gdpr.receive_erasure(conn, cid, actor="bo:test", now=NOW)
    gdpr.verify_erasure(conn, request, actor="bo:test", now=NOW)
    gdpr.schedule_erasure(conn, request, actor="bo:test", grace_days=3, now=NOW)
    assert gdpr.daily(conn, now=NOW)["done"] == 0
    result = gdpr.daily(conn, now=NOW + timedelta(days=3))
    assert (result["done"], result["failed"]) == (1, 0)
    assert gdpr.erasure_requests(conn, state="done")[0].id == request


def test_other_customers_rows_are_theirs_rows_of_nobody_are_searched(
    conn: psycopg.Connection[Any],
) -> None:
    cid = _customer(conn)
    # a namesake in the same household (same name, address, phone, loyalty card: the feed's
    # defaults) and a second customer with the subject's e-mail (a duplicate never merged)
    stage(conn, [upserted("TX00000002", 1), upserted("TX00000003", 1, email=VALUES[0])])
    household = gdpr.resolve_subject(conn, number="TX00000002")[0]
    duplicate = gdpr.resolve_subject(conn, number="TX00000003")[0]
    conn.execute(
        "INSERT INTO shop.orders (customer_id, order_number, delivery_name, contact_email)"
        " VALUES (%s, 'O-2', 'Anna van der Berg', %s)",
        [household, VALUES[0]],
    )
    # a shop table of its own whose rows may belong to nobody (reviews written as a guest)
    conn.execute(
        "CREATE TABLE public.review (id int PRIMARY KEY, customer_id bigint"
        " REFERENCES shop.customer (id), author_email text);"
        " CREATE INDEX ON public.review (customer_id);"
        " INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)"
        " VALUES ('public', 'review', 'scrub', false);"
        " INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
        " VALUES ('public', 'review', 'id', 'not_personal'),"
        " ('public', 'review', 'customer_id', 'not_personal'),"
        " ('public', 'review', 'author_email', 'null')"
    )
    # a table the shop adds: the engine works on it as its owner role, which a DBA grants
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON public.review TO syncctl_owner")
    conn.execute(
        "INSERT INTO public.review VALUES (1, %s, %s), (2, %s, %s), (3, NULL, %s)",
        [cid, VALUES[0], household, VALUES[0], VALUES[0]],
    )
    # an event of a number nobody here has, naming the subject's e-mail (dead-lettered)
    conn.execute(
        "INSERT INTO sync.inbox (event_id, event_type, customer_number, payload)"
        " VALUES ('e-unknown', 'customer.upserted', 'TX09999999', %s::jsonb)",
        [f'{{"customer": {{"email": "{VALUES[0]}"}}}}'],
    )
    conn.commit()
    request = gdpr.receive_erasure(conn, cid, actor="bo:test", now=NOW)
    gdpr.verify_erasure(conn, request, actor="bo:test", now=NOW)
    gdpr.schedule_erasure(conn, request, actor="bo:test", now=NOW)

    proof = gdpr.execute_erasure(conn, request, actor="bo:test", now=NOW)
    # the guest's review and the unknown number's event are nobody's: they count; the
    # subject's own review was scrubbed, the household's is theirs
    assert proof.state == "failed"
    assert proof.residue == {"public.review.author_email": 1, "sync.inbox.payload": 1}
    assert proof.same_email_customers == [duplicate]
    counts = conn.execute(
        "SELECT counts FROM sync.audit WHERE action = 'erasure.executed'"
    ).fetchone()
    assert counts is not None and counts[0]["same_email_customers"] == 1

    conn.execute("DELETE FROM public.review WHERE customer_id IS NULL")
    conn.execute(
        "WITH gone AS (DELETE FROM sync.dead_letter WHERE event_id = 'e-unknown' RETURNING 1)"
        " DELETE FROM sync.inbox WHERE customer_number = 'TX09999999'"
    )
    conn.commit()
    proof = gdpr.execute_erasure(conn, request, actor="bo:test", now=NOW)
    assert proof.state == "done", proof
    assert proof.residue_hits == 0
    # the others keep what is theirs, including what they share with the subject
    kept = conn.execute(
        "SELECT id, first_name, last_name, postcode, email FROM shop.customer"
        " WHERE id <> %s ORDER BY id",
        [cid],
    ).fetchall()
    assert kept == [
        (household, "Anna", "Berg", "1015 CJ", "tx00000002@example.nl"),
        (duplicate, "Anna", "Berg", "1015 CJ", VALUES[0]),
    ]
    assert conn.execute(
        "SELECT delivery_name, contact_email FROM shop.orders WHERE customer_id = %s",
        [household],
    ).fetchall() == [("Anna van der Berg", VALUES[0])]


def test_residue_search_without_a_customer_reads_every_row(conn: psycopg.Connection[Any]) -> None:
    _customer(conn)
    stage(conn, [upserted("TX00000002", 1)])
    rows = conn.execute(
        "SELECT column_name, hits FROM gdpr.residue_search( ARRAY[gdpr._digest(%s)]) ORDER BY 1",
        [VALUES[0]],
    ).fetchall()
    assert ("shop.customer.email", 1) in rows and ("shop.orders.contact_email", 1) in rows
    subject = gdpr.resolve_subject(conn, number="TX00000002")[0]
    scoped = conn.execute(
        "SELECT column_name, hits FROM gdpr.residue_search(ARRAY[gdpr._digest(%s)], %s)",
        [VALUES[0], subject],
    ).fetchall()
    assert scoped == []


def _verified_digests(conn: psycopg.Connection[Any], cid: int) -> tuple[int, list[str]]:
    request = gdpr.receive_erasure(conn, cid, actor="bo:test", now=NOW)
    gdpr.verify_erasure(conn, request, actor="bo:test", now=NOW)
    row = conn.execute(
        "SELECT digests FROM gdpr.erasure_request WHERE id = %s", [request]
    ).fetchone()
    assert row is not None
    return request, list(row[0])


def _install_key(conn: psycopg.Connection[Any]) -> bytes:
    """The HMAC key, from its stored inner pad (key XOR 0x36...)."""
    row = conn.execute("SELECT inner_pad FROM gdpr.proof_key").fetchone()
    assert row is not None
    return bytes(b ^ 0x36 for b in row[0])


def test_proof_digests_are_keyed_with_the_install_secret(conn: psycopg.Connection[Any]) -> None:
    cid = _customer(conn)
    _, digests = _verified_digests(conn, cid)
    short = "1015cj12"  # postcode + house number: a dictionary of every one is small
    assert hashlib.sha256(short.encode()).hexdigest() not in digests
    assert hashlib.sha256(b"annaeraseexamplenl").hexdigest() not in digests
    key = _install_key(conn)
    assert hmac.new(key, short.encode(), hashlib.sha256).hexdigest() in digests
    assert hmac.new(key, b"annaeraseexamplenl", hashlib.sha256).hexdigest() in digests
    # no role but the owner reads the key
    grants = conn.execute(
        "SELECT count(*) FROM information_schema.role_table_grants"
        " WHERE table_schema = 'gdpr' AND table_name = 'proof_key' AND grantee = 'PUBLIC'"
    ).fetchone()
    assert grants == (0,)


def test_two_installs_give_different_digests(
    conn: psycopg.Connection[Any], fresh_database: Callable[[str], str]
) -> None:
    other = fresh_database("syncctl_second_install")
    schema.upgrade(other)
    digest = "SELECT gdpr._digest('1015 CJ 12')"
    with psycopg.connect(other) as second:
        theirs = second.execute(digest).fetchone()
    ours = conn.execute(digest).fetchone()
    assert ours is not None and theirs is not None
    assert ours != theirs


def test_rotating_the_key_waits_for_open_requests(conn: psycopg.Connection[Any]) -> None:
    cid = _customer(conn)
    first, _ = _verified_digests(conn, cid)
    before = conn.execute("SELECT gdpr._digest('1015 CJ 12')").fetchone()
    with pytest.raises(psycopg.Error) as refusal:
        conn.execute("SELECT gdpr.rotate_proof_key('dba:1')")
    conn.rollback()
    assert refusal.value.sqlstate == "SY088"
    gdpr.cancel_erasure(conn, first, actor="bo:test", now=NOW)
    conn.execute("SELECT gdpr.rotate_proof_key('dba:1')")
    conn.commit()
    assert conn.execute("SELECT gdpr._digest('1015 CJ 12')").fetchone() != before
    audit = conn.execute(
        "SELECT actor, reason FROM sync.audit WHERE action = 'proof_key.rotated'"
    ).fetchall()
    assert audit == [("dba:1", "erasure proof key rotated")]
    # a request verified under the new key is proved with it
    request = gdpr.receive_erasure(conn, cid, actor="bo:test", now=NOW)
    gdpr.verify_erasure(conn, request, actor="bo:test", now=NOW)
    gdpr.schedule_erasure(conn, request, actor="bo:test", now=NOW)
    conn.execute("CREATE TABLE public.kept (body text)")
    conn.execute("INSERT INTO public.kept VALUES ('mail anna.erase@example.nl')")
    conn.commit()
    proof = gdpr.execute_erasure(conn, request, actor="bo:test", now=NOW)
    assert proof.residue["public.kept.body"] == 1, "residue missed under the new key"


def test_the_proof_names_the_tables_it_could_not_search(conn: psycopg.Connection[Any]) -> None:
    """Carried out as the owner role (as the daemon's daily job does), the residue search cannot
    read a table nobody granted it; the proof says so instead of passing over it in silence."""
    conn.execute("CREATE TABLE public.private_notes (body text)")
    conn.execute("CREATE TABLE public.granted_notes (body text)")
    conn.execute("GRANT SELECT ON public.granted_notes TO syncctl_owner")
    cid = _customer(conn)
    request = gdpr.receive_erasure(conn, cid, actor="bo:test", now=NOW)
    gdpr.verify_erasure(conn, request, actor="bo:test", now=NOW)
    gdpr.schedule_erasure(conn, request, actor="bo:test", grace_days=0, now=NOW)
    conn.execute("SET ROLE syncctl_owner")
    proof = gdpr.execute_erasure(conn, request, actor="scheduler", now=NOW)
    conn.execute("RESET ROLE")
    assert proof.state == "done", proof
    assert "public.private_notes" in proof.tables_not_searched
    assert "public.granted_notes" not in proof.tables_not_searched


def test_an_erasure_whose_customer_row_went_outside_syncctl_fails_and_says_why(
    conn: psycopg.Connection[Any],
) -> None:
    """A key that names nobody any more (the shop deleted the row where the mapping could not
    bind its delete trigger: no TRIGGER privilege) proves nothing: the request fails instead of
    being done with a search of nobody's rows. (With the trigger the request goes with the row:
    tests/integration/test_shop_key_changes.py.)"""
    cid = conn.execute(
        "INSERT INTO shop.customer (email, first_name) VALUES ('gone@example.nl', 'Gone')"
        " RETURNING id"
    ).fetchone()[0]  # type: ignore[index]
    request = conn.execute("SELECT gdpr.receive_erasure(%s::text, 'dpo')", [cid]).fetchone()[0]  # type: ignore[index]
    conn.execute("SELECT gdpr.verify_erasure(%s, 'dpo')", [request])
    conn.execute("SELECT gdpr.schedule_erasure(%s, 'dpo', interval '0')", [request])
    conn.execute("DROP TRIGGER customer_deleted_by_shop ON shop.customer")
    conn.execute("DELETE FROM shop.customer WHERE id = %s", [cid])
    conn.commit()
    result = conn.execute("SELECT gdpr.execute_erasure(%s, 'dpo')", [request]).fetchone()[0]  # type: ignore[index]
    conn.commit()
    assert result["state"] == "failed"
    assert result["error"].startswith("SY020: the request's customer key names no customer")
    assert "gone@example.nl" not in result["error"]
