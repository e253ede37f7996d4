"""Residue: once a customer is anonymised (tritonX's customer.anonymized, a tritonX delete of a
customer with orders, the back-office button, a shop customer without a tritonX number), none
of the person's values is left anywhere in the database: every text, varchar, char, json and
jsonb column of every table of every schema (found in information_schema, so a table added
later is searched too): the shop's tables, the inbox payloads of every delivery (older versions,
re-deliveries, the numbers merged into the customer), dead letters, outbox, audit.

What is searched, per anonymised person (the number and every number merged into it, over all
versions tritonX ever sent): emails, phones, mobiles and loyalty cards as substrings; first and
last name as a combination (in one text value, or as first_name/last_name of one row or one
JSON object); postcode and house number together (one row or one JSON object). A value that
another, not anonymised, customer also has is not searched: finding it proves nothing. The
search is shown to find every kind of value before the anonymisations.

The same runs on the second test schema, the boutique (tests/shops): its customer, address,
partitioned orders and reviews, anonymised through the feed and by number; there the address is
also searched the way the boutique writes it (one street column: street, number, addition)."""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from syncctl import gdpr
from syncctl.loader import read_cursor, stage_page, stage_records
from syncctl.simulator.state import TritonX
from syncctl.tritonx import ChangePage
from tests.feed import event, stage, upserted
from tests.integration.test_model import BoutiqueUnderTest
from tests.shops import CustomerKey, ShopSchema

CUSTOMERS = 300
SOURCE = "tritonx"
TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb")


# -------------------------------------------------------------------------------------------------
# A person's values
# -------------------------------------------------------------------------------------------------
@dataclass
class Person:
    """Every value of one identity (a number and the numbers merged into it), all versions."""

    substrings: set[str] = field(default_factory=set)  # email, phone, mobile, loyalty card
    names: set[tuple[str, str]] = field(default_factory=set)  # (first_name, last_name)
    addresses: set[tuple[str, int]] = field(default_factory=set)  # (postcode, house_number)

    def add(self, snap: dict[str, Any]) -> None:
        self.substrings |= {
            str(snap[k]) for k in ("email", "phone", "mobile", "loyalty_card") if snap.get(k)
        }
        if snap.get("first_name") and snap.get("last_name"):
            self.names.add((snap["first_name"], snap["last_name"]))
        if snap.get("postcode") and snap.get("house_number") is not None:
            self.addresses.add((snap["postcode"], int(snap["house_number"])))

    def without(self, others: Person) -> Person:
        return Person(
            self.substrings - others.substrings,
            self.names - others.names,
            self.addresses - others.addresses,
        )

    def kinds(self) -> set[str]:
        """The kinds of search (as residue() names them) this person has values for."""
        return {
            kind
            for kind, values in (
                ("value", self.substrings),
                ("name", self.names),
                ("address", self.addresses),
            )
            if values
        }


def people(tritonx: TritonX) -> dict[str, Person]:
    """Each final survivor's values, from every snapshot tritonX ever sent of it or of a
    number merged into it."""
    truth = tritonx.current_state()

    def final(number: str) -> str:
        while truth[number]["status"] == "merged":
            number = truth[number]["into"]
        return number

    found: dict[str, Person] = defaultdict(Person)
    for seq in range(1, tritonx.last_seq + 1):
        record = tritonx.event(seq)
        if record["type"] == "customer.upserted":
            found[final(record["customer_number"])].add(record["customer"])
    return found


# -------------------------------------------------------------------------------------------------
# Searching the whole database
# -------------------------------------------------------------------------------------------------
def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _name_pattern(first: str, last: str) -> str:
    """The name as written in one text: whole words ("Jan" is not the end of "Gert-Jan"), first
    then last, infixes between; case-sensitive, so an email made of the names is not a hit."""
    return f"(^|[^-[:alpha:]]){re.escape(first)}( [^ ]+)* {re.escape(last)}($|[^-[:alpha:]])"


