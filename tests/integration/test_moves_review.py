"""Review of the compiled moves (sql/57_moves_compile.sql) and the page reordering of
sync.apply_inbox: each test states what must hold; a failing one marks a finding. On both test
schemas."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
from psycopg import sql

from tests.feed import event, stage, upserted
from tests.shops import ShopSchema


def _key_type(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT key_type::text FROM sync.mapped_customer()").fetchone()
    assert row is not None
    return str(row[0])


def _states(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1]))
        for r in conn.execute(
            "SELECT customer_number, state FROM sync.inbox_status ORDER BY seq"
        ).fetchall()
    ]


# --- 1. Injection: a name reaches the generated code unquoted --------------------------------


def test_a_table_name_with_a_line_break_runs_no_code_as_the_owner(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """A role that may create a table and reference the customer table (the shop's developers,
    the shop's own login owning its schema) names a linked table with a line break: the
    compiled merge writes the name into a `--` comment, so the rest of the name is code that
    runs in every merge as the engine's owner role (here: opening sync.tombstone to PUBLIC).
    The same holds for a column name, and for the compiled erasure's comment line."""
    stage(conn, [upserted("TX00000901", 1), upserted("TX00000902", 1)])
    shop_dev = f"shop_dev_{uuid.uuid4().hex[:8]}"
    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(shop_dev)))
    conn.execute(sql.SQL("CREATE SCHEMA dev AUTHORIZATION {}").format(sql.Identifier(shop_dev)))
    schema = conn.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = %s::regclass",
        [shop.customer_table],
    ).fetchone()
    assert schema is not None
    conn.execute(
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(schema[0]), sql.Identifier(shop_dev)
        )
    )
    conn.execute(
        sql.SQL("GRANT REFERENCES ON {} TO {}").format(
            sql.SQL(shop.customer_table), sql.Identifier(shop_dev)
        )
    )
    conn.commit()

    hostile = "n\nGRANT ALL ON sync.tombstone TO PUBLIC;--"
    # the generator indents every line of a statement, inside quoted names too: the merge's
    # UPDATE names this table, which the same role makes so that the merge commits
    decoy = "n\n    GRANT ALL ON sync.tombstone TO PUBLIC;--"
    key_type = _key_type(conn)
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(shop_dev)))
    conn.execute(
        sql.SQL("CREATE TABLE dev.{} (who {} REFERENCES {} ({}))").format(
            sql.Identifier(hostile),
            sql.SQL(key_type),
            sql.SQL(shop.customer_table),
            sql.SQL(shop.key_column),
        )
    )
    conn.execute(
        sql.SQL("CREATE TABLE dev.{} (who {})").format(sql.Identifier(decoy), sql.SQL(key_type))
    )
    conn.execute(sql.SQL("GRANT ALL ON dev.{} TO PUBLIC").format(sql.Identifier(decoy)))
    # what a linked table's owner does so that the engine can work on it
    conn.execute("GRANT USAGE ON SCHEMA dev TO PUBLIC")
    conn.execute(sql.SQL("GRANT ALL ON dev.{} TO PUBLIC").format(sql.Identifier(hostile)))
    conn.execute("RESET ROLE")
    conn.commit()
    assert conn.execute(
        "SELECT has_table_privilege('public', 'sync.tombstone', 'DELETE')"
    ).fetchone() == (False,)

    stage(conn, [event("customer.merged", "TX00000901", 2, into="TX00000902")])

    assert conn.execute(
        "SELECT has_table_privilege('public', 'sync.tombstone', 'DELETE')"
    ).fetchone() == (False,)


# --- 2. Staleness: an input the generator reads that the fingerprint misses ------------------


