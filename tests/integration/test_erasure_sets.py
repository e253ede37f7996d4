"""A page's anonymisations and deletes whose order does not matter are applied as one set
(sync._apply_erasures); the result is the one the one-by-one path gives. The same page is
applied on two clones of one database, once as the feed does it and once with
`syncctl.apply_erasures_together = off` (every merge, anonymisation and delete on its own), and
every table's rows are compared: the shop's, the tombstones, the audit (without ids, times and
durations), the inbox and its dead letters. The page holds anonymisations and deletes with and
without orders, a number that is not local, a tombstoned one, a merged-away one, a customer
named twice, upserts of a set customer before and after its event, a merge, and on the boutique
(whose customer row points to its address) households: two customers of the page sharing an
address, one sharing with a customer outside the page, one sharing with a merge's customer.
An error in the set (a shop trigger refusing one erasure, an unclassified column: SY022) leaves
only the refused events dead letters, as one by one. On a pagila-like schema, addresses a staff
member uses too are replaced by scrubbed copies in the set as one by one."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql

from syncctl.loader import PageOutcome, read_cursor, stage_page
from syncctl.tritonx import ChangePage
from tests.feed import event, stage, upserted
from tests.integration.test_dry_runs_shared_rows import rentals  # noqa: F401 (a fixture)
from tests.shops import CustomerKey, ShopSchema

SETTING = "syncctl.apply_erasures_together"
# columns that differ between two runs of the same page by when and how fast it ran
VOLATILE_TYPES = ("timestamp with time zone", "timestamp without time zone", "interval")
VOLATILE_COLUMNS = {("sync", "audit", "id"), ("sync", "audit", "duration_ms")}


def _number(i: int) -> str:
    return f"TX{i:08d}"


def _person(number: str, version: int) -> dict[str, Any]:
    """An upsert whose personal values are random: found only where this person left them."""
    word = secrets.token_hex(5)
    return upserted(
        number,
        version,
        email=f"{word}@example.nl",
        first_name=f"F{word}",
        last_name=f"L{secrets.token_hex(5)}",
        street=f"S{secrets.token_hex(5)}",
        phone=f"+31 20 {secrets.randbelow(10**7):07d}",
    )


def _tables(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    """Every table's rows (a partitioned table once), without volatile columns, sorted."""
    columns = conn.execute(
        """
        SELECT n.nspname, c.relname,
               array_agg(a.attname::text ORDER BY a.attnum)
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relpersistence <> 't'
          AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
          AND format_type(a.atttypid, a.atttypmod) <> ALL (%s)
        GROUP BY n.nspname, c.relname
        """,
        [list(VOLATILE_TYPES)],
    ).fetchall()
    rows: dict[str, list[str]] = {}
    for schema, table, names in columns:
        kept = [c for c in names if (schema, table, c) not in VOLATILE_COLUMNS]
        query = sql.SQL("SELECT jsonb_build_array({})::text FROM {}.{} AS t").format(
            sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in kept),
            sql.Identifier(schema),
            sql.Identifier(table),
        )
        rows[f"{schema}.{table}"] = sorted(r for (r,) in conn.execute(query))
    return rows


def _stage(conn: psycopg.Connection[Any], records: list[dict[str, Any]]) -> PageOutcome:
    """Stage the page as the controller does, with the same cursor on each clone."""
    cursor = read_cursor(conn, "tritonx")
    conn.commit()
    page = ChangePage(records, next_cursor="page-2", has_more=False)
    return stage_page(conn, "tritonx", cursor, page, keep_payloads=True)


def _calls(conn: psycopg.Connection[Any], function: str) -> int:
    """How often this session's committed transactions called the function (track_functions)."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.commit()
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions"
        " WHERE schemaname = 'sync' AND funcname = %s",
        [function],
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


@pytest.fixture
def clones(
    postgresql: psycopg.Connection[Any],
    conn: psycopg.Connection[Any],
    dsn: str,
    server_dsn: Callable[[str], str],
) -> Iterator[Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]]]:
    """Two connections, to the test's database and to a copy of it made when called."""
    made: list[str] = []
    opened: list[psycopg.Connection[Any]] = []

    def make() -> tuple[psycopg.Connection[Any], psycopg.Connection[Any]]:
        dbname = conn.info.dbname
        conn.commit()
        conn.close()
        postgresql.close()  # a database is copied only when nobody is connected to it
        clone = f"{dbname}_one_by_one"
        with psycopg.connect(server_dsn("postgres"), autocommit=True) as admin:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(clone), sql.Identifier(dbname)
                )
            )
        made.append(clone)
        together = psycopg.connect(dsn)
        one_by_one = psycopg.connect(server_dsn(clone))
        opened.extend([together, one_by_one])
        for c in (together, one_by_one):
            c.execute("SET track_functions = 'pl'")
        one_by_one.execute(f"SET {SETTING} = off")
        return together, one_by_one

    yield make
    for c in opened:
        c.close()
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as admin:
        for name in made:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _key(conn: psycopg.Connection[Any], shop: ShopSchema, number: str) -> CustomerKey:
    key = shop.key_of(conn, number)
    assert key is not None
    return key