def searchable_columns(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str, str]]:
    return conn.execute(
        "SELECT c.table_schema, c.table_name, c.column_name, c.data_type"
        " FROM information_schema.columns AS c"
        " JOIN information_schema.tables AS t USING (table_schema, table_name)"
        " WHERE t.table_type = 'BASE TABLE'"
        "   AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
        "   AND c.data_type = ANY(%s)"
        " ORDER BY 1, 2, 3",
        [list(TEXT_TYPES)],
    ).fetchall()


def column_pairs(
    conn: psycopg.Connection[Any], first: str, second: str
) -> list[tuple[str, str, str, str]]:
    """(schema, table, column like %first, column like %second) of the same table."""
    return conn.execute(
        "SELECT a.table_schema, a.table_name, a.column_name, b.column_name"
        " FROM information_schema.columns AS a"
        " JOIN information_schema.columns AS b USING (table_schema, table_name)"
        " JOIN information_schema.tables AS t USING (table_schema, table_name)"
        " WHERE t.table_type = 'BASE TABLE'"
        "   AND a.table_schema NOT IN ('pg_catalog', 'information_schema')"
        "   AND a.column_name LIKE %s AND b.column_name LIKE %s",
        ["%" + first, "%" + second],
    ).fetchall()


def residue(conn: psycopg.Connection[Any], persons: dict[str, Person]) -> set[tuple[str, str, str]]:
    """Every (where, kind, owner) at which a value of one of `persons` is found."""
    subs = [(v, o) for o, p in persons.items() for v in p.substrings]
    names = [(f, la, o) for o, p in persons.items() for f, la in p.names]
    addrs = [(pc, str(hn), o) for o, p in persons.items() for pc, hn in p.addresses]
    hits: set[tuple[str, str, str]] = set()

    def run(where: str, kind: str, query: sql.Composed, params: list[Any]) -> None:
        hits.update((where, kind, owner) for (owner,) in conn.execute(query, params).fetchall())

    for schema, table, column, data_type in searchable_columns(conn):
        where = f"{schema}.{table}.{column}"
        target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        col = sql.Identifier(column)
        run(
            where,
            "value",
            sql.SQL(
                "SELECT DISTINCT p.owner FROM {} AS t"
                " JOIN unnest(%s::text[], %s::text[]) AS p(pattern, owner)"
                " ON t.{}::text ILIKE p.pattern"
            ).format(target, col),
            [[_like(v) for v, _ in subs], [o for _, o in subs]],
        )
        if data_type in ("json", "jsonb"):
            for kind, rows, path, b_value in (
                ("name", names, "$.** ? (@.first_name == $a && @.last_name == $b)", "p.b"),
                ("address", addrs, "$.** ? (@.postcode == $a && @.house_number == $b)", "p.b::int"),
            ):
                run(
                    where,
                    kind,
                    sql.SQL(
                        "SELECT DISTINCT p.owner FROM {} AS t"
                        " JOIN unnest(%s::text[], %s::text[], %s::text[]) AS p(a, b, owner)"
                        " ON jsonb_path_exists(t.{}::jsonb, %s::jsonpath,"
                        "    jsonb_build_object('a', p.a, 'b', {}))"
                    ).format(target, col, sql.SQL(b_value)),
                    [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], path],
                )
        else:  # a name written as one text: "Anna Jansen", "Anna van Jansen"
            run(
                where,
                "name",
                sql.SQL(
                    "SELECT DISTINCT p.owner FROM {} AS t"
                    " JOIN unnest(%s::text[], %s::text[]) AS p(pattern, owner)"
                    " ON t.{}::text ~ p.pattern"
                ).format(target, col),
                [[_name_pattern(f, la) for f, la, _ in names], [o for _, _, o in names]],
            )
    for kind, rows, first, second in (
        ("name", names, "first_name", "last_name"),
        ("address", addrs, "postcode", "house_number"),
    ):
        for schema, table, a, b in column_pairs(conn, first, second):
            run(
                f"{schema}.{table}.{a}+{b}",
                kind,
                sql.SQL(
                    "SELECT DISTINCT p.owner FROM {}.{} AS t"
                    " JOIN unnest(%s::text[], %s::text[], %s::text[]) AS p(a, b, owner)"
                    " ON t.{}::text = p.a AND t.{}::text = p.b"
                ).format(
                    sql.Identifier(schema),
                    sql.Identifier(table),
                    sql.Identifier(a),
                    sql.Identifier(b),
                ),
                [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
            )
    conn.commit()
    return hits


# -------------------------------------------------------------------------------------------------
# Building the population
# -------------------------------------------------------------------------------------------------
def deliver(conn: psycopg.Connection[Any], tritonx: TritonX, rng: random.Random) -> None:
    while True:
        cursor = read_cursor(conn, SOURCE)
        conn.commit()
        events, next_cursor, more = tritonx.changes(int(cursor or 0), rng.randint(20, 80))
        stage_page(conn, SOURCE, cursor, ChangePage(events, str(next_cursor), more))
        if not more:
            return


def shop_rows(
    conn: psycopg.Connection[Any], customer_id: int, snap: dict[str, Any], n: int
) -> None:
    """What a webshop keeps of a customer: copies of name, address, email and phone."""
    name = " ".join(p for p in (snap["first_name"], snap["infix"], snap["last_name"]) if p)
    street = f"{snap['street']} {snap['house_number']}"
    conn.execute(
        "INSERT INTO shop.address (customer_id, kind, recipient_name, street, house_number,"
        " house_number_addition, postcode, city, country_code)"
        " VALUES (%s, 'delivery', %s, %s, %s, %s, %s, %s, %s)",
        [
            customer_id,
            name,
            snap["street"],
            snap["house_number"],
            snap["house_number_addition"],
            snap["postcode"],
            snap["city"],
            snap["country_code"],
        ],
    )
    for k in range(2):
        conn.execute(
            "INSERT INTO shop.orders (customer_id, order_number, total_amount, delivery_name,"
            " delivery_street, delivery_postcode, delivery_city, contact_email, contact_phone)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                customer_id,
                f"O-{n}-{k}",
                10 + k,
                name,
                street,
                snap["postcode"],
                snap["city"],
                snap["email"],
                snap["phone"] or snap["mobile"],
            ],
        )
    conn.execute(
        "INSERT INTO shop.favourite (customer_id, sku) VALUES (%s, 'sku-1'), (%s, %s)",
        [customer_id, customer_id, f"sku-{10 + n % 7}"],
    )
    conn.execute(
        "INSERT INTO shop.wishlist (customer_id, sku, note) VALUES (%s, 'sku-9', %s)",
        [customer_id, f"cadeau voor {name}"],
    )
    conn.execute(
        "INSERT INTO shop.cart (customer_id, items) VALUES (%s, %s)",
        [
            customer_id,
            Jsonb([{"sku": "sku-2", "gift_card_to": snap["email"], "sms": snap["mobile"]}]),
        ],
    )
    conn.execute(
        "INSERT INTO shop.login_identity (customer_id, login_name, password_hash)"
        " VALUES (%s, %s, 'x')",
        [customer_id, snap["email"]],
    )
    conn.execute(
        "INSERT INTO shop.newsletter_subscription (customer_id, list_name, email)"
        " VALUES (%s, 'weekly', %s)",
        [customer_id, snap["email"]],
    )
    conn.execute(
        "UPDATE shop.customer SET preferred_language = 'nl', last_login_at = now() WHERE id = %s",
        [customer_id],
    )