def _partitioned_notes(conn: psycopg.Connection[Any], shop: ShopSchema) -> None:
    """A partitioned table linked to the customer by a foreign key on its parent (one table),
    classified and granted, and the compiled moves made for it."""
    conn.execute(
        sql.SQL(
            "CREATE TABLE public.note (customer {} NOT NULL REFERENCES {} ({}) ON DELETE CASCADE,"
            " made date NOT NULL, body text) PARTITION BY RANGE (made)"
        ).format(sql.SQL(_key_type(conn)), sql.SQL(shop.customer_table), sql.SQL(shop.key_column))
    )
    conn.execute(
        "CREATE TABLE public.note_2025 PARTITION OF public.note"
        " FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')"
    )
    conn.execute(
        "CREATE TABLE public.note_2026 PARTITION OF public.note"
        " FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"
    )
    conn.execute("CREATE INDEX ON public.note (customer)")
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON public.note TO syncctl_owner")
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy) VALUES"
        " ('public', 'note', 'customer', 'not_personal'),"
        " ('public', 'note', 'made', 'not_personal'),"
        " ('public', 'note', 'body', 'null')"
    )
    conn.execute("SELECT sync._moves_current()")
    conn.commit()


def _detach_2025(conn: psycopg.Connection[Any]) -> None:
    """Archiving a year: the partition becomes a table of its own, keeping its rows and its
    (now independent) foreign key to the customer. Nothing else changes."""
    conn.execute("ALTER TABLE public.note DETACH PARTITION public.note_2025")
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON public.note_2025 TO syncctl_owner")
    conn.commit()
    linked = conn.execute(
        "SELECT count(*) FROM sync.customer_links() WHERE table_name = 'note_2025'"
    ).fetchone()
    assert linked == (1,)


