"""Subject access, rectification, erasure with its proof, and the reports, on the boutique
(tests/shops/boutique.sql, mapped by tests/shops/boutique.toml): a uuid key taken as text, one
full-name column, the address in a table the customer row points to, orders partitioned by
month, reviews referring to the customer without a foreign key. The export holds every row of
the person once and nothing of anyone else; rectification refuses the columns tritonX and the
engine write; an erasure request anonymises, and its proof finds what is left of the person's
values where the mapping puts them (the full name, the street column), but never in a
household member's rows."""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import stat
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from syncctl import errors, gdpr
from syncctl.cli.gdpr import erasure, export_command
from tests.feed import snapshot, stage, upserted
from tests.shops import Boutique
from tests.shops.binding import bind_boutique

SHOP = Boutique()
NOW = datetime(2026, 11, 1, tzinfo=UTC)
# an order in a monthly partition, one in another, one in the default partition
ORDER_TIMES = (
    datetime(2026, 1, 15, 10, tzinfo=UTC),
    datetime(2026, 6, 30, 23, tzinfo=UTC),
    datetime(2028, 2, 1, tzinfo=UTC),
)


@pytest.fixture
def boutique(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """The boutique installed, granted, classified and mapped (the engine bound to it)."""
    bind_boutique(conn, SHOP, classified=True)
    yield conn


def _word() -> str:
    return secrets.token_hex(5)


def _person() -> dict[str, Any]:
    """Random personal values: found only where this person left them."""
    return {
        "email": f"{_word()}@example.nl",
        "first_name": f"F{_word()}",
        "infix": "van",
        "last_name": f"L{_word()}",
        "phone": None,
        "mobile": f"+31 6 {secrets.randbelow(10**8):08d}",
        "street": f"S{_word()}",
        "house_number": secrets.randbelow(900) + 1,
        "house_number_addition": None,
        "postcode": f"{secrets.randbelow(9000) + 1000} {_word()[:2].upper()}",
        "city": f"C{_word()}",
    }


def _full_name(person: dict[str, Any]) -> str:
    return f"{person['first_name']} {person['infix']} {person['last_name']}"


def _street(person: dict[str, Any]) -> str:
    return f"{person['street']} {person['house_number']}"


def _customer(conn: psycopg.Connection[Any], number: str, person: dict[str, Any]) -> str:
    """A customer tritonX created through the feed, with orders in three partitions, a
    favourite and a review; its key as text."""
    stage(conn, [upserted(number, 1, **person)])
    key = SHOP.key_of(conn, number)
    assert key is not None
    for at in ORDER_TIMES:
        order = SHOP.place_order(conn, key, at)
        conn.execute(
            "UPDATE sales.orders SET delivery_name = %s WHERE id = %s", [_full_name(person), order]
        )
    SHOP.add_favourite(conn, key, f"sku-{number}")
    conn.execute(
        'INSERT INTO sales."Review" (customer_ref, sku, rating, body) VALUES (%s, %s, 5, %s)',
        [key, f"sku-{number}", f"review of {number}"],
    )
    conn.execute(
        "UPDATE crm.customer SET notes = %s WHERE customer_uuid = %s", [f"notes {number}", key]
    )
    conn.commit()
    return str(key)


def _everything(text: str, person: dict[str, Any]) -> list[str]:
    """The person's values found in `text`."""
    values = [person["email"], person["mobile"], _full_name(person), _street(person)]
    return [v for v in values if v in text]


def test_the_export_holds_every_row_of_the_person_once_and_nothing_of_anyone_else(
    boutique: psycopg.Connection[Any], dsn: str
) -> None:
    conn = boutique
    anna, bea = _person(), _person()
    key = _customer(conn, "TX00000101", anna)
    other = _customer(conn, "TX00000102", bea)
    gdpr.activate_policy(conn, "club", actor="dpo:test")
    conn.execute("SELECT gdpr.record_consent(%s::text, 'club', true)", [key])
    conn.execute("SELECT gdpr.record_consent(%s::text, 'club', false)", [other])
    conn.commit()

    data = gdpr.subject_data(conn, customer_id=key.upper())  # any text form of the key
    assert (data.customer_key, data.customer_id, data.customer_number) == (
        key,
        None,
        "TX00000101",
    )
    assert data.customer_table == "crm.customer"
    tables = data.tables
    assert [r["full_name"] for r in tables["crm.customer"]] == [_full_name(anna)]
    assert [r["street"] for r in tables['crm."CustomerAddress"']] == [_street(anna)]
    # partitioned: read through the parent, each row once
    assert len(tables["sales.orders"]) == len(ORDER_TIMES)
    assert not [t for t in tables if t.startswith("sales.orders_")]
    assert [r["body"] for r in tables['sales."Review"']] == ["review of TX00000101"]
    assert [r["sku"] for r in tables["crm.favourite"]] == ["sku-TX00000101"]
    assert [r["granted"] for r in tables["gdpr.consent"]] == [True]
    assert [r["version"] for r in tables["sync.customer_link"]] == [1]  # version = "link"
    assert [r["code"] for r in tables["gdpr.policy"]] == ["club"]  # the one in force
    # whether it still holds the data, and till when, for a uuid key too
    assert [r["held"] for r in tables["gdpr.policy"]] == [True]
    assert tables["gdpr.policy"][0]["held_until"] is not None
    assert tables["sync.inbox"][0]["payload"]["customer"]["email"] == anna["email"]

    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)
    outputs = {}
    for fmt in ("json", "html"):
        result = runner.invoke(export_command, ["--id", key, "--format", fmt], obj=settings)
        assert result.exit_code == 0, result.output
        outputs[fmt] = result.output
    document = json.loads(outputs["json"])
    assert document["customer_key"] == key and document["customer_number"] == "TX00000101"
    assert sorted(document["tables"]) == sorted(tables)
    assert "Your customer record" in outputs["html"]
    for fmt, text in outputs.items():
        assert _everything(text, anna) == [
            anna["email"],
            anna["mobile"],
            _full_name(anna),
            _street(anna),
        ], fmt
        assert _everything(text, bea) == [], fmt
        assert other not in text and "TX00000102" not in text, fmt
    nobody = runner.invoke(export_command, ["--id", "not-a-uuid-" + _word()], obj=settings)
    assert nobody.exit_code != 0 and "no local customer has this key" in nobody.output
    assert "not-a-uuid" not in nobody.output