def malformed_copies(record: dict[str, Any], rng: random.Random) -> list[Any]:
    """What the simulator's chaos mode sends: broken copies of a real record (snapshot kept)."""
    copies: list[dict[str, Any]] = []
    for kind in range(5):
        broken = dict(record, event_id=f"broken-{rng.getrandbits(64):016x}")
        if kind == 0:
            del broken["event_id"]
        elif kind == 1:
            broken["version"] = "seven"
        elif kind == 2:
            broken["type"] = "customer.renamed"
        elif kind == 3:
            broken["customer_number"] = 12345
        else:
            broken["customer"] = dict(record["customer"], birth_date="2026-02-31")
        copies.append(broken)
    return copies


def latest_upserts(tritonx: TritonX, numbers: Iterable[str]) -> list[dict[str, Any]]:
    wanted = set(numbers)
    latest: dict[str, dict[str, Any]] = {}
    for seq in range(1, tritonx.last_seq + 1):
        record = tritonx.event(seq)
        if record["type"] == "customer.upserted" and record["customer_number"] in wanted:
            latest[record["customer_number"]] = record
    return list(latest.values())


def edit_and_merge(
    conn: psycopg.Connection[Any],
    tritonx: TritonX,
    rng: random.Random,
    numbers: list[str],
    merges: int,
    edits: int,
) -> tuple[list[str], list[str], list[str]]:
    """Later versions (new emails and mobiles: the old ones survive only in the inbox) of
    `edits` customers, `merges` merges, delivered: (olds, survivors, the not merged)."""
    shuffled = rng.sample(numbers, len(numbers))
    olds, survivors = shuffled[:merges], shuffled[merges : 2 * merges]
    for number in shuffled[2 * merges : 2 * merges + edits]:
        tritonx.edit(
            number,
            email=f"changed.{number.lower()}@example.org",
            mobile=f"+31 6 {rng.randrange(10**7, 10**8)}",
        )
    for old, survivor in zip(olds, survivors, strict=True):
        tritonx.merge(old, survivor)
    deliver(conn, tritonx, rng)
    return olds, survivors, shuffled[2 * merges :]