def _share_address(conn: psycopg.Connection[Any], key: CustomerKey, with_key: CustomerKey) -> None:
    """Boutique: point customer `key` at the address of `with_key` (a household)."""
    conn.execute(
        "UPDATE crm.customer SET address_id ="
        " (SELECT address_id FROM crm.customer WHERE customer_uuid = %s)"
        " WHERE customer_uuid = %s",
        [with_key, key],
    )


def _apply_both_ways(
    shop: ShopSchema,
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],
    page: list[dict[str, Any]],
) -> tuple[psycopg.Connection[Any], dict[str, Any]]:
    return _apply_both_ways_on(clones, page)


def _apply_both_ways_on(
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],
    page: list[dict[str, Any]],
) -> tuple[psycopg.Connection[Any], dict[str, Any]]:
    """The page applied on two clones, with the set and one by one: every table the same."""
    together, one_by_one = clones()
    outcome, alone = (_stage(c, page) for c in (together, one_by_one))
    assert outcome.states == alone.states
    expected = _tables(one_by_one)
    assert _calls(one_by_one, "_apply_erasures") == 0
    got = _tables(together)
    assert got.keys() == expected.keys()
    for table in expected:
        assert got[table] == expected[table], table
    return together, dict(outcome.states)


def test_a_mixed_page_gives_what_one_by_one_gives(
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],
) -> None:
    numbers = [_number(700 + i) for i in range(30)]
    (
        anonymised,
        deleted_kept,
        deleted_gone,
        tombstoned,
        merged_away,
        survivor,
        twice,
        upserted_around,
        merged,
        merged_into,
        household_a,
        household_b,
        outsider_member,
        outsider,
        merge_household,
        plain_1,
        plain_2,
        plain_3,
    ) = numbers[:18]
    stage(conn, [_person(n, 1) for n in numbers[:18]])
    # earlier pages: a tombstone, a merge (a redirect), a dead letter of a set customer
    stage(
        conn,
        [
            event("customer.anonymized", tombstoned, 2, reason_code="AVG"),
            event("customer.merged", merged_away, 2, into=survivor),
            upserted(anonymised, 2, birth_date="1990-02-30"),
        ],
    )
    for number in (anonymised, deleted_kept, merged, plain_1):
        key = _key(conn, shop, number)
        shop.place_order(conn, key, datetime(2026, 3, 1, tzinfo=UTC))
        shop.add_favourite(conn, key, "SKU-1")
    shop.add_favourite(conn, _key(conn, shop, deleted_gone), "SKU-2")
    if shop.name == "boutique":
        _share_address(conn, _key(conn, shop, household_b), _key(conn, shop, household_a))
        _share_address(conn, _key(conn, shop, outsider_member), _key(conn, shop, outsider))
        _share_address(conn, _key(conn, shop, merge_household), _key(conn, shop, merged))
    conn.commit()

    page = [
        _person(upserted_around, 2),
        event("customer.anonymized", anonymised, 3, reason_code="AVG"),
        event("customer.deleted", deleted_kept, 3),
        _person(plain_2, 2),
        event("customer.deleted", deleted_gone, 3),
        event("customer.anonymized", _number(799), 1, reason_code="AVG"),  # not local
        event("customer.anonymized", tombstoned, 3),
        event("customer.anonymized", merged_away, 3),
        event("customer.anonymized", upserted_around, 3, reason_code="GDPR"),
        _person(upserted_around, 4),
        _person(merged, 3),
        event("customer.merged", merged, 4, into=merged_into),
        event("customer.anonymized", twice, 3),
        event("customer.deleted", twice, 4),
        event("customer.anonymized", household_a, 3),
        event("customer.anonymized", household_b, 3),
        event("customer.anonymized", outsider_member, 3),
        event("customer.deleted", merge_household, 3),
        _person(plain_3, 2),
        event("customer.anonymized", plain_1, 3),
    ]
    together, states = _apply_both_ways(shop, clones, page)
    assert states == {"applied": 16, "skipped": 4}
    assert _calls(together, "_apply_erasures") == 1