def test_the_export_writes_numbers_exactly_as_the_database_holds_them(
    boutique: psycopg.Connection[Any], dsn: str, tmp_path: Path
) -> None:
    """An amount of numeric(12, 2) keeps its scale (12.50, 100.00) and a wide numeric its
    every digit, in JSON (still a number), HTML and CSV: the database's values, not a float's."""
    conn = boutique
    key = _customer(conn, "TX00000109", _person())
    conn.execute("ALTER TABLE sales.orders ADD COLUMN credit numeric")
    conn.execute(
        "UPDATE sales.orders SET total_amount = 12.50, credit = 12345678901234567.8901"
        " WHERE customer_uuid = %s AND placed_at = %s",
        [key, ORDER_TIMES[0]],
    )
    conn.execute(
        "UPDATE sales.orders SET total_amount = 100.00, credit = 0.0000001"
        " WHERE customer_uuid = %s AND placed_at = %s",
        [key, ORDER_TIMES[1]],
    )
    conn.commit()
    expected = {
        ("12.50", "12345678901234567.8901"),
        ("100.00", "0.0000001"),
        ("0.00", ""),
    }
    settings = SimpleNamespace(dsn=dsn)
    runner = CliRunner()

    def export(*args: str) -> str:
        result = runner.invoke(export_command, ["--id", key, *args], obj=settings)
        assert result.exit_code == 0, result.output
        return result.output

    document = json.loads(export("--format", "json"), parse_float=Decimal)
    amounts = {(r["total_amount"], r["credit"]) for r in document["tables"]["sales.orders"]}
    assert amounts == {(Decimal(a), Decimal(c) if c else None) for a, c in expected}
    assert all(isinstance(a, Decimal) for a, _ in amounts)  # numbers, not strings
    page = export("--format", "html")
    for amount, credit in expected:
        assert f"<td>{amount}</td>" in page and f"<td>{credit}</td>" in page
    archive = tmp_path / "subject.zip"
    export("--format", "csv", "--output", str(archive))
    with zipfile.ZipFile(archive) as bundle:
        orders = csv.DictReader(io.StringIO(bundle.read("sales.orders.csv").decode()))
        assert {(r["total_amount"], r["credit"]) for r in orders} == expected