def stage_dead_letters(
    conn: psycopg.Connection[Any], tritonx: TritonX, rng: random.Random, numbers: list[str]
) -> None:
    """Dead letters holding their data: chaos-mode copies of the numbers' last upserts."""
    stage_records(
        conn,
        SOURCE,
        [c for r in latest_upserts(tritonx, numbers) for c in malformed_copies(r, rng)],
    )
    conn.commit()


def targets_of(everyone: dict[str, Person], erased: list[str]) -> dict[str, Person]:
    """The erased people's values that no one kept also has."""
    kept = Person()
    for number, person in everyone.items():
        if number not in erased:
            kept.substrings |= person.substrings
            kept.names |= person.names
            kept.addresses |= person.addresses
    return {n: everyone[n].without(kept) for n in erased}


def redeliver(conn: psycopg.Connection[Any], tritonx: TritonX, numbers: list[str]) -> None:
    """At least once: the numbers' older deliveries come again with their original ids, and a
    late upsert (a fresh id, a higher version) for each of them."""
    cursor = read_cursor(conn, SOURCE)
    conn.commit()
    stale = [
        r
        for seq in range(1, tritonx.last_seq + 1)
        if (r := tritonx.event(seq))["type"] == "customer.upserted"
        and r["customer_number"] in set(numbers)
    ]
    late = [
        dict(r, event_id=f"late-{i}", version=r["version"] + 50, seq=tritonx.last_seq + 1)
        for i, r in enumerate(latest_upserts(tritonx, numbers))
    ]
    stage_page(conn, SOURCE, cursor, ChangePage(stale + late, cursor or "0", False))


def assert_search_sees(
    conn: psycopg.Connection[Any], targets: dict[str, Person], places: set[str]
) -> None:
    """The search must be able to see residue: before anonymising, every kind of value of
    every target is found, in (at least) `places`."""
    before = residue(conn, targets)
    for owner, person in targets.items():
        assert {k for _, k, o in before if o == owner} == person.kinds(), owner
    assert {w for w, _, _ in before} >= places, sorted({w for w, _, _ in before})