def test_an_erasure_a_shop_trigger_refuses_leaves_only_it_a_dead_letter(
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],
) -> None:
    numbers = [_number(800 + i) for i in range(4)]
    stage(conn, [_person(n, 1) for n in numbers])
    refused = _key(conn, shop, numbers[1])
    conn.execute(
        sql.SQL(
            """
            CREATE FUNCTION public.refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF OLD.{key}::text = {refused} THEN
                    RAISE EXCEPTION 'not this one';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_one BEFORE UPDATE ON {table}
                FOR EACH ROW EXECUTE FUNCTION public.refuse_one();
            """
        ).format(
            key=sql.Identifier(shop.key_column),
            refused=sql.Literal(str(refused)),
            table=sql.SQL(shop.customer_table),
        )
    )
    conn.commit()
    page = [event("customer.anonymized", n, 2, reason_code="AVG") for n in numbers]
    together, states = _apply_both_ways(shop, clones, page)
    assert states == {"applied": 3, "dead_letter": 1}
    letters = together.execute(
        "SELECT i.customer_number FROM sync.dead_letter AS d JOIN sync.inbox AS i"
        " ON i.id = d.inbox_id"
    ).fetchall()
    assert letters == [(numbers[1],)]


def test_the_set_leaves_no_personal_value_behind(
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],
) -> None:
    numbers = [_number(900 + i) for i in range(6)]
    people = [_person(n, 1) for n in numbers]
    stage(conn, people)
    for number in numbers[:3]:
        shop.place_order(conn, _key(conn, shop, number), datetime(2026, 3, 1, tzinfo=UTC))
    conn.commit()
    page = [event("customer.anonymized", n, 2) for n in numbers[:3]] + [
        event("customer.deleted", n, 2) for n in numbers[3:]
    ]
    together, states = _apply_both_ways(shop, clones, page)
    assert states == {"applied": 6}
    dump = "\n".join("\n".join(rows) for rows in _tables(together).values())
    for person in people:
        for field in ("email", "first_name", "last_name", "street", "phone"):
            assert person["customer"][field] not in dump


def test_an_unclassified_column_refuses_the_anonymisations_and_lets_the_removal_go(
    conn: psycopg.Connection[Any],
    shop: ShopSchema,
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],
) -> None:
    numbers = [_number(950 + i) for i in range(3)]
    stage(conn, [_person(n, 1) for n in numbers])
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD COLUMN nickname text").format(sql.SQL(shop.customer_table))
    )
    conn.commit()
    page = [
        event("customer.anonymized", numbers[0], 2),
        event("customer.deleted", numbers[1], 2),  # no orders: removed, no strategy needed
        event("customer.anonymized", numbers[2], 2),
    ]
    together, states = _apply_both_ways(shop, clones, page)
    assert states == {"applied": 1, "dead_letter": 2}
    reasons = together.execute("SELECT reason FROM sync.dead_letter").fetchall()
    assert reasons == [("anonymisation refused: 1 column(s) have no PII strategy",)] * 2


@pytest.mark.usefixtures("rentals")
def test_an_address_staff_use_is_copied_for_each_customer_of_the_set(
    conn: psycopg.Connection[Any],
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],
) -> None:
    # a pagila-like schema (the `rentals` fixture): the customer row must point to an address
    # (NOT NULL); an address a staff member uses too is replaced, for an anonymised customer,
    # by a scrubbed copy
    numbers = [_number(970 + i) for i in range(4)]
    stage(conn, [_person(n, 1) for n in numbers])
    for number in numbers[:2]:
        conn.execute(
            "INSERT INTO public.staff VALUES ((SELECT count(*) + 1 FROM public.staff),"
            " (SELECT c.address_id FROM public.customer AS c JOIN sync.customer_link AS l"
            "  ON l.customer_key = c.customer_id::text WHERE l.customer_number = %s))",
            [number],
        )
    conn.commit()
    page = [event("customer.anonymized", n, 2, reason_code="AVG") for n in numbers]
    together, states = _apply_both_ways_on(clones, page)
    assert states == {"applied": 4}
    assert _calls(together, "_apply_erasures") == 1