def test_the_export_never_writes_into_a_file_that_was_there_before(
    boutique: psycopg.Connection[Any], dsn: str, tmp_path: Path
) -> None:
    """`--output PATH` puts a new file of mode 600 in PATH's place: a reader that opened the old
    file (written 644 by someone else's umask) never sees the person's data, and a symbolic link
    there is replaced, not followed to where it points."""
    conn = boutique
    anna = _person()
    key = _customer(conn, "TX00000110", anna)
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)
    target = tmp_path / "subject.json"
    target.write_text("")
    target.chmod(0o644)
    elsewhere = tmp_path / "elsewhere.html"
    elsewhere.write_text("")
    link = tmp_path / "subject.html"
    link.symlink_to(elsewhere)

    with target.open() as earlier:
        result = runner.invoke(export_command, ["--id", key, "--output", str(target)], obj=settings)
        assert result.exit_code == 0, result.output
        assert earlier.read() == ""
    result = runner.invoke(
        export_command, ["--id", key, "--format", "html", "--output", str(link)], obj=settings
    )
    assert result.exit_code == 0, result.output

    assert elsewhere.read_text() == ""
    assert not link.is_symlink() and anna["email"] in link.read_text()
    assert json.loads(target.read_text())["customer_key"] == key
    for written in (target, link):
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "elsewhere.html",
        "subject.html",
        "subject.json",
    ]

    # a pipe (or /dev/stdout) is written to, not replaced by a file
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    result = runner.invoke(export_command, ["--id", key, "--output", str(pipe)], obj=settings)
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert len(received) == 1 and json.loads(received[0])["customer_key"] == key
    assert stat.S_ISFIFO(pipe.stat().st_mode)


def test_rectify_takes_the_shops_own_columns_and_refuses_what_tritonx_and_the_engine_write(
    boutique: psycopg.Connection[Any],
) -> None:
    conn = boutique
    key = _customer(conn, "TX00000103", _person())
    assert gdpr.rectify(conn, key, {"notes": "call after 5"}, actor="bo:test") == ["notes"]
    row = conn.execute("SELECT notes FROM crm.customer WHERE customer_uuid = %s", [key])
    assert row.fetchone() == ("call after 5",)
    for field, why in (
        ("full_name", "owned by tritonX"),
        ("email", "owned by tritonX"),
        ("tx_ref", "not correctable"),
        ("customer_uuid", "not correctable"),
        ("address_id", "not correctable"),
    ):
        with pytest.raises(errors.GdprRefusal) as refused:
            gdpr.rectify(conn, key, {field: "Jansen 12"}, actor="bo:test")
        assert refused.value.sqlstate == "SY085"
        assert f"{field} ({why}" in str(refused.value), field
        assert "Jansen" not in str(refused.value)
    with pytest.raises(errors.GdprRefusal) as misfit:
        gdpr.rectify(conn, key, {"shop_id": "Jansen 12"}, actor="bo:test")
    assert misfit.value.sqlstate == "SY085" and "Jansen" not in str(misfit.value)
    audit = conn.execute(
        "SELECT actor, customer_number, customer_id, reason FROM sync.audit"
        " WHERE action = 'customer.rectified'"
    ).fetchall()
    assert audit == [("bo:test", "TX00000103", None, "fields: notes")]