def erase_in_tritonx(
    conn: psycopg.Connection[Any],
    tritonx: TritonX,
    rng: random.Random,
    anonymised: list[str],
    deleted: list[str],
    edited: list[str],
) -> None:
    """tritonX anonymises and deletes (they have orders: anonymised locally), edits customers
    about to be anonymised locally before it hears of it; delivered."""
    for number in anonymised:
        tritonx.anonymise(number)
    for number in deleted:
        tritonx.delete(number)
    for number in edited:
        tritonx.edit(number, city="Zwolle")
    deliver(conn, tritonx, rng)


def erase_by_request(conn: psycopg.Connection[Any], keys: Iterable[CustomerKey]) -> None:
    """Erasure requests for the customers `keys`, received, verified, scheduled and executed at
    once: each anonymises (the outbound event queued) and its proof, the residue search over
    every text and JSON column for the digests of the values the mapping places, finds nothing."""
    for key in keys:
        request = gdpr.receive_erasure(conn, str(key), actor="dpo:test")
        gdpr.verify_erasure(conn, request, actor="dpo:test")
        gdpr.schedule_erasure(conn, request, actor="dpo:test")
        proof = gdpr.execute_erasure(conn, request, actor="dpo:test")
        assert (proof.state, proof.residue_hits) == ("done", 0), proof
        assert proof.outbox_id is not None


@pytest.mark.slow
def test_anonymised_people_leave_no_residue_anywhere(conn: psycopg.Connection[Any]) -> None:
    rng = random.Random(29)
    tritonx = TritonX(customers=CUSTOMERS, seed=29)
    deliver(conn, tritonx, rng)
    ids: dict[str, int] = dict(
        conn.execute("SELECT customer_number, id FROM shop.customer").fetchall()
    )
    numbers = sorted(ids)
    for n, number in enumerate(numbers):
        customer = tritonx.customer(number)
        assert customer is not None and customer.snapshot is not None
        shop_rows(conn, ids[number], customer.snapshot, n)
    # shop customers without a tritonX number, anonymised from the back office only
    local_only: dict[str, Person] = {}
    for k in range(3):
        snap = dict(tritonx.customer(numbers[k]).snapshot or {})  # type: ignore[union-attr]
        snap.update(
            email=f"local.{k}@webshop.nl",
            mobile=f"+31 6 9900{k:04d}",
            phone=None,
            loyalty_card=f"LOCAL-{k:06d}",
            first_name=f"Lokaal{k}",
            postcode=f"99{k:02d} QQ",
        )
        row = conn.execute(
            "INSERT INTO shop.customer (email, first_name, last_name, mobile, loyalty_card,"
            " postcode, house_number) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [
                snap["email"],
                snap["first_name"],
                snap["last_name"],
                snap["mobile"],
                snap["loyalty_card"],
                snap["postcode"],
                snap["house_number"],
            ],
        ).fetchone()
        assert row is not None
        shop_rows(conn, row[0], snap, 10_000 + k)
        local_only[f"local:{row[0]}"] = Person()
        local_only[f"local:{row[0]}"].add(snap)
    for number in rng.sample(numbers, 40):
        conn.execute("SELECT * FROM sync.login(%s, %s)", [number, f"{number.lower()}@x.nl"])
    conn.commit()

    olds, survivors, singles = edit_and_merge(conn, tritonx, rng, numbers, 40, 120)
    by_feed = survivors[:12] + singles[:18]
    deleted = survivors[12:16] + singles[18:22]
    by_backoffice = survivors[16:24] + singles[22:32]
    erased = by_feed + deleted + by_backoffice
    stage_dead_letters(conn, tritonx, rng, erased + olds[:24])
    assert conn.execute("SELECT count(*) FROM sync.dead_letter").fetchone()[0] > 0  # type: ignore[index]

    everyone = people(tritonx)
    targets = targets_of(everyone, erased) | local_only
    assert all(len(p.substrings) >= 2 for p in targets.values())

    assert_search_sees(
        conn,
        targets,
        {
            "shop.customer.email",
            "shop.address.recipient_name",
            "shop.orders.contact_email",
            "shop.wishlist.note",
            "shop.cart.items",
            "shop.login_identity.login_name",
            "shop.newsletter_subscription.email",
            "sync.inbox.payload",
        },
    )
    erase_in_tritonx(conn, tritonx, rng, by_feed, deleted, by_backoffice[:4])
    for number in by_backoffice[:-4]:
        conn.execute(
            "SELECT sync.anonymise_from_backoffice(%s, 'AVG', 'backoffice:test')", [ids[number]]
        )
    conn.commit()
    # the last ones by an erasure request of the person: anonymised, and proved
    erase_by_request(conn, [ids[number] for number in by_backoffice[-4:]])
    for owner in local_only:
        conn.execute(
            "SELECT sync.anonymise_from_backoffice(%s, 'AVG', 'backoffice:test')",
            [int(owner.split(":")[1])],
        )
    conn.commit()
    for number in by_backoffice:  # the outbox reached tritonX; its event comes back
        tritonx.anonymise(number)
    deliver(conn, tritonx, rng)
    redeliver(conn, tritonx, erased + olds[:24])

    after = residue(conn, targets)
    where = Counter((w, k) for w, k, _ in after)
    assert not after, f"values of {len({o for _, _, o in after})} anonymised people left: {where}"
    # nobody else lost anything, and the bookkeeping is whole
    untouched = [n for n in singles[40:] if everyone[n].substrings][:20]
    found = {o for _, _, o in residue(conn, {n: everyone[n] for n in untouched})}
    assert found == set(untouched)
    assert conn.execute("SELECT count(*), sum(total_amount) FROM shop.orders").fetchone() == (
        2 * (CUSTOMERS + 3),
        21 * (CUSTOMERS + 3),
    )
    outbox = conn.execute("SELECT count(*) FROM sync.outbox").fetchone()
    assert outbox == (len(by_backoffice),)


