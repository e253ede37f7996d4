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
    """The pagila-like schema whose addresses carry a unique public code of their own, which
    labels name."""
    conn.execute(pagila.SCHEMA)
    conn.execute(
        "ALTER TABLE public.address ADD COLUMN code uuid NOT NULL DEFAULT gen_random_uuid()"
        " UNIQUE;"
        # a shop table naming an address by its code (a foreign key to a non-key column)
        "CREATE TABLE public.label (label_id serial PRIMARY KEY,"
        " code uuid NOT NULL REFERENCES public.address (code));"
        "GRANT SELECT ON public.label TO syncctl_owner"
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


def test_an_address_a_label_names_by_its_code_is_shared(coded: psycopg.Connection[Any]) -> None:
    """A shop table refers to the address by its public code (a foreign key to a unique column
    that is not the key): that row is in use, so the customer's move gets a copy and the
    label's address stays as it was. Before, the feed's write compared the code with the
    address's key (and failed on their types)."""
    conn = coded
    stage(conn, [upserted("TX00000001", 1, street=f"S{secrets.token_hex(5)}")])
    shared, street, code = _address(conn, "TX00000001")
    conn.execute("INSERT INTO public.label (code) VALUES (%s)", [code])
    conn.commit()

    outcome = stage(conn, [upserted("TX00000001", 2, street=f"S{secrets.token_hex(5)}")])

    assert dict(outcome.states) == {"applied": 1}
    copy, copied_street, _ = _address(conn, "TX00000001")
    assert copy != shared and copied_street != street
    labelled = conn.execute(
        "SELECT a.address FROM public.address AS a JOIN public.label USING (code)"
    ).fetchone()
    assert labelled == (street,)
