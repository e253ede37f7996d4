"""The feed's compiled write (syncmap.write_customers) is made from the catalog: which tables
refer to a related row (an address) decides whether a customer's move changes the row in place
or gives the customer a copy. A foreign key the shop adds to the address table later (parcels
delivered to an address) is not seen by the compiled write until it is compiled again. Installing
the same mapping document again compiles it again (and the compiled moves), and
`syncctl mapping check` of the installed document warns while the compiled write is older than
the catalog it depends on."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from syncctl import mapping
from tests.feed import event, stage, upserted
from tests.integration import test_dry_runs_shared_rows as rentals

STALE = "warning: the installed mapping's compiled feed write"


@pytest.fixture
def document(conn: psycopg.Connection[Any]) -> Iterator[Any]:
    """The rental shop mapped, a customer created by the feed; then the shop adds parcels that
    refer to addresses, and one parcel goes to the customer's address."""
    conn.execute(rentals.SCHEMA)
    conn.execute("SET ROLE syncctl_owner")
    parsed = mapping.parse(rentals.MAPPING, "rentals.toml").document
    conn.execute("SELECT sync.install_mapping(%s, 'rentals.toml')", [Jsonb(parsed)])
    rentals.classify(conn, rentals.PII)
    stage(conn, [upserted("TX00000001", 1, street=f"S{secrets.token_hex(5)}")])
    assert _stale(conn, parsed) == []
    conn.execute(
        "CREATE TABLE public.parcel (parcel_id integer PRIMARY KEY,"
        " address_id integer NOT NULL REFERENCES public.address);"
        "GRANT SELECT ON public.parcel TO syncctl_owner;"
        "INSERT INTO public.parcel SELECT 1, address_id FROM public.customer"
        " WHERE customer_id = syncmap.key_of('TX00000001')::integer"
    )
    conn.commit()
    yield parsed


def _stale(conn: psycopg.Connection[Any], document: Any) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT path, problem FROM sync.mapping_defects(%s) WHERE problem LIKE %s",
        [Jsonb(document), STALE + "%"],
    ).fetchall()
    return [(str(path), str(problem)) for path, problem in rows]