def test_an_erasure_request_erases_and_proves_it_where_the_mapping_puts_the_values(
    boutique: psycopg.Connection[Any], dsn: str
) -> None:
    conn = boutique
    anna = _person()
    key = _customer(conn, "TX00000104", anna)
    # a household member pointed at a copy of the subject's address, with the subject's name
    # on an order of their own, and a second customer with the subject's e-mail
    household = _customer(conn, "TX00000105", dict(_person(), last_name=anna["last_name"]))
    conn.execute(
        'INSERT INTO crm."CustomerAddress" (street, zip, city, country, created_by)'
        " VALUES (%s, %s, %s, 'NL', 'shop') RETURNING id",
        [_street(anna), anna["postcode"], anna["city"]],
    )
    conn.execute(
        "UPDATE crm.customer SET address_id = currval(pg_get_serial_sequence("
        " 'crm.\"CustomerAddress\"', 'id')) WHERE customer_uuid = %s",
        [household],
    )
    conn.execute(
        "UPDATE sales.orders SET delivery_name = %s WHERE customer_uuid = %s",
        [_full_name(anna), household],
    )
    duplicate = _customer(conn, "TX00000106", dict(_person(), email=anna["email"].upper()))
    # residue the anonymisation cannot know about: copies in a table of the shop's own
    conn.execute("CREATE TABLE public.notes (id int PRIMARY KEY, body text)")
    conn.execute("GRANT SELECT ON public.notes TO syncctl_owner")
    conn.execute(
        "INSERT INTO public.notes VALUES (1, %s), (2, %s)",
        [f"call {_full_name(anna)} back", f"deliver to {_street(anna)}"],
    )
    conn.commit()

    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)

    def run(*args: str) -> str:
        result = runner.invoke(erasure, [*args, "--actor", "bo:test"], obj=settings)
        assert result.exit_code == 0, result.output
        return result.output

    assert "erasure request 1: received" in run("receive", "--id", key.upper())
    with pytest.raises(errors.GdprRefusal) as twice:
        gdpr.receive_erasure(conn, key, actor="bo:test", now=NOW)
    assert twice.value.sqlstate == "SY087" and key not in str(twice.value)
    run("verify", "1")
    stored = conn.execute("SELECT to_jsonb(e)::text FROM gdpr.erasure_request AS e").fetchone()
    assert stored is not None and _everything(stored[0], anna) == []
    run("schedule", "1")
    (listed,) = gdpr.erasure_requests(conn)
    assert (listed.customer_key, listed.customer_number) == (key, "TX00000104")

    proof = gdpr.execute_erasure(conn, 1, actor="bo:test")
    assert proof.state == "failed"
    assert proof.residue == {"public.notes.body": 2}
    assert proof.same_email_customers == [duplicate]
    assert proof.outbox_id is not None
    conn.execute("DELETE FROM public.notes")
    conn.commit()
    executed = run("execute", "1")
    assert "erasure request 1: done" in executed and "residue hits 0" in executed

    row = conn.execute(
        "SELECT c.full_name, c.email, a.street FROM crm.customer AS c"
        ' LEFT JOIN crm."CustomerAddress" AS a ON a.id = c.address_id'
        " WHERE c.customer_uuid = %s",
        [key],
    ).fetchone()
    assert row is not None and row[0] == "(anonymised)" and row[2] is None
    assert anna["email"] not in str(row)
    # the household keeps what is theirs, including what it shares with the subject
    assert conn.execute(
        'SELECT a.street FROM crm.customer AS c JOIN crm."CustomerAddress" AS a'
        " ON a.id = c.address_id WHERE c.customer_uuid = %s",
        [household],
    ).fetchone() == (_street(anna),)
    assert conn.execute(
        "SELECT DISTINCT delivery_name FROM sales.orders WHERE customer_uuid = %s", [household]
    ).fetchall() == [(_full_name(anna),)]
    report = conn.execute(
        "SELECT customer_key, customer_number, state FROM report.erasure_requests"
    ).fetchall()
    assert report == [(key, "TX00000104", "done")]
    anonymised = conn.execute(
        "SELECT customer_key, customer_number FROM report.anonymisations"
    ).fetchall()
    assert anonymised == [(key, "TX00000104")]
    audit = conn.execute("SELECT string_agg(to_jsonb(a)::text, ' ') FROM sync.audit AS a")
    assert _everything(str(audit.fetchone()), anna) == []


