"""Data policies and consent: policies are drafts until activated, consents are an append-only
history whose latest decision counts, tritonX's newsletter_opt_in is recorded as consent by a
trigger, shop.newsletter_subscription refuses a customer without consent, merges combine
consents by the policy's rule, and rectification changes webshop-owned fields only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from syncctl import errors, gdpr
from syncctl.cli.gdpr import policy
from tests.feed import stage, upserted

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def _customer(conn: psycopg.Connection[Any], number: str, **fields: Any) -> int:
    stage(conn, [upserted(number, 1, **fields)])
    conn.commit()
    return gdpr.resolve_subject(conn, number=number)[0]


def _current(conn: psycopg.Connection[Any], cid: int, code: str) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT granted, source FROM gdpr.current_consent WHERE customer_key = %s::text"
        " AND policy_code = %s",
        [cid, code],
    ).fetchone()


def test_policies_are_drafts_until_activated_and_retire(conn: psycopg.Connection[Any]) -> None:
    codes = {p.code: p.state for p in gdpr.policies(conn)}
    assert codes == {
        "club": "draft",
        "employees": "draft",
        "newsletter": "draft",
        "webshop": "draft",
    }
    gdpr.create_policy(
        conn,
        "staff_events",
        name="Staff events",
        description="Invitations",
        legal_basis="consent",
        retention="6 months",
        retention_from="created",
        categories=["shop.customer.preferred_language", "shop.wishlist"],
        membership="consent",
        actor="dpo:test",
    )
    created = gdpr.policy(conn, "staff_events")
    assert created.categories == ["shop.customer.preferred_language", "shop.wishlist"]
    assert created.state == "draft" and created.text_version == 1
    with pytest.raises(errors.GdprRefusal) as refused:
        gdpr.record_consent(conn, 1, "staff_events", granted=True)
    assert refused.value.sqlstate == "SY081"
    gdpr.activate_policy(conn, "staff_events", actor="dpo:test", now=NOW)
    assert gdpr.revise_policy(conn, "staff_events", description="v2", actor="dpo:test") == 2
    gdpr.retire_policy(conn, "staff_events", actor="dpo:test", now=NOW)
    with pytest.raises(errors.GdprRefusal) as again:
        gdpr.activate_policy(conn, "staff_events", actor="dpo:test")
    assert again.value.sqlstate == "SY081"
    with pytest.raises(errors.GdprRefusal) as bad:
        gdpr.create_policy(
            conn,
            "bad",
            name="x",
            description="x",
            legal_basis="consent",
            retention=None,
            retention_from="created",
            categories=["shop.no_such_table"],
            actor="dpo:test",
        )
    assert bad.value.sqlstate == "SY082"
    # a value that does not parse is not quoted back (it might be someone's e-mail address)
    with pytest.raises(errors.GdprError) as unparsable:
        gdpr.create_policy(
            conn,
            "bad",
            name="x",
            description="x",
            legal_basis="consent",
            retention="anna.berg@example.nl",
            retention_from="created",
            categories=["shop.wishlist"],
            actor="dpo:test",
        )
    assert unparsable.value.sqlstate == "22007"
    assert str(unparsable.value) == "a value does not fit its column (SQLSTATE 22007)"
    actions = [
        a
        for (a,) in conn.execute(
            "SELECT action FROM sync.audit WHERE action LIKE 'policy.%%' ORDER BY id"
        )
    ]
    assert actions == ["policy.created", "policy.activated", "policy.revised", "policy.retired"]


def test_policy_commands(dsn: str) -> None:
    settings = type("S", (), {"dsn": dsn})()
    runner = CliRunner()
    listed = runner.invoke(policy, ["list"], obj=settings)
    assert listed.exit_code == 0, listed.output
    assert "newsletter" in listed.output and "draft" in listed.output
    created = runner.invoke(
        policy,
        [
            "create",
            "events",
            "--name",
            "Events",
            "--description",
            "Event invitations",
            "--legal-basis",
            "consent",
            "--retention",
            "1 year",
            "--category",
            "shop.wishlist",
            "--membership",
            "consent",
            "--actor",
            "dpo:test",
        ],
        obj=settings,
    )
    assert created.exit_code == 0, created.output
    activated = runner.invoke(policy, ["activate", "events", "--actor", "dpo:test"], obj=settings)
    assert activated.exit_code == 0, activated.output
    revised = runner.invoke(
        policy, ["revise", "events", "--description", "Invitations, twice a year"], obj=settings
    )
    assert revised.exit_code == 0 and "text version 2" in revised.output, revised.output
    shown = runner.invoke(policy, ["show", "events"], obj=settings)
    assert "state:         active" in shown.output and "shop.wishlist" in shown.output
    assert "text version:  2" in shown.output and "twice a year" in shown.output
    retired = runner.invoke(policy, ["retire", "events", "--actor", "dpo:test"], obj=settings)
    assert retired.exit_code == 0 and "retired" in retired.output
    missing = runner.invoke(policy, ["show", "nope"], obj=settings)
    assert missing.exit_code != 0 and "no data policy nope" in missing.output


def test_consent_history_is_append_only(conn: psycopg.Connection[Any]) -> None:
    gdpr.activate_policy(conn, "club", actor="dpo:test", now=NOW)
    cid = _customer(conn, "TX00000001")
    gdpr.record_consent(conn, cid, "club", granted=True, at=NOW)
    gdpr.record_consent(conn, cid, "club", granted=False, source="back_office", at=NOW)
    assert _current(conn, cid, "club") == (False, "back_office")
    assert conn.execute("SELECT gdpr.has_consent(%s, 'club')", [cid]).fetchone() == (False,)
    for statement in (
        "UPDATE gdpr.consent SET granted = true",
        "TRUNCATE gdpr.consent",
    ):
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(statement)
        assert refused.value.sqlstate == "SY084"
        conn.rollback()
    conn.execute("DELETE FROM gdpr.consent")
    with pytest.raises(psycopg.Error) as at_commit:
        conn.commit()
    assert at_commit.value.sqlstate == "SY084"
    assert conn.execute("SELECT count(*) FROM gdpr.consent").fetchone() == (2,)


def test_tritonx_opt_in_is_recorded_and_guards_the_newsletter(
    conn: psycopg.Connection[Any],
) -> None:
    opted_in = _customer(conn, "TX00000001", newsletter_opt_in=True)
    opted_out = _customer(conn, "TX00000002", newsletter_opt_in=False)
    # a draft policy guards nothing and records nothing
    conn.execute(
        "INSERT INTO shop.newsletter_subscription (customer_id, list_name) VALUES (%s, 'w')",
        [opted_out],
    )
    conn.rollback()
    result = gdpr.activate_policy(conn, "newsletter", actor="dpo:test", now=NOW)
    assert result.consents == 1
    assert _current(conn, opted_in, "newsletter") == (True, "tritonx")
    assert _current(conn, opted_out, "newsletter") is None

    conn.execute(
        "INSERT INTO shop.newsletter_subscription (customer_id, list_name) VALUES (%s, 'w')",
        [opted_in],
    )
    conn.commit()
    with pytest.raises(psycopg.Error) as refused:
        conn.execute(
            "INSERT INTO shop.newsletter_subscription (customer_id, list_name) VALUES (%s, 'w')",
            [opted_out],
        )
    assert refused.value.sqlstate == "SY083"
    conn.rollback()

    # tritonX flips both: the feed's batch records both decisions
    stage(
        conn,
        [
            upserted("TX00000001", 2, newsletter_opt_in=False),
            upserted("TX00000002", 2, newsletter_opt_in=True),
            upserted("TX00000003", 1, newsletter_opt_in=True),
        ],
    )
    conn.commit()
    newcomer = gdpr.resolve_subject(conn, number="TX00000003")[0]
    assert _current(conn, opted_in, "newsletter") == (False, "tritonx")
    assert _current(conn, opted_out, "newsletter") == (True, "tritonx")
    assert _current(conn, newcomer, "newsletter") == (True, "tritonx")
    # an unchanged opt-in records nothing
    before = conn.execute("SELECT count(*) FROM gdpr.consent").fetchone()
    stage(conn, [upserted("TX00000002", 3, newsletter_opt_in=True, city="Delft")])
    conn.commit()
    assert conn.execute("SELECT count(*) FROM gdpr.consent").fetchone() == before
    conn.execute(
        "INSERT INTO shop.newsletter_subscription (customer_id, list_name) VALUES (%s, 'w')",
        [opted_out],
    )
    conn.commit()


@pytest.mark.parametrize(
    ("rule", "old", "survivor", "expected"),
    [
        ("most_restrictive", True, False, False),
        ("most_restrictive", False, True, False),
        ("most_restrictive", True, True, True),
        ("most_restrictive", True, None, True),
        ("most_permissive", True, False, True),
        ("most_permissive", False, None, False),
        ("survivor", True, False, False),
        ("survivor", False, True, True),
        ("survivor", True, None, False),
    ],
)
def test_merge_combines_consents_by_the_declared_rule(
    conn: psycopg.Connection[Any], rule: str, old: bool, survivor: bool | None, expected: bool
) -> None:
    conn.execute("UPDATE gdpr.policy SET merge_rule = %s WHERE code = 'club'", [rule])
    gdpr.activate_policy(conn, "club", actor="dpo:test", now=NOW)
    old_id = _customer(conn, "TX00000001")
    survivor_id = _customer(conn, "TX00000002")
    gdpr.record_consent(conn, old_id, "club", granted=old, at=NOW)
    if survivor is not None:
        gdpr.record_consent(conn, survivor_id, "club", granted=survivor, at=NOW)
    conn.execute("SELECT sync.merge_customer('TX00000001', 'TX00000002', NULL, 'ops:test')")
    conn.commit()
    assert _current(conn, survivor_id, "club") == (expected, "merge")
    history = conn.execute(
        "SELECT count(*) FROM gdpr.consent WHERE customer_key = %s::text", [survivor_id]
    ).fetchone()
    assert history == (3 if survivor is not None else 2,)
    audit = conn.execute(
        "SELECT actor, customer_id, reason FROM sync.audit WHERE action = 'consent.merged'"
    ).fetchall()
    assert audit == [("merge", survivor_id, f"combined by rule: club {rule}")]


def test_rectify_changes_webshop_fields_and_audits_names_only(
    conn: psycopg.Connection[Any],
) -> None:
    linked = _customer(conn, "TX00000001")
    changed = gdpr.rectify(conn, linked, {"preferred_language": "fy"}, actor="backoffice:test")
    assert changed == ["preferred_language"]
    assert conn.execute(
        "SELECT preferred_language FROM shop.customer WHERE id = %s", [linked]
    ).fetchone() == ("fy",)
    with pytest.raises(errors.GdprRefusal) as refused:
        gdpr.rectify(conn, linked, {"email": "new@example.nl"}, actor="backoffice:test")
    assert refused.value.sqlstate == "SY085"
    assert "owned by tritonX" in str(refused.value)
    assert "new@example.nl" not in str(refused.value)
    with pytest.raises(errors.GdprRefusal) as unknown:
        gdpr.rectify(conn, linked, {"Robert'); DROP": 1}, actor="backoffice:test")
    assert "(not a name) (no such field)" in str(unknown.value)

    # a local customer's fields are the webshop's own, those tritonX owns for a linked one too
    local = conn.execute(
        "INSERT INTO shop.customer (email, last_name) VALUES ('old@example.nl', 'Smit')"
        " RETURNING id"
    ).fetchone()[0]  # type: ignore[index]
    conn.commit()
    with pytest.raises(errors.GdprRefusal) as misfit:
        gdpr.rectify(conn, local, {"house_number": "Jansen 12"}, actor="backoffice:test")
    assert misfit.value.sqlstate == "SY085" and "Jansen" not in str(misfit.value)
    gdpr.rectify(conn, local, {"email": "fixed@example.nl", "last_name": "Smid"}, actor="bo:x")
    assert conn.execute(
        "SELECT email, last_name FROM shop.customer WHERE id = %s", [local]
    ).fetchone() == ("fixed@example.nl", "Smid")
    audit = conn.execute(
        "SELECT actor, reason, counts::text FROM sync.audit WHERE action = 'customer.rectified'"
        " ORDER BY id"
    ).fetchall()
    assert audit == [
        ("backoffice:test", "fields: preferred_language", '{"fields": 1}'),
        ("bo:x", "fields: email, last_name", '{"fields": 2}'),
    ]