def _parcel_address(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(
        "SELECT a.address FROM public.address AS a JOIN public.parcel USING (address_id)"
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_installing_the_same_document_again_compiles_the_write_again(
    conn: psycopg.Connection[Any], document: Any
) -> None:
    before = _parcel_address(conn)
    warned = _stale(conn, document)
    assert len(warned) == 1 and warned[0][0] == "customer", warned
    assert "syncctl mapping install" in warned[0][1]

    active = conn.execute("SELECT version FROM sync.mapping_version WHERE active").fetchone()
    audited = "SELECT count(*) FROM sync.audit WHERE action = 'mapping.installed'"
    installs = conn.execute(audited).fetchone()
    conn.execute("SET ROLE syncctl_owner")
    version = conn.execute(
        "SELECT sync.install_mapping(%s, 'rentals.toml')", [Jsonb(document)]
    ).fetchone()
    conn.execute("RESET ROLE")
    conn.commit()
    # the same version: nothing new installed, no audit row
    assert version == active and conn.execute(audited).fetchone() == installs
    assert _stale(conn, document) == []

    # the customer moves: the parcel's address is another's use of the row, so the customer
    # gets a copy and the parcel's address stays as it was
    outcome = stage(conn, [upserted("TX00000001", 2, street=f"S{secrets.token_hex(5)}")])
    assert dict(outcome.states) == {"applied": 1}
    assert _parcel_address(conn) == before
    moved = conn.execute(
        "SELECT a.address FROM public.address AS a JOIN public.customer USING (address_id)"
        " WHERE customer_id = syncmap.key_of('TX00000001')::integer"
    ).fetchone()
    assert moved is not None and moved[0] != before


def test_a_change_the_write_does_not_depend_on_is_not_warned_of(
    conn: psycopg.Connection[Any], document: Any
) -> None:
    # another document than the installed one: its install compiles anyway, nothing to say
    other = {**document, "customer": {**document["customer"], "columns": {"email": "email"}}}
    assert _stale(conn, other) == []
    conn.execute("SET ROLE syncctl_owner")
    conn.execute("SELECT sync.install_mapping(%s, 'rentals.toml')", [Jsonb(document)])
    conn.execute("RESET ROLE")
    # a table of the shop's that refers to the customer, and one unrelated to the mapping
    conn.execute(
        "CREATE TABLE public.review (review_id integer PRIMARY KEY,"
        " customer_id integer REFERENCES public.customer);"
        "CREATE TABLE public.film (film_id integer PRIMARY KEY, title text)"
    )
    conn.commit()
    assert _stale(conn, document) == []


def test_the_same_document_is_refused_when_the_catalog_no_longer_fits_it(
    conn: psycopg.Connection[Any], document: Any
) -> None:
    """A mapped column the shop dropped: installing again names the defect, as for a new
    document, and leaves the compiled code as it was."""
    conn.execute("ALTER TABLE public.customer DROP COLUMN email")
    conn.commit()
    conn.execute("SET ROLE syncctl_owner")
    with pytest.raises(psycopg.Error) as refused:
        conn.execute("SELECT sync.install_mapping(%s, 'rentals.toml')", [Jsonb(document)])
    conn.rollback()
    assert refused.value.sqlstate == "SY060"
    assert "mapping refused: customer.columns.email:" in str(refused.value)


def test_the_write_follows_the_change_when_the_compiled_moves_do(
    conn: psycopg.Connection[Any], document: Any
) -> None:
    """The feed checks, on a page with a merge, an anonymisation or a delete, that the compiled
    moves were made from today's catalog (sync._moves_current); when they were not, the write
    is compiled again with them, and the next move of the customer gives it a copy."""
    before = _parcel_address(conn)
    stage(conn, [upserted("TX00000002", 1)])
    outcome = stage(
        conn,
        [event("customer.merged", "TX00000002", 2, into="TX00000001")],
    )
    assert dict(outcome.states) == {"applied": 1}
    assert _stale(conn, document) == []
    outcome = stage(conn, [upserted("TX00000001", 3, street=f"S{secrets.token_hex(5)}")])
    assert dict(outcome.states) == {"applied": 1}
    assert _parcel_address(conn) == before


def test_a_write_the_catalog_no_longer_fits_is_left_as_it_is(
    conn: psycopg.Connection[Any], document: Any
) -> None:
    """A schema the document no longer fits (a mapped column dropped): the page's moves are
    compiled again, the write is not (mapping check names the defect), and the feed goes on."""
    conn.execute("ALTER TABLE public.customer DROP COLUMN create_date CASCADE")
    conn.commit()
    stage(conn, [upserted("TX00000002", 1)])
    outcome = stage(conn, [event("customer.merged", "TX00000002", 2, into="TX00000001")])
    assert dict(outcome.states) == {"applied": 1}


def test_a_feed_of_upserts_alone_follows_the_change(
    conn: psycopg.Connection[Any], document: Any
) -> None:
    """No merge, anonymisation or delete comes: the page of upserts checks the compiled write
    against today's catalog itself (before: it followed the change only at the next move, and
    the customer's move wrote the new street into the row the parcel was delivered to)."""
    before = _parcel_address(conn)
    outcome = stage(conn, [upserted("TX00000001", 2, street=f"S{secrets.token_hex(5)}")])
    assert dict(outcome.states) == {"applied": 1}
    assert _parcel_address(conn) == before
    assert _stale(conn, document) == []


def test_a_feed_of_upserts_alone_goes_on_when_the_document_no_longer_fits(
    conn: psycopg.Connection[Any], document: Any
) -> None:
    """A mapped column dropped: the write is left as it is, its upserts become dead letters
    naming the cause, and the session does not check the document again on every page until
    the catalog changes again (syncctl.write_unfit holds the catalog it did not fit)."""
    conn.execute("ALTER TABLE public.customer DROP COLUMN create_date CASCADE")
    conn.commit()
    for version in (2, 3):
        outcome = stage(conn, [upserted("TX00000001", version)])
        assert set(dict(outcome.states)) <= {"applied", "dead_letter"}, outcome
    unfit = conn.execute("SELECT current_setting('syncctl.write_unfit', true)").fetchone()
    assert unfit is not None and unfit[0]
    assert _stale(conn, document) != []