@pytest.fixture
def billing(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The pagila-like schema with a second pointer to the address table (a billing address,
    optional, that the shop keeps: no tritonX field feeds it), mapped as a second related
    table."""
    from tests.integration import test_dry_runs_shared_rows as pagila

    conn.execute(pagila.SCHEMA)
    add_billing(conn, pagila.MAPPING)
    customer = {**pagila.PII["customer"], "billing_address_id": "not_personal"}
    pagila.classify(conn, {**pagila.PII, "customer": customer})
    yield conn


def add_billing(conn: psycopg.Connection[Any], document: str) -> None:
    """public.customer.billing_address_id, mapped (the mapping `document` with a second
    related table); the session left as the owner role."""
    from psycopg.types.json import Jsonb

    from syncctl import mapping

    conn.execute(
        "ALTER TABLE public.customer ADD COLUMN billing_address_id integer"
        " REFERENCES public.address"
    )
    conn.execute("SET ROLE syncctl_owner")
    parsed = mapping.parse(
        document.replace(
            "[not_stored]",
            '[[related]]\nname = "billing"\nschema = "public"\ntable = "address"\n'
            'key = "address_id"\nkey_generate = "default"\n'
            'via = { customer_column = "billing_address_id" }\n'
            'on_anonymise = "scrub_or_detach"\n\n[not_stored]',
        ),
        "billing.toml",
    ).document
    conn.execute("SELECT sync.install_mapping(%s, 'billing.toml')", [Jsonb(parsed)])


def test_a_row_two_customers_point_to_by_different_pointers_is_scrubbed(
    billing: psycopg.Connection[Any],
    clones: Callable[[], tuple[psycopg.Connection[Any], psycopg.Connection[Any]]],
) -> None:
    """One customer's address is another's billing address: erased together, each would see
    the other using it and let go of it, leaving it with nobody pointing to it and the
    personal data in it; they are erased one by one, and the row is scrubbed."""
    conn = billing
    numbers = [_number(980 + i) for i in range(2)]
    stage(conn, [_person(n, 1) for n in numbers])
    conn.execute(
        "UPDATE public.customer AS c SET billing_address_id = d.address_id"
        " FROM sync.customer_link AS l, sync.customer_link AS m, public.customer AS d"
        " WHERE l.customer_number = %s AND c.customer_id::text = l.customer_key"
        "   AND m.customer_number = %s AND d.customer_id::text = m.customer_key",
        [numbers[1], numbers[0]],
    )
    row = conn.execute(
        "SELECT a.address FROM public.address AS a JOIN public.customer AS c"
        " ON c.address_id = a.address_id JOIN sync.customer_link AS l"
        " ON l.customer_key = c.customer_id::text WHERE l.customer_number = %s",
        [numbers[0]],
    ).fetchone()
    conn.commit()
    assert row is not None and row[0]
    page = [event("customer.anonymized", n, 2, reason_code="AVG") for n in numbers]
    together, states = _apply_both_ways_on(clones, page)
    assert states == {"applied": 2}
    left = together.execute(
        "SELECT count(*) FROM public.address WHERE address = %s", [row[0]]
    ).fetchone()
    assert left == (0,)


def test_a_table_no_tritonx_field_feeds_is_left_to_the_shop_and_scrubbed(
    billing: psycopg.Connection[Any],
) -> None:
    """The billing address the shop keeps: the feed's writes neither create, change nor
    re-point it; an anonymisation scrubs it when only its customer uses it."""
    conn = billing
    number = _number(990)
    stage(conn, [_person(number, 1)])
    conn.execute(
        "INSERT INTO public.address (address, postal_code, phone) VALUES ('Billing 1', '1234',"
        " '+31 6 1') RETURNING address_id"
    )
    conn.execute(
        "UPDATE public.customer AS c"
        " SET billing_address_id = currval('public.address_address_id_seq')"
        " FROM sync.customer_link AS l WHERE l.customer_number = %s"
        " AND c.customer_id::text = l.customer_key",
        [number],
    )
    conn.commit()
    before = conn.execute("SELECT count(*) FROM public.address").fetchone()
    stage(conn, [_person(number, 2), _person(_number(991), 1)])
    after = conn.execute("SELECT count(*) FROM public.address").fetchone()
    assert before is not None and after == (before[0] + 1,)  # the new customer's own address
    assert conn.execute(
        "SELECT a.address FROM public.address AS a JOIN public.customer AS c"
        " ON c.billing_address_id = a.address_id JOIN sync.customer_link AS l"
        " ON l.customer_key = c.customer_id::text WHERE l.customer_number = %s",
        [number],
    ).fetchall() == [("Billing 1",)]
    stage(conn, [event("customer.anonymized", number, 3, reason_code="AVG")])
    assert conn.execute(
        "SELECT count(*) FROM public.address WHERE address = 'Billing 1' OR phone = '+31 6 1'"
    ).fetchone() == (0,)