def test_the_subjects_own_rows_are_searched_other_customers_rows_are_theirs(
    boutique: psycopg.Connection[Any],
) -> None:
    """The residue search's scopes for a uuid key: the subject's own rows of the customer,
    address, orders (every partition) and reviews (declared reference) are searched, rows of
    nobody are searched, another customer's rows are not."""
    conn = boutique
    anna = _person()
    key = _customer(conn, "TX00000107", anna)
    other = _customer(conn, "TX00000108", _person())
    name = _full_name(anna)
    conn.execute(
        'INSERT INTO sales."Review" (customer_ref, sku, rating, body)'
        " VALUES (%s, 'x', 1, %s), (NULL, 'x', 1, %s)",
        [other, f"{name} was here", f"{name} as a guest"],
    )
    conn.execute(
        "UPDATE sales.orders SET delivery_name = %s WHERE customer_uuid = %s", [name, other]
    )
    conn.commit()
    digest = conn.execute("SELECT gdpr._digest(%s)", [name]).fetchone()
    assert digest is not None
    scoped = dict(
        conn.execute(
            "SELECT column_name, hits FROM gdpr.residue_search(%s, %s)"
            " WHERE column_name NOT LIKE 'sync.%%'",
            [[digest[0]], key],
        ).fetchall()
    )
    assert scoped == {
        "crm.customer.full_name": 1,
        "sales.orders.delivery_name": len(ORDER_TIMES),
        "sales.Review.body": 1,  # the guest's, not the other customer's
    }
    everywhere = dict(
        conn.execute(
            "SELECT column_name, hits FROM gdpr.residue_search(%s)"
            " WHERE column_name NOT LIKE 'sync.%%'",
            [[digest[0]]],
        ).fetchall()
    )
    assert everywhere["sales.orders.delivery_name"] == 2 * len(ORDER_TIMES)
    assert everywhere["sales.Review.body"] == 2


def test_the_audit_and_the_reports_name_a_uuid_customer_by_its_key(
    boutique: psycopg.Connection[Any],
) -> None:
    """sync.audit.customer_key: the feed's upserts, a merge's survivor, the back office's
    anonymisation of a customer tritonX never knew (no number: named by the key alone); the
    report views show them."""
    conn = boutique
    old = _customer(conn, "TX00000109", _person())
    survivor = _customer(conn, "TX00000110", _person())
    conn.execute("SELECT sync.merge_customer('TX00000109', 'TX00000110', NULL, 'ops:test')")
    local = SHOP.add_customer(conn, snapshot("TX00000111", **_person()), linked=False)
    conn.execute(
        "SELECT sync.anonymise_from_backoffice_key(%s, 'AVG', 'backoffice:test')", [str(local)]
    )
    conn.commit()
    audit = conn.execute(
        "SELECT action, customer_number, customer_key FROM sync.audit"
        " WHERE action IN ('customer.upserted', 'customer.merged', 'customer.anonymized')"
        " ORDER BY id"
    ).fetchall()
    assert audit == [
        ("customer.upserted", "TX00000109", old),
        ("customer.upserted", "TX00000110", survivor),
        ("customer.merged", "TX00000109", survivor),
        ("customer.anonymized", None, str(local)),
    ]
    merges = conn.execute("SELECT DISTINCT survivor_key FROM report.merge_rows_moved").fetchall()
    assert merges == [(survivor,)]
    anonymised = conn.execute(
        "SELECT customer_number, customer_key, source FROM report.anonymisations"
    ).fetchall()
    assert anonymised == [(None, str(local), "back office")]


