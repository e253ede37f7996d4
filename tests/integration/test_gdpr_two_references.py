"""A table that names two customers (a gift's buyer and its recipient), whose columns hold each
one's personal data: `sync.pii_column.belongs_to` names the customer column a classified column
belongs to. The recipient's subject access export does not show the buyer's columns of the row,
nor the buyer's the recipient's; an anonymisation of one scrubs that one's columns and the
row's own (no `belongs_to`), never the other's, in the feed's set and one by one, and the plan
says so. Coverage refuses a `belongs_to` that is not a customer column of its table."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from syncctl import engine, gdpr, mapping
from syncctl.cli.gdpr import erasure_execute
from tests.feed import event, stage, upserted
from tests.integration import test_dry_runs_shared_rows as pagila
from tests.integration.test_erasure_sets import _calls

GIFT = """
CREATE TABLE public.gift (
    gift_id serial PRIMARY KEY,
    buyer_id integer NOT NULL REFERENCES public.customer,
    recipient_id integer REFERENCES public.customer,
    buyer_email text, recipient_name text, recipient_phone text, message text,
    amount numeric NOT NULL);
CREATE INDEX ON public.gift (buyer_id);
CREATE INDEX ON public.gift (recipient_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON public.gift TO syncctl_owner;
"""

# column: (strategy, belongs_to)
GIFT_PII = {
    "gift_id": ("not_personal", None),
    "buyer_id": ("not_personal", None),
    "recipient_id": ("not_personal", None),
    "buyer_email": ("null", "buyer_id"),
    "recipient_name": ("fixed", "recipient_id"),
    "recipient_phone": ("null", "recipient_id"),
    "message": ("null", None),
    "amount": ("not_personal", None),
}


@pytest.fixture
def gifts(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    conn.execute(pagila.SCHEMA)
    conn.execute(GIFT)
    conn.execute("SET ROLE syncctl_owner")
    document = mapping.parse(pagila.MAPPING, "gifts.toml").document
    conn.execute("SELECT sync.install_mapping(%s, 'gifts.toml')", [Jsonb(document)])
    for column, (strategy, belongs_to) in GIFT_PII.items():
        conn.execute(
            "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy,"
            " value, belongs_to) VALUES ('public', 'gift', %s, %s, %s, %s)",
            [column, strategy, "" if strategy == "fixed" else None, belongs_to],
        )
    conn.execute(
        "INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)"
        " VALUES ('public', 'gift', 'scrub', true)"
    )
    pagila.classify(conn, pagila.PII)
    yield conn


def _customers(conn: psycopg.Connection[Any]) -> tuple[int, int, int]:
    """A buyer and a recipient from tritonX, and one gift from the one to the other."""
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)])
    keys = [
        conn.execute("SELECT syncmap.key_of(%s)::integer", [n]).fetchone()[0]  # type: ignore[index]
        for n in ("TX00000001", "TX00000002")
    ]
    row = conn.execute(
        "INSERT INTO public.gift (buyer_id, recipient_id, buyer_email, recipient_name,"
        " recipient_phone, message, amount) VALUES (%s, %s, %s, %s, %s, %s, 25)"
        " RETURNING gift_id",
        [
            keys[0],
            keys[1],
            f"b{secrets.token_hex(4)}@example.org",
            f"R {secrets.token_hex(4)}",
            f"+31 6 {secrets.randbelow(10**8):08d}",
            f"for you {secrets.token_hex(4)}",
        ],
    ).fetchone()
    assert row is not None
    conn.commit()
    return keys[0], keys[1], int(row[0])


def _gift(conn: psycopg.Connection[Any], gift_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT to_jsonb(g) FROM public.gift AS g WHERE gift_id = %s", [gift_id]
    ).fetchone()
    assert row is not None
    return dict(row[0])


def _exported_gifts(conn: psycopg.Connection[Any], key: int) -> list[dict[str, Any]]:
    return [
        dict(r[1])
        for r in conn.execute("SELECT source, row_data FROM gdpr.subject_data(%s)", [str(key)])
        if r[0] == "public.gift"
    ]


def test_each_ones_export_shows_its_own_columns_of_the_row(
    gifts: psycopg.Connection[Any],
) -> None:
    conn = gifts
    buyer, recipient, gift_id = _customers(conn)
    held = _gift(conn, gift_id)
    row_own = {"gift_id", "buyer_id", "recipient_id", "message", "amount"}
    [seen_by_buyer] = _exported_gifts(conn, buyer)
    [seen_by_recipient] = _exported_gifts(conn, recipient)
    assert set(seen_by_buyer) == row_own | {"buyer_email"}
    assert set(seen_by_recipient) == row_own | {"recipient_name", "recipient_phone"}
    for seen in (seen_by_buyer, seen_by_recipient):
        assert all(seen[c] == held[c] for c in seen if c != "amount")
    # a gift to oneself: both sets of columns are the customer's
    conn.execute("UPDATE public.gift SET recipient_id = buyer_id")
    [seen_by_both] = _exported_gifts(conn, buyer)
    assert set(seen_by_both) == set(held)


@pytest.mark.parametrize("together", [True, False], ids=["as a set", "one by one"])
def test_an_anonymisation_scrubs_the_ones_columns_and_the_rows_own(
    gifts: psycopg.Connection[Any], together: bool
) -> None:
    conn = gifts
    _, _, gift_id = _customers(conn)
    before = _gift(conn, gift_id)
    plan = engine.anonymise(conn, "TX00000002", reason_code="AVG", actor="ops:t", dry_run=True)
    assert [(p.table, p.rows) for p in plan.plan if p.table == "public.gift"] == [
        ("public.gift", 1)
    ]
    conn.execute("SET track_functions = 'pl'")
    if not together:
        conn.execute("SET syncctl.apply_erasures_together = off")
    outcome = stage(conn, [event("customer.anonymized", "TX00000002", 2, reason_code="AVG")])
    assert dict(outcome.states) == {"applied": 1}
    assert (_calls(conn, "_apply_erasures") > 0) is together
    after = _gift(conn, gift_id)
    # the recipient's columns and the row's own are scrubbed, the buyer's are kept
    assert after["recipient_name"] == "" and after["recipient_phone"] is None
    assert after["message"] is None
    assert after["buyer_email"] == before["buyer_email"]
    # then the buyer: its e-mail goes too
    stage(conn, [event("customer.anonymized", "TX00000001", 2, reason_code="AVG")])
    assert _gift(conn, gift_id)["buyer_email"] is None


def test_coverage_refuses_a_belongs_to_that_is_no_customer_column(
    gifts: psycopg.Connection[Any],
) -> None:
    conn = gifts
    assert conn.execute("SELECT * FROM sync.coverage_defects()").fetchall() == []
    conn.execute(
        "UPDATE sync.pii_column SET belongs_to = 'amount'"
        " WHERE table_name = 'gift' AND column_name = 'message'"
    )
    defects = conn.execute("SELECT * FROM sync.coverage_defects()").fetchall()
    assert len(defects) == 1 and "belongs_to" in str(defects[0])
    assert "amount" in str(defects[0])


def test_an_erasure_request_of_the_buyer_keeps_the_recipients_columns(
    gifts: psycopg.Connection[Any], dsn: str
) -> None:
    conn = gifts
    buyer, _, gift_id = _customers(conn)
    before = _gift(conn, gift_id)
    request = gdpr.receive_erasure(conn, str(buyer), actor="bo:7")
    gdpr.verify_erasure(conn, request, actor="bo:7")
    gdpr.schedule_erasure(conn, request, actor="bo:7")
    conn.commit()
    ran = CliRunner().invoke(erasure_execute, [str(request)], obj=SimpleNamespace(dsn=dsn))
    assert ran.exit_code == 0, ran.output
    after = _gift(conn, gift_id)
    assert after["buyer_email"] is None and after["message"] is None
    assert (after["recipient_name"], after["recipient_phone"]) == (
        before["recipient_name"],
        before["recipient_phone"],
    )
    # what the recipient is shown of the row is still all there
    [seen] = _exported_gifts(conn, after["recipient_id"])
    assert seen["recipient_name"] == before["recipient_name"]
