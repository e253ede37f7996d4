"""The feed's copy of a shared row (a customer moves out of an address a staff member uses: the
customer gets a copy with tritonX's new values, the staff's row stays) leaves a column of a
unique index of its own (an address's public code) to its default, as the erasure's scrubbed
copy does. Before, the copy took the shared row's code and the shop's unique index refused it:
the customer's move was a dead letter."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from syncctl import mapping
from tests.feed import event, stage, upserted
from tests.integration import test_dry_runs_shared_rows as pagila


@pytest.fixture
def coded(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The pagila-like schema whose addresses carry a unique public code of their own."""
    conn.execute(pagila.SCHEMA)
    conn.execute(
        "ALTER TABLE public.address ADD COLUMN code uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE"
    )
    conn.execute("SET ROLE syncctl_owner")
    document = mapping.parse(pagila.MAPPING, "coded.toml").document
    conn.execute("SELECT sync.install_mapping(%s, 'coded.toml')", [Jsonb(document)])
    pagila.classify(
        conn, {**pagila.PII, "address": {**pagila.PII["address"], "code": "not_personal"}}
    )
    yield conn


def _address(conn: psycopg.Connection[Any], number: str) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT a.address_id, a.address, a.code FROM public.address AS a"
        " JOIN public.customer AS c USING (address_id)"
        " WHERE c.customer_id = syncmap.key_of(%s)::integer",
        [number],
    ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.parametrize("action", ["move", "anonymise"])
def test_a_copy_of_a_shared_address_gets_a_code_of_its_own(
    coded: psycopg.Connection[Any], action: str
) -> None:
    conn = coded
    stage(conn, [upserted("TX00000001", 1, street=f"S{secrets.token_hex(5)}")])
    shared, street, code = _address(conn, "TX00000001")
    conn.execute("INSERT INTO public.staff VALUES (1, %s)", [shared])
    conn.commit()

    if action == "move":
        outcome = stage(conn, [upserted("TX00000001", 2, street=f"S{secrets.token_hex(5)}")])
    else:
        outcome = stage(conn, [event("customer.anonymized", "TX00000001", 2, reason_code="AVG")])

    assert dict(outcome.states) == {"applied": 1}
    copy, copied_street, copied_code = _address(conn, "TX00000001")
    assert copy != shared and copied_code != code
    assert copied_street != street
    staff = conn.execute(
        "SELECT a.address, a.code FROM public.address AS a JOIN public.staff USING (address_id)"
    ).fetchone()
    assert staff == (street, code)