# -------------------------------------------------------------------------------------------------
# The two ways residue was found to survive, each on its own
# -------------------------------------------------------------------------------------------------
def inbox_holding(conn: psycopg.Connection[Any], value: str) -> list[tuple[Any, ...]]:
    rows = conn.execute(
        "SELECT s.inbox_id, s.state, s.reason FROM sync.inbox_status AS s"
        " JOIN sync.inbox AS i ON i.id = s.inbox_id WHERE i.payload::text LIKE %s"
        " ORDER BY 1",
        [_like(value)],
    ).fetchall()
    conn.commit()
    return rows


def test_a_redelivery_after_the_anonymisation_keeps_no_snapshot(
    conn: psycopg.Connection[Any],
) -> None:
    """At least once: tritonX may send an older event again, with its original id, after the
    customer was anonymised (the simulator's chaos mode does). The re-delivery is a duplicate,
    but its snapshot is personal data of an anonymised customer: the inbox must not keep it."""
    first = upserted("TX00000901", 1, email="residue.one@example.nl")
    stage(conn, [first])
    stage(conn, [event("customer.anonymized", "TX00000901", 2, reason_code="AVG")])
    assert inbox_holding(conn, "residue.one@example.nl") == []
    stage(conn, [first])  # the same delivery again
    assert inbox_holding(conn, "residue.one@example.nl") == []


def test_a_dead_letter_naming_the_customer_only_in_its_snapshot_is_scrubbed(
    conn: psycopg.Connection[Any],
) -> None:
    """The simulator's chaos mode sends a copy of a real record whose customer_number is not
    a string; the snapshot inside still names the customer. After the customer is anonymised
    neither the dead letter's payload nor anything else may hold the snapshot."""
    stage(conn, [upserted("TX00000902", 1)])
    broken = dict(upserted("TX00000902", 2, email="residue.two@example.nl"), customer_number=12345)
    stage(conn, [broken])
    assert [r[1] for r in inbox_holding(conn, "residue.two@example.nl")] == ["dead_letter"]
    stage(conn, [event("customer.anonymized", "TX00000902", 3, reason_code="AVG")])
    assert inbox_holding(conn, "residue.two@example.nl") == []


