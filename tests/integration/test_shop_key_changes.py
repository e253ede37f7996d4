"""A customer the shop deletes or re-keys itself (its back office, a cleanup script: plain SQL on
its own table) leaves nothing of the engine's under its old key. Where keys are used again (a
text key: a login name, a customer code), a new person given a deleted customer's key must not
inherit the old person's tritonX link (tritonX's next snapshot of the old number would overwrite
the new person's row: personal data into another person's account), consents or erasure
requests. A key the shop changes takes the link, consents and requests along (the same person).
The engine's own deletes (a tritonX delete, a merge) are not counted twice."""

from __future__ import annotations

import secrets
import tomllib
from pathlib import Path
from typing import Any, LiteralString

import psycopg
import pytest
from psycopg import sql

from tests.feed import event, stage, upserted
from tests.integration.test_mapping_compile import _install, _not_stored, _owner
from tests.shops import ShopSchema

SHOPS_DIR = Path(__file__).resolve().parents[1] / "shops"


def _unique(prefix: str) -> str:
    # incompressible: a value no other row could hold by chance
    return f"{prefix}-{secrets.token_hex(6)}@example.nl"


@pytest.fixture
def text_keyed(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """A shop keyed by a text customer code, the tritonX number and version in the link table,
    every column classified (an erasure can run), a consent policy active."""
    owner = _owner(conn)
    conn.execute(
        "CREATE SCHEMA tk;"
        "CREATE SEQUENCE tk.seq;"
        "CREATE TABLE tk.client (ckey text PRIMARY KEY DEFAULT 'c-' || nextval('tk.seq'),"
        " mail text, note text);"
        f'GRANT USAGE ON SCHEMA tk TO "{owner}";'
        f'GRANT SELECT, INSERT, UPDATE, DELETE, TRIGGER ON tk.client TO "{owner}";'
        f'GRANT USAGE ON SEQUENCE tk.seq TO "{owner}"'
    )
    conn.commit()
    _install(
        conn,
        {
            "format": 1,
            "customer": {
                "schema": "tk",
                "table": "client",
                "key": "ckey",
                "key_generate": "default",
                "number": "link",
                "version": "link",
                "columns": {"mail": "email"},
            },
            "not_stored": {"fields": _not_stored("email")},
        },
    )
    conn.execute(f'SET ROLE "{owner}"')
    conn.execute(
        "INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy, value)"
        " VALUES ('tk', 'client', 'ckey', 'not_personal', NULL),"
        " ('tk', 'client', 'mail', 'null', NULL), ('tk', 'client', 'note', 'null', NULL)"
    )
    conn.execute("RESET ROLE")
    _policy(conn, "tk.client")
    return conn


def _policy(conn: psycopg.Connection[Any], category: str) -> None:
    conn.execute(
        "SELECT gdpr.create_policy('members', 'Members', 'Member offers', 'consent', NULL,"
        " 'last_activity', ARRAY[%s], 'consent')",
        [category],
    )
    conn.execute("SELECT gdpr.activate_policy('members', 'dpo')")
    conn.commit()


def _key_of(conn: psycopg.Connection[Any], number: str) -> str | None:
    row = conn.execute("SELECT syncmap.key_of(%s)", [number]).fetchone()
    return None if row is None else row[0]


def _has_consent(conn: psycopg.Connection[Any], key: str) -> bool:
    row = conn.execute("SELECT gdpr.has_consent(%s, 'members')", [key]).fetchone()
    assert row is not None
    return bool(row[0])


def _consents(conn: psycopg.Connection[Any], key: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT granted, source FROM gdpr.consent WHERE customer_key = %s ORDER BY id", [key]
    ).fetchall()


def _audit(conn: psycopg.Connection[Any], action: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT actor, customer_number, customer_key, counts FROM sync.audit"
        " WHERE action = %s ORDER BY id",
        [action],
    ).fetchall()


def _old_customer(conn: psycopg.Connection[Any], number: str, mail: str) -> tuple[str, int]:
    """tritonX's customer `number`, created by the feed, with a granted consent and an erasure
    request that is verified and due (the old person's)."""
    stage(conn, [upserted(number, 1, email=mail)])
    conn.commit()
    key = _key_of(conn, number)
    assert key is not None
    conn.execute("SELECT gdpr.record_consent(%s, 'members', true, 'webshop', 'webshop')", [key])
    row = conn.execute("SELECT gdpr.receive_erasure(%s, 'bo:op-1')", [key]).fetchone()
    assert row is not None
    request = int(row[0])
    conn.execute("SELECT gdpr.verify_erasure(%s, 'bo:op-1')", [request])
    conn.execute("SELECT gdpr.schedule_erasure(%s, 'bo:op-1', '0')", [request])
    conn.commit()
    return key, request


def test_a_key_used_again_inherits_nothing_of_the_deleted_customer(
    text_keyed: psycopg.Connection[Any],
) -> None:
    conn = text_keyed
    old_mail, new_mail = _unique("old"), _unique("new")
    key, request = _old_customer(conn, "TX00000001", old_mail)
    # the shop removes the customer with plain SQL, and later gives the code to a new person
    conn.execute("DELETE FROM tk.client WHERE ckey = %s", [key])
    conn.commit()
    conn.execute("INSERT INTO tk.client (ckey, mail) VALUES (%s, %s)", [key, new_mail])
    conn.commit()

    # (b) nothing of the old person's consent
    assert not _has_consent(conn, key)
    assert _consents(conn, key) == []
    assert conn.execute(
        "SELECT count(*) FROM gdpr.current_consent WHERE customer_key = %s", [key]
    ).fetchone() == (0,)
    # not tritonX's customer: the old number names nobody here
    assert _key_of(conn, "TX00000001") is None

    # (a) tritonX's next snapshot of the old number makes a customer row of its own
    stage(conn, [upserted("TX00000001", 2, email=old_mail)])
    conn.commit()
    assert conn.execute("SELECT mail FROM tk.client WHERE ckey = %s", [key]).fetchone() == (
        new_mail,
    )
    again = _key_of(conn, "TX00000001")
    assert again is not None and again != key
    assert conn.execute("SELECT mail FROM tk.client WHERE ckey = %s", [again]).fetchone() == (
        old_mail,
    )

    # (c) the old person's erasure request does not act on the new one
    with pytest.raises(psycopg.Error):
        conn.execute("SELECT gdpr.execute_erasure(%s, 'bo:op-1')", [request])
    conn.rollback()
    assert conn.execute("SELECT mail FROM tk.client WHERE ckey = %s", [key]).fetchone() == (
        new_mail,
    )
    assert conn.execute(
        "SELECT count(*) FROM gdpr.erasure_request WHERE customer_key = %s", [key]
    ).fetchone() == (0,)


def test_a_truncated_customer_table_leaves_nothing_under_the_old_keys(
    text_keyed: psycopg.Connection[Any],
) -> None:
    """TRUNCATE (a shop's reset of its customers) is a delete of every customer: the next person
    given an old key inherits nothing of the old one's."""
    conn = text_keyed
    key, request = _old_customer(conn, "TX00000001", _unique("old"))
    other, _ = _old_customer(conn, "TX00000002", _unique("other"))
    conn.execute("TRUNCATE tk.client")
    conn.commit()
    conn.execute("INSERT INTO tk.client (ckey, mail) VALUES (%s, %s)", [key, _unique("new")])
    conn.commit()

    assert not _has_consent(conn, key)
    assert _consents(conn, key) == _consents(conn, other) == []
    assert _key_of(conn, "TX00000001") is None
    assert conn.execute("SELECT count(*) FROM sync.customer_link").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM gdpr.erasure_request").fetchone() == (0,)
    with pytest.raises(psycopg.Error):
        conn.execute("SELECT gdpr.execute_erasure(%s, 'bo:op-1')", [request])
    conn.rollback()
    audit = _audit(conn, "customer.truncated_by_shop")
    assert [(actor, number, counts["tk.client"]) for actor, number, _, counts in audit] == [
        ("shop", None, 2)
    ]
    assert audit[0][3]["sync.customer_link"] == 2


def test_one_audit_row_per_statement_counts_only(text_keyed: psycopg.Connection[Any]) -> None:
    conn = text_keyed
    keys = [_old_customer(conn, f"TX0000000{n}", _unique(f"p{n}"))[0] for n in (1, 2, 3)]
    conn.execute("INSERT INTO tk.client (ckey, mail) VALUES ('local-only', %s)", [_unique("l")])
    conn.commit()
    conn.execute("DELETE FROM tk.client WHERE ckey = ANY (%s)", [[keys[0], keys[1], "local-only"]])
    conn.commit()
    rows = _audit(conn, "customer.deleted_by_shop")
    assert len(rows) == 1
    actor, number, shown, counts = rows[0]
    assert actor == "shop"
    # a text key may be an e-mail address: the audit shows none
    assert shown is None and number is None
    assert counts == {
        "sync.customer_link": 2,
        "gdpr.consent": 2,
        "gdpr.erasure_request": 2,
        "tk.client": 3,
    }
    # the third customer keeps everything
    assert _key_of(conn, "TX00000003") == keys[2]
    assert _has_consent(conn, keys[2])
    # a statement that deletes a customer the engine holds nothing of writes nothing
    conn.execute("INSERT INTO tk.client (ckey) VALUES ('bare')")
    conn.execute("DELETE FROM tk.client WHERE ckey = 'bare'")
    conn.commit()
    assert len(_audit(conn, "customer.deleted_by_shop")) == 1
    # one customer: named by its number
    conn.execute("DELETE FROM tk.client WHERE ckey = %s", [keys[2]])
    conn.commit()
    assert _audit(conn, "customer.deleted_by_shop")[-1][1] == "TX00000003"
    rows_text = conn.execute(
        "SELECT string_agg(to_jsonb(a)::text, ' ') FROM sync.audit AS a"
        " WHERE a.action = 'customer.deleted_by_shop'"
    ).fetchone()
    assert not [k for k in keys if k in str(rows_text)]
    # the reports name the shop as their source, not the back office
    sources = conn.execute(
        "SELECT DISTINCT source FROM report.actions_per_day"
        " WHERE action = 'customer.deleted_by_shop'"
    ).fetchall()
    assert sources == [("shop",)]


def test_a_changed_key_takes_link_consents_and_requests_along(
    text_keyed: psycopg.Connection[Any],
) -> None:
    conn = text_keyed
    mail = _unique("anna")
    key, request = _old_customer(conn, "TX00000001", mail)
    history = _consents(conn, key)
    conn.execute("UPDATE tk.client SET ckey = 'renamed' WHERE ckey = %s", [key])
    conn.commit()
    assert _key_of(conn, "TX00000001") == "renamed"
    # the same person: the history moves as it is, no merge decision is appended
    assert _consents(conn, "renamed") == history
    assert _has_consent(conn, "renamed")
    assert _consents(conn, key) == []
    assert conn.execute(
        "SELECT customer_key FROM gdpr.erasure_request WHERE id = %s", [request]
    ).fetchone() == ("renamed",)
    assert _audit(conn, "consent.merged") == []
    [(actor, number, _, counts)] = _audit(conn, "customer.key_changed_by_shop")
    assert (actor, number) == ("shop", "TX00000001")
    assert counts == {
        "sync.customer_link": 1,
        "gdpr.consent": 1,
        "gdpr.erasure_request": 1,
        "tk.client": 1,
    }
    # tritonX's next snapshot updates the renamed row, no second customer appears
    stage(conn, [upserted("TX00000001", 2, email=mail, first_name="Bea")])
    conn.commit()
    assert conn.execute("SELECT count(*) FROM tk.client").fetchone() == (1,)
    # an UPDATE that names the key but keeps it changes nothing and writes nothing
    conn.execute("UPDATE tk.client SET ckey = ckey, note = 'x'")
    conn.commit()
    assert len(_audit(conn, "customer.key_changed_by_shop")) == 1
    # and the request then erases the renamed customer
    conn.execute("SELECT gdpr.execute_erasure(%s, 'bo:op-1')", [request])
    conn.commit()
    assert conn.execute("SELECT mail FROM tk.client WHERE ckey = 'renamed'").fetchone() == (None,)


def test_the_engines_own_deletes_are_not_counted_twice(
    text_keyed: psycopg.Connection[Any],
) -> None:
    conn = text_keyed
    keys = {}
    for number in ("TX00000001", "TX00000002", "TX00000003"):
        keys[number] = _old_customer(conn, number, _unique("p"))[0]
    # tritonX deletes one (no bookkeeping rows: removed) and merges another into the third
    stage(
        conn,
        [
            event("customer.deleted", "TX00000001", 2),
            event("customer.merged", "TX00000002", 2, into="TX00000003"),
        ],
    )
    conn.commit()
    assert _audit(conn, "customer.deleted_by_shop") == []
    outcomes = conn.execute(
        "SELECT action, outcome FROM sync.audit WHERE action IN"
        " ('customer.deleted', 'customer.merged') ORDER BY id"
    ).fetchall()
    assert outcomes == [("customer.deleted", "applied"), ("customer.merged", "applied")]
    assert conn.execute("SELECT count(*) FROM sync.dead_letter").fetchone() == (0,)
    assert _key_of(conn, "TX00000001") is None
    assert _consents(conn, keys["TX00000001"]) == []
    assert _has_consent(conn, keys["TX00000003"])


def test_on_the_untidy_schema(conn: psycopg.Connection[Any]) -> None:
    """Quoted mixed-case names, a uuid key of an odd name, the number in the link table."""
    owner = _owner(conn)
    conn.execute((SHOPS_DIR / "untidy.sql").read_text())
    conn.execute(
        f'GRANT USAGE ON SCHEMA "Shop Data", "Marketing" TO "{owner}";'
        f'GRANT ALL ON ALL TABLES IN SCHEMA "Shop Data", "Marketing" TO "{owner}";'
        f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "Shop Data" TO "{owner}"'
    )
    conn.commit()
    mapping = tomllib.loads((SHOPS_DIR / "untidy.toml").read_text())
    _install(conn, mapping)
    _policy(conn, "Shop Data.Klant")
    stage(conn, [upserted("TX00000001", 1, email=_unique("oud"))])
    conn.commit()
    key = _key_of(conn, "TX00000001")
    assert key is not None
    conn.execute("SELECT gdpr.record_consent(%s, 'members', true, 'webshop', 'webshop')", [key])
    conn.commit()
    row = conn.execute('SELECT "AdresID" FROM "Shop Data"."Klant"').fetchone()
    conn.execute('DELETE FROM "Shop Data"."Klant" WHERE "Klant-Id" = %s', [key])
    conn.commit()
    new_mail = _unique("nieuw")
    conn.execute(
        'INSERT INTO "Shop Data"."Klant" ("Klant-Id", "Achternaam", "E-mail", "WinkelNr",'
        ' "AdresID") VALUES (%s, %s, %s, 1, %s)',
        [key, "Jansen", new_mail, row[0] if row else None],
    )
    conn.commit()
    assert not _has_consent(conn, key)
    stage(conn, [upserted("TX00000001", 2, email=_unique("oud2"))])
    conn.commit()
    assert conn.execute(
        'SELECT "E-mail" FROM "Shop Data"."Klant" WHERE "Klant-Id" = %s', [key]
    ).fetchone() == (new_mail,)
    assert _key_of(conn, "TX00000001") not in (None, key)
    # a changed key takes the link along
    moved = conn.execute("SELECT gen_random_uuid()::text").fetchone()
    assert moved is not None
    conn.execute(
        'UPDATE "Shop Data"."Klant" SET "Klant-Id" = %s WHERE "Klant-Id" = %s',
        [moved[0], _key_of(conn, "TX00000001")],
    )
    conn.commit()
    assert _key_of(conn, "TX00000001") == moved[0]


def test_on_each_shop_schema_a_reused_key_has_no_consent(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """The reference shop and the boutique keep the number in a column of their own; the
    consents (and the boutique's version in the link table) are the engine's by key."""
    owner = _owner(conn)
    table = sql.SQL(shop.customer_table)
    conn.execute(sql.SQL('GRANT TRIGGER ON {} TO "{}"').format(table, sql.SQL(owner)))
    conn.commit()
    _install(conn, shop.mapping)  # the same document again: binds the triggers now granted
    _policy(conn, shop.customer_table.replace('"', ""))
    stage(conn, [upserted("TX00000001", 1)])
    conn.commit()
    key = str(shop.key_of(conn, "TX00000001"))
    conn.execute("SELECT gdpr.record_consent(%s, 'members', true, 'webshop', 'webshop')", [key])
    conn.commit()
    column = sql.Identifier(shop.key_column)
    conn.execute(
        sql.SQL("CREATE TEMP TABLE kept AS SELECT * FROM {} WHERE {}::text = %s").format(
            table, column
        ),
        [key],
    )
    conn.execute(sql.SQL("DELETE FROM {} WHERE {}::text = %s").format(table, column), [key])
    conn.commit()
    # the same key for a new, local customer (no tritonX number)
    number = sql.Identifier(shop.mapping["customer"]["number"]["column"])
    conn.execute(sql.SQL("UPDATE kept SET {} = NULL").format(number))
    conn.execute(sql.SQL("INSERT INTO {} OVERRIDING SYSTEM VALUE SELECT * FROM kept").format(table))
    conn.commit()
    assert not _has_consent(conn, key)
    assert _consents(conn, key) == []
    assert conn.execute(
        "SELECT count(*) FROM sync.customer_link WHERE customer_key = %s", [key]
    ).fetchone() == (0,)
    # the audit names the customer by its number (from the deleted row's number column)
    [(actor, number, shown, counts)] = _audit(conn, "customer.deleted_by_shop")
    assert (actor, number, shown) == ("shop", "TX00000001", key)
    assert counts["gdpr.consent"] == 1


def test_a_delete_and_insert_of_one_key_in_one_transaction_is_refused(
    text_keyed: psycopg.Connection[Any],
) -> None:
    """The consent history may only leave a customer that is gone at commit: a shop that
    replaces a row by DELETE and INSERT of its key in one transaction is told so (SY084)."""
    conn = text_keyed
    key, _ = _old_customer(conn, "TX00000001", _unique("anna"))
    conn.execute("DELETE FROM tk.client WHERE ckey = %s", [key])
    conn.execute("INSERT INTO tk.client (ckey, mail) VALUES (%s, %s)", [key, _unique("bea")])
    with pytest.raises(psycopg.Error) as refused:
        conn.commit()
    assert refused.value.sqlstate == "SY084"
    assert _has_consent(conn, key)


@pytest.fixture
def partitioned(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    """A customer table partitioned by its (text) key, the number in the link table."""
    owner = _owner(conn)
    conn.execute(
        "CREATE SCHEMA tp;"
        'CREATE TABLE tp."Klant" ("Code" text PRIMARY KEY, mail text)'
        ' PARTITION BY RANGE ("Code");'
        'CREATE TABLE tp."Klant a-l" PARTITION OF tp."Klant"'
        " FOR VALUES FROM (MINVALUE) TO ('m');"
        'CREATE TABLE tp."Klant m-z" PARTITION OF tp."Klant"'
        " FOR VALUES FROM ('m') TO (MAXVALUE);"
        f'GRANT USAGE ON SCHEMA tp TO "{owner}";'
        f'GRANT SELECT, INSERT, UPDATE, DELETE, TRIGGER ON tp."Klant" TO "{owner}";'
        f'GRANT TRIGGER ON tp."Klant a-l", tp."Klant m-z" TO "{owner}"'
    )
    conn.commit()
    _install(
        conn,
        {
            "format": 1,
            "customer": {
                "schema": "tp",
                "table": "Klant",
                "key": "Code",
                "key_generate": "uuid",
                "number": "link",
                "version": "link",
                "columns": {"mail": "email"},
            },
            "not_stored": {"fields": _not_stored("email")},
        },
    )
    _policy(conn, "tp.Klant")
    return conn


def _two_linked(conn: psycopg.Connection[Any]) -> tuple[str, str]:
    stage(conn, [upserted("TX00000001", 1), upserted("TX00000002", 1)])
    conn.commit()
    one, two = _key_of(conn, "TX00000001"), _key_of(conn, "TX00000002")
    assert one is not None and two is not None
    for key in (one, two):
        conn.execute("SELECT gdpr.record_consent(%s, 'members', true, 'webshop', 'shop')", [key])
    conn.commit()
    return one, two


def test_on_a_partitioned_customer_table(partitioned: psycopg.Connection[Any]) -> None:
    conn = partitioned
    one, two = _two_linked(conn)
    # a new key in the partition the row is in (the uuids sort before 'm')
    conn.execute('UPDATE tp."Klant" SET "Code" = %s WHERE "Code" = %s', ["a-same", one])
    conn.commit()
    assert _key_of(conn, "TX00000001") == "a-same"
    assert _has_consent(conn, "a-same")
    # a delete through the partitioned table: both partitions' rows
    conn.execute('DELETE FROM tp."Klant" WHERE "Code" IN (%s, %s)', ["a-same", two])
    conn.commit()
    assert not _has_consent(conn, "a-same") and not _has_consent(conn, two)
    assert conn.execute("SELECT count(*) FROM sync.customer_link").fetchone() == (0,)


def _partition_of(key: str) -> sql.SQL:
    return sql.SQL('tp."Klant a-l"' if key < "m" else 'tp."Klant m-z"')


def _held(conn: psycopg.Connection[Any], key: str) -> tuple[int, int]:
    """The link rows and consent rows the engine holds under `key` (read directly: the
    engine's read functions join the customer row, which is gone)."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM sync.customer_link WHERE customer_key = %(k)s),"
        " (SELECT count(*) FROM gdpr.consent WHERE customer_key = %(k)s)",
        {"k": key},
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _with_a_local(conn: psycopg.Connection[Any]) -> tuple[str, str, str]:
    """Two linked customers (uuid keys: both in partition a-l) and a local one in m-z, each
    with a consent."""
    one, two = _two_linked(conn)
    assert one < "m" and two < "m"
    conn.execute("""INSERT INTO tp."Klant" ("Code") VALUES ('z-local')""")
    conn.execute("SELECT gdpr.record_consent('z-local', 'members', true, 'webshop', 'shop')")
    conn.commit()
    return one, two, "z-local"


def test_a_delete_on_a_partition_itself(partitioned: psycopg.Connection[Any]) -> None:
    """A statement naming a partition fires that partition's statement triggers, not the
    partitioned table's: the deleted customer's link and consents go all the same."""
    conn = partitioned
    one, two, local = _with_a_local(conn)
    conn.execute(sql.SQL('DELETE FROM {} WHERE "Code" = %s').format(_partition_of(one)), [one])
    conn.execute(sql.SQL('DELETE FROM {} WHERE "Code" = %s').format(_partition_of(local)), [local])
    conn.commit()
    assert _held(conn, one) == (0, 0) and _held(conn, local) == (0, 0)
    assert _held(conn, two) == (1, 1)
    assert len(_audit(conn, "customer.deleted_by_shop")) == 2


def test_a_truncated_partition(partitioned: psycopg.Connection[Any]) -> None:
    """TRUNCATE of one partition: its customers' link rows and consents go, the other
    partition's stay; then the other partition."""
    conn = partitioned
    one, two, local = _with_a_local(conn)
    conn.execute(sql.SQL("TRUNCATE {}").format(_partition_of(one)))
    conn.commit()
    assert _held(conn, one) == (0, 0) and _held(conn, two) == (0, 0)
    assert _held(conn, local) == (0, 1)
    assert [r[3] for r in _audit(conn, "customer.truncated_by_shop")] == [
        {"tp.Klant": 2, "gdpr.consent": 2, "sync.customer_link": 2}
    ]
    conn.execute(sql.SQL("TRUNCATE {}").format(_partition_of(local)))
    conn.commit()
    assert _held(conn, local) == (0, 0)


def test_a_key_change_on_a_partition_itself(partitioned: psycopg.Connection[Any]) -> None:
    conn = partitioned
    one, _, _ = _with_a_local(conn)
    conn.execute(
        sql.SQL('UPDATE {} SET "Code" = %s WHERE "Code" = %s').format(_partition_of(one)),
        ["a-moved", one],
    )
    conn.commit()
    assert _key_of(conn, "TX00000001") == "a-moved"
    assert _held(conn, "a-moved") == (1, 1) and _held(conn, one) == (0, 0)


def test_a_key_change_across_partitions(partitioned: psycopg.Connection[Any]) -> None:
    """PostgreSQL carries out a key change that moves the row to another partition as a delete
    and an insert: no AFTER UPDATE row trigger fires, only the BEFORE UPDATE ones. The link and
    consents follow the key all the same."""
    conn = partitioned
    one, two = _two_linked(conn)
    conn.execute('UPDATE tp."Klant" SET "Code" = %s WHERE "Code" = %s', ["z-moved", two])
    conn.commit()
    assert _key_of(conn, "TX00000002") == "z-moved"
    assert _held(conn, "z-moved") == (1, 1) and _held(conn, two) == (0, 0)
    assert _held(conn, one) == (1, 1)
    assert len(_audit(conn, "customer.key_changed_by_shop")) == 1


def test_keys_changed_across_partitions_both_ways(partitioned: psycopg.Connection[Any]) -> None:
    """One statement moves a customer from each partition to the other, and changes a third's
    key within its partition: each keeps its own link and consents."""
    conn = partitioned
    one, two, local = _with_a_local(conn)
    conn.execute(
        'UPDATE tp."Klant" SET "Code" = CASE "Code" WHEN %(one)s THEN \'z-one\''
        " WHEN %(two)s THEN 'a-two' ELSE 'a-local' END"
        ' WHERE "Code" IN (%(one)s, %(two)s, %(local)s)',
        {"one": one, "two": two, "local": local},
    )
    conn.commit()
    assert _key_of(conn, "TX00000001") == "z-one"
    assert _key_of(conn, "TX00000002") == "a-two"
    assert _held(conn, "z-one") == (1, 1) and _held(conn, "a-two") == (1, 1)
    assert _held(conn, "a-local") == (0, 1)
    assert (
        _held(conn, one) == (0, 0) and _held(conn, two) == (0, 0) and _held(conn, local) == (0, 0)
    )


def test_a_key_change_a_shop_trigger_cancels_moves_nothing(
    partitioned: psycopg.Connection[Any],
) -> None:
    """A BEFORE UPDATE trigger of the shop's that fires after the engine's and skips the row
    (returns NULL): nothing changed, nothing moves."""
    conn = partitioned
    _, two = _two_linked(conn)
    conn.execute(
        "CREATE FUNCTION tp.refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN RETURN NULL; END$$;"
        'CREATE TRIGGER "~refuse" BEFORE UPDATE ON tp."Klant"'
        " FOR EACH ROW EXECUTE FUNCTION tp.refuse()"
    )
    conn.execute('UPDATE tp."Klant" SET "Code" = %s WHERE "Code" = %s', ["z-moved", two])
    conn.commit()
    assert _key_of(conn, "TX00000002") == two
    assert _held(conn, two) == (1, 1) and _held(conn, "z-moved") == (0, 0)


def test_the_shops_own_role_deletes_and_re_keys_with_no_rights_in_the_engine(
    text_keyed: psycopg.Connection[Any], as_role: Any
) -> None:
    """The shop's back office connects as a role of its own: rights on its table, none in the
    engine's schemas. The triggers run as the owner role."""
    conn = text_keyed
    role = "shop_bo_" + secrets.token_hex(4)
    conn.execute(f"CREATE ROLE {role} NOLOGIN")
    conn.execute(f"GRANT USAGE ON SCHEMA tk TO {role}")
    conn.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON tk.client TO {role}")
    conn.commit()
    one, _ = _old_customer(conn, "TX00000001", _unique("a"))
    two, _ = _old_customer(conn, "TX00000002", _unique("b"))
    shop = as_role(role)
    shop.execute("UPDATE tk.client SET ckey = 'moved' WHERE ckey = %s", [one])
    shop.execute("DELETE FROM tk.client WHERE ckey = %s", [two])
    assert _key_of(conn, "TX00000001") == "moved" and _has_consent(conn, "moved")
    assert not _has_consent(conn, two)
    assert conn.execute(
        "SELECT count(*) FROM sync.customer_link WHERE customer_number = 'TX00000002'"
    ).fetchone() == (0,)


def _watch(conn: psycopg.Connection[Any], table: LiteralString, key: str) -> None:
    """Marker triggers that fire exactly when the engine's triggers would: a statement naming
    the key column in its SET list, a DELETE."""
    conn.execute(
        "CREATE TABLE public.fired (op text);"
        "CREATE FUNCTION public.mark() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO public.fired VALUES (TG_OP); RETURN NULL; END $$"
    )
    target = sql.SQL(table)
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER zz_key AFTER UPDATE OF {} ON {} FOR EACH STATEMENT"
            " EXECUTE FUNCTION public.mark()"
        ).format(sql.Identifier(key), target)
    )
    conn.execute(
        sql.SQL(
            "CREATE TRIGGER zz_delete AFTER DELETE ON {} FOR EACH STATEMENT"
            " EXECUTE FUNCTION public.mark()"
        ).format(target)
    )
    conn.commit()


def test_the_feeds_upserts_fire_none_of_them(
    conn: psycopg.Connection[Any], shop: ShopSchema
) -> None:
    """New customers and updates, a login's stub and its refresh: the feed never names the key
    in an UPDATE and never deletes, so the triggers cost its upserts nothing."""
    _watch(conn, shop.customer_table, shop.key_column)
    stage(conn, [upserted(f"TX0000000{n}", 1) for n in range(1, 5)])
    stage(conn, [upserted(f"TX0000000{n}", 2, first_name="Bea") for n in range(1, 5)])
    stage(conn, [upserted("TX00000005", 1), upserted("TX00000001", 3, last_name="Smit")])
    conn.execute("SELECT * FROM sync.login_key('TX00000009', 'x')")
    conn.commit()
    stage(conn, [upserted("TX00000009", 1)])
    conn.commit()
    assert conn.execute("SELECT count(*) FROM public.fired").fetchone() == (0,)
    assert shop.count_customers(conn) == 6


def test_on_the_link_table_the_feeds_upserts_fire_none_of_them(
    text_keyed: psycopg.Connection[Any],
) -> None:
    conn = text_keyed
    _watch(conn, "tk.client", "ckey")
    stage(conn, [upserted(f"TX0000000{n}", 1) for n in range(1, 5)])
    stage(conn, [upserted(f"TX0000000{n}", 2, email=_unique("x")) for n in range(1, 5)])
    conn.commit()
    assert conn.execute("SELECT count(*) FROM public.fired").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM tk.client").fetchone() == (4,)


def test_a_customers_erased_mark_follows_its_key_and_goes_with_its_row(
    text_keyed: psycopg.Connection[Any],
) -> None:
    """A customer only the shop knows, anonymised in the back office, has its key marked erased
    (sync.erased_key, for the rows it shared): a key change takes the mark along, a delete
    removes it, a truncate removes every mark."""
    conn = text_keyed
    conn.execute(
        "INSERT INTO tk.client (ckey, mail) VALUES ('c-a', %s), ('c-b', %s)",
        [_unique("a"), _unique("b")],
    )
    for key in ("c-a", "c-b"):
        conn.execute("SELECT sync.anonymise_from_backoffice_key(%s, 'AVG', 'backoffice:t')", [key])
    conn.commit()

    def marks() -> set[str]:
        return {r[0] for r in conn.execute("SELECT customer_key FROM sync.erased_key")}

    assert marks() == {"c-a", "c-b"}
    conn.execute("UPDATE tk.client SET ckey = 'c-a2' WHERE ckey = 'c-a'")
    assert marks() == {"c-a2", "c-b"}
    conn.execute("DELETE FROM tk.client WHERE ckey = 'c-b'")
    assert marks() == {"c-a2"}
    conn.execute("TRUNCATE tk.client")
    assert marks() == set()


def test_coverage_lists_a_partition_attached_after_the_install(
    partitioned: psycopg.Connection[Any],
) -> None:
    """A partition attached after the install has none of the engine's statement triggers (a
    DELETE, TRUNCATE or key UPDATE naming it would leave the customers' links behind):
    coverage lists it until the mapping is installed again."""
    conn = partitioned
    owner = _owner(conn)

    def unbound() -> list[tuple[str, str]]:
        rows = conn.execute(
            "SELECT table_name, defect FROM sync.coverage_defects() WHERE kind = 'unbound'"
        ).fetchall()
        return [(str(t), str(d)) for t, d in rows]

    assert unbound() == []
    conn.execute('ALTER TABLE tp."Klant" DETACH PARTITION tp."Klant m-z"')
    conn.execute(
        "CREATE TABLE tp.\"Klant m-y\" PARTITION OF tp.\"Klant\" FOR VALUES FROM ('m') TO ('z');"
        'CREATE TABLE tp."Klant z+" PARTITION OF tp."Klant" FOR VALUES FROM (\'z\') TO (MAXVALUE);'
        f'GRANT TRIGGER ON tp."Klant m-y", tp."Klant z+" TO "{owner}"'
    )
    conn.commit()
    listed = unbound()
    assert [t for t, _ in listed] == ['tp."Klant m-y"', 'tp."Klant z+"'], listed
    assert "install the mapping again" in listed[0][1]

    conn.execute(f'SET ROLE "{owner}"')
    conn.execute(
        "SELECT sync.install_mapping(v.document, v.source) FROM sync.mapping_version AS v"
        " WHERE v.active"
    )
    conn.execute("RESET ROLE")
    conn.commit()
    assert unbound() == []