def test_the_proof_reads_related_rows_that_point_to_the_customer(
    boutique: psycopg.Connection[Any],
) -> None:
    """A mapping whose phones are rows of their own pointing to the customer, one per kind
    (via = { column, kind }): verification takes the digests from them, the erasure removes
    them and the proof finds a copy left elsewhere."""
    conn = boutique
    conn.execute(
        "CREATE TABLE crm.contact (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " customer_uuid uuid NOT NULL REFERENCES crm.customer, kind text NOT NULL,"
        " number varchar(32), UNIQUE (customer_uuid, kind));"
        " GRANT SELECT, INSERT, UPDATE, DELETE ON crm.contact TO syncctl_owner;"
        " GRANT USAGE ON SEQUENCE crm.contact_id_seq TO syncctl_owner;"
        " CREATE TABLE public.copies (body text);"
        " GRANT SELECT ON public.copies TO syncctl_owner;"
        " SET ROLE syncctl_owner;"
        " INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy)"
        " VALUES ('crm', 'contact', 'id', 'not_personal'),"
        " ('crm', 'contact', 'customer_uuid', 'not_personal'),"
        " ('crm', 'contact', 'kind', 'not_personal'), ('crm', 'contact', 'number', 'null');"
        " INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)"
        " VALUES ('crm', 'contact', 'delete_rows', false)"
    )

    def contact(kind: str, field: str) -> dict[str, Any]:
        return {
            "name": kind,
            "schema": "crm",
            "table": "contact",
            "key": "id",
            "key_generate": "identity",
            "via": {"column": "customer_uuid", "kind": {"column": "kind", "value": kind}},
            "on_anonymise": "scrub_or_detach",
            "columns": {"number": field},
        }

    mapping = json.loads(json.dumps(SHOP.mapping))
    del mapping["customer"]["columns"]["phone"]
    mapping["related"] += [contact("mobile", "mobile"), contact("home", "phone")]
    conn.execute("SELECT sync.install_mapping(%s::jsonb, 'phones')", [json.dumps(mapping)])
    conn.execute("RESET ROLE")
    conn.commit()
    anna = dict(_person(), phone=f"+31 20 {secrets.randbelow(10**7):07d}")
    key = _customer(conn, "TX00000112", anna)
    assert conn.execute(
        "SELECT kind, number FROM crm.contact WHERE customer_uuid = %s ORDER BY kind", [key]
    ).fetchall() == [("home", anna["phone"]), ("mobile", anna["mobile"])]
    assert {"crm.contact"} <= set(gdpr.subject_data(conn, customer_id=key).tables)

    request = gdpr.receive_erasure(conn, key, actor="bo:test")
    gdpr.verify_erasure(conn, request, actor="bo:test")
    digests = conn.execute(
        "SELECT digests @> ARRAY[gdpr._digest(%s), gdpr._digest(%s)]"
        " FROM gdpr.erasure_request WHERE id = %s",
        [anna["phone"], anna["mobile"], request],
    ).fetchone()
    assert digests == (True,)
    gdpr.schedule_erasure(conn, request, actor="bo:test")
    conn.execute("INSERT INTO public.copies VALUES (%s)", [f"ring {anna['phone']} tonight"])
    conn.commit()
    proof = gdpr.execute_erasure(conn, request, actor="bo:test")
    assert (proof.state, proof.residue) == ("failed", {"public.copies.body": 1})
    assert conn.execute(
        "SELECT count(*) FROM crm.contact WHERE customer_uuid = %s", [key]
    ).fetchone() == (0,)