# -------------------------------------------------------------------------------------------------
# The same on the second test schema, the boutique
# -------------------------------------------------------------------------------------------------
BOUTIQUE_CUSTOMERS = 120


def boutique_rows(
    conn: psycopg.Connection[Any], shop: ShopSchema, key: CustomerKey, snap: dict[str, Any], n: int
) -> None:
    """What the boutique keeps of a customer beyond the mapped columns: orders in two monthly
    partitions and the default one with the delivery name, a favourite, a review naming it."""
    name = " ".join(p for p in (snap["first_name"], snap["infix"], snap["last_name"]) if p)
    for month in (1 + n % 12, 13):
        placed_at = (
            datetime(2026, month, 10, tzinfo=UTC)
            if month <= 12
            else datetime(2027, 5, 1, tzinfo=UTC)
        )
        order = shop.place_order(conn, key, placed_at)
        conn.execute(
            "UPDATE sales.orders SET total_amount = 10, delivery_name = %s WHERE id = %s",
            [name, order],
        )
    shop.add_favourite(conn, key, f"sku-{n % 7}")
    conn.execute(
        'INSERT INTO sales."Review" (customer_ref, sku, rating, body) VALUES (%s, %s, 5, %s)',
        [key, f"sku-{n % 7}", f"{name} says: {snap['email']}"],
    )
    conn.execute(
        "UPDATE crm.customer SET notes = %s WHERE customer_uuid = %s",
        [f"call {snap['phone'] or snap['mobile']}", key],
    )


def streets(tritonx: TritonX, owners: Iterable[str]) -> set[str]:
    """The boutique's street values of every snapshot of the final survivors `owners`."""
    wanted = set(owners)
    truth = tritonx.current_state()
    found = set()
    for seq in range(1, tritonx.last_seq + 1):
        record = tritonx.event(seq)
        if record["type"] != "customer.upserted":
            continue
        number = record["customer_number"]
        while truth[number]["status"] == "merged":
            number = truth[number]["into"]
        snap = record["customer"]
        parts = (snap["street"], snap["house_number"], snap["house_number_addition"])
        if number in wanted and snap["street"]:
            found.add(" ".join(str(p).strip() for p in parts if p is not None and str(p).strip()))
    return found