def test_a_detached_partition_is_moved_by_a_merge(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """After DETACH PARTITION the partition is a linked table of its own (sync.customer_links
    lists it); the compiled merge must re-point its rows, as the dynamic merge did. The
    fingerprint does not see the detach (the constraint keeps its oid; only conparentid
    changes, and the partition was not among the fingerprinted tables), so the old code runs:
    the old customer's rows there are deleted by the cascade."""
    stage(conn, [upserted("TX00000911", 1), upserted("TX00000912", 1)])
    old, survivor = shop.key_of(conn, "TX00000911"), shop.key_of(conn, "TX00000912")
    _partitioned_notes(conn, shop)
    conn.execute(
        "INSERT INTO public.note (customer, made, body) VALUES (%s, '2025-06-01', 'kept')", [old]
    )
    conn.commit()
    _detach_2025(conn)

    outcome = stage(conn, [event("customer.merged", "TX00000911", 2, into="TX00000912")])

    assert outcome.states == {"applied": 1}
    rows = conn.execute("SELECT customer, body FROM public.note_2025").fetchall()
    assert rows == [(survivor, "kept")]


def test_a_detached_partition_left_unclassified_refuses_an_anonymisation(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """The detached partition's columns have no PII strategy (the registry named the parent):
    coverage lists them and an anonymisation must be refused (SY022), as the dynamic code did;
    the stale compiled code counts no unclassified column, anonymises, and leaves the personal
    text in the detached partition."""
    stage(conn, [upserted("TX00000921", 1)])
    key = shop.key_of(conn, "TX00000921")
    _partitioned_notes(conn, shop)
    conn.execute(
        "INSERT INTO public.note (customer, made, body) VALUES (%s, '2025-06-01', 'personal')",
        [key],
    )
    conn.commit()
    _detach_2025(conn)
    assert conn.execute(
        "SELECT count(*) FROM sync.unclassified_columns() WHERE table_name = 'public.note_2025'"
    ).fetchone() == (3,)

    outcome = stage(conn, [event("customer.anonymized", "TX00000921", 2, reason_code="AVG")])

    left = conn.execute("SELECT body FROM public.note_2025").fetchall()
    assert outcome.states == {"dead_letter": 1}, left


def test_a_declared_reference_whose_table_comes_back_is_moved_by_a_merge(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """A [[reference]] (no foreign key) whose table is replaced in two steps by the shop's
    migration tool (renamed away, then created again under its name), with a feed page in
    between: the compiled code is made without it while it does not resolve, and the
    table's return is not in the fingerprint (no foreign key, not among its tables)."""
    stage(conn, [upserted("TX00000931", 1), upserted("TX00000932", 1)])
    old, survivor = shop.key_of(conn, "TX00000931"), shop.key_of(conn, "TX00000932")
    key_type = _key_type(conn)
    conn.execute(
        sql.SQL("CREATE TABLE public.ticket (customer {}, topic text)").format(sql.SQL(key_type))
    )
    conn.execute("CREATE INDEX ON public.ticket (customer)")
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON public.ticket TO syncctl_owner")
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy) VALUES"
        " ('public', 'ticket', 'customer', 'not_personal'),"
        " ('public', 'ticket', 'topic', 'null')"
    )
    conn.execute("SET ROLE syncctl_owner")
    conn.execute(
        "SELECT sync.install_mapping(v.document || jsonb_build_object('reference',"
        " coalesce(v.document -> 'reference', '[]') || '[{\"schema\": \"public\","
        ' "table": "ticket", "column": "customer"}]\'::jsonb), \'review\')'
        " FROM sync.mapping_version v WHERE v.active"
    )
    conn.execute("RESET ROLE")
    conn.commit()
    assert conn.execute(
        "SELECT count(*) FROM sync.customer_links() WHERE table_name = 'ticket'"
    ).fetchone() == (1,)
    # step one of the shop's migration: the old table out of the way
    conn.execute("ALTER TABLE public.ticket RENAME TO ticket_old")
    conn.commit()
    # a page with a merge in between (other customers)
    stage(conn, [upserted("TX00000933", 1), upserted("TX00000934", 1)])
    stage(conn, [event("customer.merged", "TX00000933", 2, into="TX00000934")])
    # step two: the new table under the declared name
    conn.execute(
        sql.SQL("CREATE TABLE public.ticket (customer {}, topic text)").format(sql.SQL(key_type))
    )
    conn.execute("CREATE INDEX ON public.ticket (customer)")
    conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON public.ticket TO syncctl_owner")
    conn.execute("INSERT INTO public.ticket VALUES (%s, 'refund')", [old])
    conn.commit()
    assert conn.execute(
        "SELECT count(*) FROM sync.customer_links() WHERE table_name = 'ticket'"
    ).fetchone() == (1,)

    outcome = stage(conn, [event("customer.merged", "TX00000931", 2, into="TX00000932")])

    assert outcome.states == {"applied": 1}
    assert conn.execute("SELECT customer FROM public.ticket").fetchall() == [(survivor,)]


# --- 4. Page reordering -----------------------------------------------------------------------


def test_an_upsert_after_an_anonymisation_may_take_the_e_mail_it_freed(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """The shop keeps e-mail addresses unique. tritonX anonymises a customer (the person asked
    to be forgotten) and later in the same page creates a new customer with that address (the
    person registered again). In feed order the anonymisation frees the address first; the
    page reordering applies the new customer's upsert before it, so it is refused (a dead
    letter) although tritonX's order was consistent."""
    table, column = shop.column_of("email")
    conn.execute(
        sql.SQL("CREATE UNIQUE INDEX review_unique_email ON {} (lower({}))").format(table, column)
    )
    conn.commit()
    stage(conn, [upserted("TX00000941", 1, email="again@example.nl")])

    outcome = stage(
        conn,
        [
            event("customer.anonymized", "TX00000941", 2, reason_code="AVG"),
            upserted("TX00000942", 1, email="again@example.nl"),
        ],
    )

    reasons = conn.execute("SELECT reason FROM sync.dead_letter").fetchall()
    assert outcome.states == {"applied": 2}, (reasons, _states(conn))
    assert shop.key_of(conn, "TX00000942") is not None


def test_a_linked_table_whose_name_has_a_line_break_stops_no_feed(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """Quoted names may hold any character. A linked table named with a line break (no
    malice: a name pasted from a document) makes the generated text invalid: the comment line
    ends inside the name, and the indentation changes the name where it is quoted. Making
    the moves again then fails in sync._moves_current, outside any dead-letter handling, so
    every page holding a merge, anonymisation or delete fails as a whole, for ever. The
    dynamic code merged such a table like any other."""
    stage(conn, [upserted("TX00000951", 1), upserted("TX00000952", 1)])
    old, survivor = shop.key_of(conn, "TX00000951"), shop.key_of(conn, "TX00000952")
    conn.execute(
        sql.SQL("CREATE TABLE public.{} (who {} REFERENCES {} ({}), memo text)").format(
            sql.Identifier("note\nbook"),
            sql.SQL(_key_type(conn)),
            sql.SQL(shop.customer_table),
            sql.SQL(shop.key_column),
        )
    )
    conn.execute(
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON public.{} TO syncctl_owner").format(
            sql.Identifier("note\nbook")
        )
    )
    conn.execute(
        sql.SQL("INSERT INTO public.{} VALUES (%s, 'memo')").format(sql.Identifier("note\nbook")),
        [old],
    )
    conn.commit()

    outcome = stage(conn, [event("customer.merged", "TX00000951", 2, into="TX00000952")])

    assert outcome.states == {"applied": 1}
    moved = conn.execute(
        sql.SQL("SELECT who FROM public.{}").format(sql.Identifier("note\nbook"))
    ).fetchall()
    assert moved == [(survivor,)]


# --- 6. Concurrency ---------------------------------------------------------------------------


def test_a_back_office_anonymisation_and_a_feed_page_making_the_moves_do_not_deadlock(
    conn: psycopg.Connection[Any], dsn: str, shop: ShopSchema
) -> None:
    """After a change of the shop's schema, the first mover makes the compiled moves again and
    holds sync.mapping_version (SHARE UPDATE EXCLUSIVE) till its commit. The feed takes that
    lock first and the customers' locks after it (a page: sync._moves_current, then each
    merge locks its customers); the back office's anonymisation by key, GDPR erasures,
    retention and adoptions lock the customer first and ask sync._moves_current after it.
    Both at once: a deadlock, one of them aborted."""
    stage(conn, [upserted("TX00000961", 1)])
    key = shop.key_of(conn, "TX00000961")
    # a change of an input of the compiled moves: a merge rule declared
    conn.execute(
        "INSERT INTO sync.merge_rule (table_schema, table_name, rule)"
        " VALUES ('review', 'nothing', 'union')"
    )
    conn.commit()
    assert conn.execute("SELECT sync._moves_are_current()").fetchone() == (False,)

    feed = psycopg.connect(dsn)
    back_office = psycopg.connect(dsn, autocommit=True)
    errors: list[BaseException] = []
    try:
        # the feed's page: the moves made again (not committed yet)
        feed.execute("SELECT sync._moves_current()")

        def anonymise() -> None:
            try:
                back_office.execute(
                    "SELECT sync.anonymise_from_backoffice_key(%s::text, 'AVG', 'review')",
                    [key],
                )
            except psycopg.Error as error:
                errors.append(error)

        worker = threading.Thread(target=anonymise)
        worker.start()
        # the back office holds the customer and waits for the feed's lock
        pid = back_office.info.backend_pid
        waiting = (
            "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = %s AND NOT granted"
            " AND relation = 'sync.mapping_version'::regclass)"
        )
        while conn.execute(waiting, [pid]).fetchone() != (True,):
            conn.commit()
            worker.join(0.05)
            assert worker.is_alive(), errors
        conn.commit()
        # the page's merge locks its customers
        try:
            feed.execute("SELECT syncmap.lock_customers(ARRAY[%s::text])", [key])
            feed.commit()
        except psycopg.Error as error:
            errors.append(error)
            feed.rollback()
        worker.join()
    finally:
        feed.close()
        back_office.close()
    assert not [e for e in errors if isinstance(e, psycopg.errors.DeadlockDetected)], errors