def streets_held(conn: psycopg.Connection[Any], values: set[str]) -> int:
    row = conn.execute(
        'SELECT count(*) FROM crm."CustomerAddress" WHERE street = ANY(%s)', [sorted(values)]
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


@pytest.mark.slow
def test_anonymised_people_leave_no_residue_anywhere_on_the_boutique(
    conn: psycopg.Connection[Any],
) -> None:
    """The boutique (tests/shops/boutique.sql) bound, classified and mapped as the model test
    binds it: after anonymisations through the feed (customer.anonymized, a delete of a customer
    with orders) and by number (sync.anonymise_customer, then tritonX's event coming back), none
    of the people's values is left in any text or json column of any table, the boutique's
    (customer, address, orders in every partition, reviews) and the engine's."""
    schema = BoutiqueUnderTest()
    schema.prepare(conn)
    conn.commit()
    shop = schema.shop
    rng = random.Random(31)
    tritonx = TritonX(customers=BOUTIQUE_CUSTOMERS, seed=31)
    deliver(conn, tritonx, rng)
    keys: dict[str, CustomerKey] = dict(
        conn.execute("SELECT customer_number, customer_key FROM syncmap.customer_map").fetchall()
    )
    numbers = sorted(keys)
    assert len(numbers) == BOUTIQUE_CUSTOMERS
    for n, number in enumerate(numbers):
        customer = tritonx.customer(number)
        assert customer is not None and customer.snapshot is not None
        boutique_rows(conn, shop, keys[number], customer.snapshot, n)
    conn.commit()

    olds, survivors, singles = edit_and_merge(conn, tritonx, rng, numbers, 16, 48)
    by_feed = survivors[:6] + singles[:8]
    deleted = survivors[6:9] + singles[8:11]
    by_number = survivors[9:12] + singles[11:15]
    erased = by_feed + deleted + by_number
    stage_dead_letters(conn, tritonx, rng, erased + olds[:8])

    everyone = people(tritonx)
    targets = targets_of(everyone, erased)
    assert all(len(p.substrings) >= 2 for p in targets.values())
    # the address as the boutique writes it ("street number addition"), which the pairs of
    # residue() do not cover: found before, gone after
    kept_numbers = set(everyone) - set(erased)
    assert streets_held(conn, streets(tritonx, erased) - streets(tritonx, kept_numbers)) > 0

    assert_search_sees(
        conn,
        targets,
        {
            "crm.customer.email",
            "crm.customer.full_name",
            "crm.customer.phone",
            "crm.customer.notes",
            "sales.orders.delivery_name",
            "sales.Review.body",
            "sync.inbox.payload",
        },
    )
    erase_in_tritonx(conn, tritonx, rng, by_feed, deleted, by_number[:3])
    for number in by_number[:-3]:
        conn.execute("SELECT sync.anonymise_customer(%s, 'AVG', 'ops:test')", [number])
    conn.commit()
    # the last ones by an erasure request of the person (the uuid key as text): proved
    erase_by_request(conn, [keys[number] for number in by_number[-3:]])
    for number in by_number:  # the outbox reached tritonX; its event comes back
        tritonx.anonymise(number)
    deliver(conn, tritonx, rng)
    redeliver(conn, tritonx, erased + olds[:8])

    after = residue(conn, targets)
    where = Counter((w, k) for w, k, _ in after)
    assert not after, f"values of {len({o for _, _, o in after})} anonymised people left: {where}"
    assert streets_held(conn, streets(tritonx, erased) - streets(tritonx, kept_numbers)) == 0
    untouched = [n for n in singles[20:] if everyone[n].substrings][:15]
    found = {o for _, _, o in residue(conn, {n: everyone[n] for n in untouched})}
    assert found == set(untouched)
    # the orders stay (bookkeeping), each in its partition
    assert conn.execute(
        "SELECT count(*), count(DISTINCT tableoid) FROM sales.orders"
    ).fetchone() == (2 * BOUTIQUE_CUSTOMERS, 13)
    outbox = conn.execute("SELECT count(*) FROM sync.outbox").fetchone()
    assert outbox == (len(by_number),)


def test_a_shared_address_both_customers_leave_in_one_batch_leaves_no_residue(
    conn: psycopg.Connection[Any],
) -> None:
    schema = BoutiqueUnderTest()
    schema.prepare(conn)
    conn.commit()
    stage(conn, [upserted("TX00000911", 1), upserted("TX00000912", 1, street="Gedeeldpad")])
    # a household: the first customer is pointed at the second one's address
    conn.execute(
        "UPDATE crm.customer SET address_id = (SELECT address_id FROM crm.customer"
        " WHERE tx_ref = 'TX00000912') WHERE tx_ref = 'TX00000911'"
    )
    conn.execute(
        'DELETE FROM crm."CustomerAddress" AS a'
        " WHERE NOT EXISTS (SELECT FROM crm.customer AS c WHERE c.address_id = a.id)"
    )
    conn.commit()
    stage(conn, [upserted("TX00000911", 2, city="Zwolle"), upserted("TX00000912", 2, city="Ede")])
    for number in ("TX00000911", "TX00000912"):
        stage(conn, [event("customer.anonymized", number, 3, reason_code="AVG")])
    assert streets_held(conn, {"Gedeeldpad 12 A"}) == 0
