"""syncctl on a third, deliberately untidy shop schema (tests/shops/untidy.sql, its mapping
tests/shops/untidy.toml), installed only by the steps docs/own-database.md gives a DBA, every
step through the CLI in a subprocess: `db upgrade`, `mapping check` (its GRANTs run as printed),
`mapping install`, `coverage` (the look-alike column listed), the feed from the simulator
(upserts, merges, anonymisations, deletes, dead letters retried and discarded, duplicates and
stale versions), a changed mapping installed as the next version, login and refresh as the
webshop's role, a subject access export and an erasure. Throughout, nothing of the shop's
catalog (objects, owners, grants) changes except what the DBA ran, and no personal value reaches
an audit row, a dead letter's reason or an error."""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.acceptance.conftest import SYNCCTL, TOKEN, Simulator, syncctl

SHOPS = Path(__file__).parents[1] / "shops"
SCHEMA = SHOPS / "untidy.sql"
MAPPING = SHOPS / "untidy.toml"
KLANT = '"Shop Data"."Klant"'
ADRES = '"Shop Data"."Adres"'
BESTELLING = '"Shop Data"."Bestelling"'
FAVORIET = '"Marketing"."Favoriet"'

# docs/own-database.md step 7: a strategy for every column, the orders kept for bookkeeping, a
# merge rule for the favourites' unique key, the shop's trigger functions given to the owner
# role after reading them, and the look-alike column recorded as no customer reference
CLASSIFY = """
SET ROLE syncctl_owner;
INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy, value) VALUES
  ('Shop Data', 'Klant', 'Klant-Id', 'not_personal', NULL),
  ('Shop Data', 'Klant', 'Voornaam', 'null', NULL),
  ('Shop Data', 'Klant', 'Achternaam', 'fixed', '-'),
  ('Shop Data', 'Klant', 'E-mail', 'null', NULL),
  ('Shop Data', 'Klant', 'Geslacht', 'null', NULL),
  ('Shop Data', 'Klant', 'Geboren', 'year', NULL),
  ('Shop Data', 'Klant', 'Telefoon', 'null', NULL),
  ('Shop Data', 'Klant', 'Geblokkeerd', 'not_personal', NULL),
  ('Shop Data', 'Klant', 'AdresID', 'not_personal', NULL),
  ('Shop Data', 'Klant', 'WinkelNr', 'not_personal', NULL),
  ('Shop Data', 'Klant', 'Aangemaakt', 'not_personal', NULL),
  ('Shop Data', 'Klant', 'Bijgewerkt', 'not_personal', NULL),
  ('Shop Data', 'Klant', 'Zoek', 'null', NULL),
  ('Shop Data', 'Klant', 'Notitie', 'null', NULL),
  ('Shop Data', 'Adres', 'AdresID', 'not_personal', NULL),
  ('Shop Data', 'Adres', 'Straat', 'null', NULL),
  ('Shop Data', 'Adres', 'Postcode', 'null', NULL),
  ('Shop Data', 'Adres', 'Plaats', 'null', NULL),
  ('Shop Data', 'Adres', 'Land', 'keep', NULL),
  ('Shop Data', 'Bestelling', 'BestelNr', 'not_personal', NULL),
  ('Shop Data', 'Bestelling', 'Klant Ref', 'not_personal', NULL),
  ('Shop Data', 'Bestelling', 'Besteld', 'not_personal', NULL),
  ('Shop Data', 'Bestelling', 'Bedrag', 'not_personal', NULL),
  ('Marketing', 'Favoriet', 'Klant-Id', 'not_personal', NULL),
  ('Marketing', 'Favoriet', 'Artikel', 'not_personal', NULL),
  ('Marketing', 'Favoriet', 'Toegevoegd', 'not_personal', NULL);
INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping) VALUES
  ('Shop Data', 'Bestelling', 'scrub', true),
  ('Marketing', 'Favoriet', 'delete_rows', false);
INSERT INTO sync.merge_rule (table_schema, table_name, rule) VALUES
  ('Marketing', 'Favoriet', 'union');
RESET ROLE;
ALTER FUNCTION "Shop Data"."Klant bijwerken"() OWNER TO syncctl_owner;
ALTER FUNCTION "Shop Data"."Klant e-mail"() OWNER TO syncctl_owner;
"""
NOT_A_REFERENCE = """
SET ROLE syncctl_owner;
INSERT INTO sync.not_a_reference (table_schema, table_name, column_name)
VALUES ('Marketing', 'Nieuwsbrief Log', 'KlantNr');
RESET ROLE;
"""

# Everything of the shop's in the catalog: schemas, relations, columns, constraints, indexes,
# triggers, functions, views with their owners and grants, and the database-wide settings an
# installer could touch (default privileges, the database's grants, extensions, event triggers).
CATALOG = r"""
WITH ns AS (
    SELECT n.oid, n.nspname FROM pg_namespace AS n
    WHERE n.nspname NOT IN ('sync', 'syncmap', 'gdpr', 'report', 'syncctl', 'pg_catalog',
                            'information_schema', 'pg_toast')
      AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
)
SELECT 'schema ' || n.nspname || ' ' || pg_get_userbyid(n.nspowner) || ' '
       || coalesce(n.nspacl::text, '')
FROM pg_namespace AS n JOIN ns USING (oid)
UNION ALL
SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' '
       || pg_get_userbyid(c.relowner) || ' ' || coalesce(c.relacl::text, '') || ' rls '
       || c.relrowsecurity
FROM pg_class AS c JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT 'column ' || c.oid::regclass || '.' || quote_ident(a.attname) || ' '
       || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' '
       || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' ' || coalesce(a.attacl::text, '')
FROM pg_attribute AS a
JOIN pg_class AS c ON c.oid = a.attrelid
JOIN ns ON ns.oid = c.relnamespace
LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || k.conrelid::regclass || ' ' || k.conname || ' '
       || pg_get_constraintdef(k.oid)
FROM pg_constraint AS k JOIN ns ON ns.oid = k.connamespace
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid JOIN ns ON ns.oid = c.relnamespace
WHERE NOT t.tgisinternal
UNION ALL
SELECT 'function ' || p.oid::regprocedure || ' ' || pg_get_userbyid(p.proowner) || ' '
       || coalesce(p.proacl::text, '') || ' ' || md5(pg_get_functiondef(p.oid))
FROM pg_proc AS p JOIN ns ON ns.oid = p.pronamespace
UNION ALL
SELECT 'view ' || c.oid::regclass || ' ' || md5(pg_get_viewdef(c.oid))
FROM pg_class AS c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT 'policy ' || p.polrelid::regclass || ' ' || p.polname FROM pg_policy AS p
JOIN pg_class AS c ON c.oid = p.polrelid JOIN ns ON ns.oid = c.relnamespace
UNION ALL
SELECT 'default acl ' || pg_get_userbyid(d.defaclrole) || ' ' || d.defaclobjtype::text || ' '
       || d.defaclacl::text
FROM pg_default_acl AS d WHERE d.defaclnamespace = 0 OR d.defaclnamespace IN (SELECT oid FROM ns)
UNION ALL
SELECT 'database ' || coalesce(d.datacl::text, '') FROM pg_database AS d
WHERE d.datname = current_database()
UNION ALL
SELECT 'extension ' || e.extname FROM pg_extension AS e
UNION ALL
SELECT 'event trigger ' || e.evtname FROM pg_event_trigger AS e
ORDER BY 1
"""

# what a shop writes in a trigger's message: the refused e-mail itself
REFUSED_DOMAIN = "geweigerd.example"


def _run(*args: str, dsn: str, tritonx: str | None = None) -> subprocess.CompletedProcess[str]:
    feed = ("--tritonx-url", tritonx, "--tritonx-token", TOKEN) if tritonx else ()
    return syncctl(*feed, *args, dsn=dsn)


def _ok(*args: str, dsn: str, tritonx: str | None = None) -> str:
    result = _run(*args, dsn=dsn, tritonx=tritonx)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _catalog(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [line for (line,) in conn.execute(CATALOG)]


def _changed(before: list[str], after: list[str]) -> tuple[list[str], list[str]]:
    return sorted(set(before) - set(after)), sorted(set(after) - set(before))


@dataclass
class Untidy:
    dsn: str
    simulator: Simulator
    conn: psycopg.Connection[Any]
    installed: list[str] = field(default_factory=list)  # the catalog once the DBA's steps ran

    def pull(self) -> str:
        return _ok("pull", dsn=self.dsn, tritonx=self.simulator.url)

    def key(self, number: str) -> str:
        row = self.conn.execute(
            "SELECT customer_key FROM sync.customer_link WHERE customer_number = %s", [number]
        ).fetchone()
        assert row is not None, number
        return str(row[0])

    def klant(self, key: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            f"SELECT to_jsonb(k) || jsonb_build_object('adres', to_jsonb(a)) FROM {KLANT} AS k"
            f' LEFT JOIN {ADRES} AS a ON a."AdresID" = k."AdresID" WHERE k."Klant-Id" = %s',
            [key],
        ).fetchone()
        self.conn.commit()
        return None if row is None else dict(row[0])

    def order(self, key: str, at: str) -> None:
        self.conn.execute(
            f'INSERT INTO {BESTELLING} ("Klant Ref", "Besteld", "Bedrag") VALUES (%s, %s, 10)',
            [key, at],
        )
        self.conn.commit()

    def favourite(self, key: str, article: str) -> None:
        self.conn.execute(f"INSERT INTO {FAVORIET} VALUES (%s, %s, now())", [key, article])
        self.conn.commit()

    def orders_of(self, key: str) -> int:
        row = self.conn.execute(
            f'SELECT count(*) FROM {BESTELLING} WHERE "Klant Ref" = %s', [key]
        ).fetchone()
        self.conn.commit()
        assert row is not None
        return int(row[0])

    def favourites_of(self, key: str) -> list[str]:
        rows = self.conn.execute(
            f'SELECT "Artikel" FROM {FAVORIET} WHERE "Klant-Id" = %s ORDER BY 1', [key]
        ).fetchall()
        self.conn.commit()
        return [str(r[0]) for r in rows]

    def dead_letters(self) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT i.customer_number, d.reason FROM sync.dead_letter AS d"
            " JOIN sync.inbox AS i ON i.id = d.inbox_id"
        ).fetchall()
        self.conn.commit()
        return {str(n): str(r) for n, r in rows}


@pytest.fixture
def untidy(
    fresh_database: Callable[[str], str],
    simulator_factory: Callable[..., Simulator],
) -> Iterator[Untidy]:
    """The untidy shop with its own rows, syncctl installed on it as the docs say (every GRANT
    the check printed, run as printed), tritonX's population pulled."""
    dsn = fresh_database("untidy_" + secrets.token_hex(4))
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(SCHEMA.read_text(encoding="utf-8").encode())
    before = _catalog(dsn)

    assert _ok("db", "upgrade", dsn=dsn).startswith("database at revision")
    # outside syncctl's schemas, only what docs/security.md ("Installing") and
    # docs/own-database.md (step 2) name: the owner role may create schemas in the database,
    # and the functions it creates give PUBLIC nothing
    gone, added = _changed(before, _catalog(dsn))
    assert [line.split(" ")[0] for line in gone] == ["database"]
    assert [line.split(" {")[0] for line in added] == ["database", "default acl syncctl_owner f"]
    assert "syncctl_owner=C/" in added[0]
    assert added[1].endswith("{syncctl_owner=X/syncctl_owner}")

    checked = _run("mapping", "check", str(MAPPING), dsn=dsn)
    assert checked.returncode == 1
    grants = re.findall(r": (GRANT .*;)$", checked.stdout, re.MULTILINE)
    assert 'GRANT SELECT ON TABLE "Shop Data"."Bestelling" TO syncctl_owner;' in grants
    assert 'GRANT UPDATE ON TABLE "Marketing"."Favoriet" TO syncctl_owner;' in grants
    with psycopg.connect(dsn, autocommit=True) as admin:
        for grant in grants:
            admin.execute(grant.encode())
    checked = _run("mapping", "check", str(MAPPING), dsn=dsn)
    assert checked.returncode == 0, checked.stdout
    # the short columns are named, never cut
    assert (
        "customer.columns.Voornaam: warning: the column is character varying(20) but "
        "first_name can be 100 characters long; a longer value is a dead letter"
    ) in checked.stdout
    assert "installed mapping version 1" in _ok("mapping", "install", str(MAPPING), dsn=dsn)

    covered = _run("coverage", dsn=dsn)
    assert covered.returncode == 1
    assert (
        '"Marketing"."Nieuwsbrief Log"."KlantNr": looks like a customer reference' in covered.stdout
    )
    assert 'trigger "Klant e-mail" runs "Shop Data"."Klant e-mail"()' in covered.stdout
    assert '"Shop Data"."Bestelling"."Klant Ref": column has no PII strategy' in covered.stdout
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(CLASSIFY.encode())
    covered = _run("coverage", dsn=dsn)
    assert covered.returncode == 1
    assert covered.stdout.splitlines() == [
        '"Marketing"."Nieuwsbrief Log"."KlantNr": looks like a customer reference but has no'
        ' foreign key to "Shop Data"."Klant"."Klant-Id" and is not declared: declare it'
        " ([[reference]] in the mapping) or record it in sync.not_a_reference"
    ]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(NOT_A_REFERENCE.encode())
    assert _ok("coverage", dsn=dsn).startswith("ok: ")

    simulator = simulator_factory("--customers", "30", "--seed", "4")
    with psycopg.connect(dsn) as conn:
        shop = Untidy(dsn, simulator, conn, installed=_catalog(dsn))
        assert "outcomes: applied 30\n" in shop.pull()
        yield shop


def _due_erasure(dsn: str, key: str) -> str:
    """An erasure request for the customer with this key, received, verified and due now."""
    received = _ok("erasure", "receive", "--id", key, "--actor", "bo:op-1", dsn=dsn)
    found = re.search(r"erasure request (\d+)", received)
    assert found is not None
    rid = found.group(1)
    _ok("erasure", "verify", rid, "--actor", "bo:op-1", dsn=dsn)
    _ok("erasure", "schedule", rid, "--grace-days", "0", "--actor", "bo:op-1", dsn=dsn)
    return rid


def _no_personal_values(shop: Untidy, values: set[str]) -> None:
    """None of the values in the audit, the dead letters' reasons or the outbox."""
    text = shop.conn.execute(
        "SELECT coalesce(string_agg(to_jsonb(a)::text, ' '), '') FROM sync.audit AS a"
    ).fetchone()
    reasons = shop.conn.execute(
        "SELECT coalesce(string_agg(reason, ' '), '') FROM sync.dead_letter"
    ).fetchone()
    shop.conn.commit()
    assert text is not None and reasons is not None
    found = [v for v in values if v and (v in str(text[0]) or v in str(reasons[0]))]
    assert found == []


@pytest.mark.slow
def test_the_feed_on_the_untidy_schema(untidy: Untidy, tmp_path: Path) -> None:
    shop = untidy
    state = shop.simulator.admin("GET", "/admin/state").json()
    personal = {
        str(s["snapshot"][f])
        for s in state.values()
        for f in ("email", "last_name", "street", "phone")
        if s["snapshot"].get(f)
    }
    one, two, three, four, five = (shop.key(f"TX0000000{n}") for n in range(1, 6))
    # the shop's trigger rewrote nothing yet: the feed inserted, then updates stamp
    assert shop.klant(one) is not None
    shop.order(one, "2025-05-01")
    shop.order(two, "2026-02-01")
    shop.order(two, "2027-02-01")  # the default partition
    shop.order(four, "2026-03-01")
    shop.favourite(one, "sku-1")
    shop.favourite(two, "sku-1")
    shop.favourite(two, "sku-2")
    shop.favourite(five, "sku-9")

    # a household: the shop points customer 10 to customer 9's address
    nine, ten = shop.key("TX00000009"), shop.key("TX00000010")
    shop.conn.execute(
        f'UPDATE {KLANT} SET "AdresID" = (SELECT "AdresID" FROM {KLANT} WHERE "Klant-Id" = %s)'
        ' WHERE "Klant-Id" = %s',
        [nine, ten],
    )
    shop.conn.commit()
    household = shop.klant(ten)
    long_name = "Maximiliaan-Alexander-" + secrets.token_hex(6)
    refused = f"{secrets.token_hex(5)}@{REFUSED_DOMAIN}"
    personal |= {long_name, refused}
    admin = shop.simulator.admin
    admin("POST", "/admin/customers/TX00000006", {"first_name": long_name})
    admin("POST", "/admin/customers/TX00000007", {"email": refused})
    admin("POST", "/admin/customers/TX00000008", {"last_name": "Bakker"})
    admin("POST", "/admin/merge", {"old": "TX00000002", "into": "TX00000001"})
    admin("POST", "/admin/customers/TX00000003/anonymise", {"reason_code": "AVG"})
    admin("DELETE", "/admin/customers/TX00000004")  # has an order: anonymised
    admin("DELETE", "/admin/customers/TX00000005")  # has none: removed
    admin("POST", "/admin/customers/TX00000009/anonymise", {"reason_code": "AVG"})
    result = _run("pull", dsn=shop.dsn, tritonx=shop.simulator.url)
    assert result.returncode == 0, result.stderr
    pulled = result.stdout + result.stderr
    assert "outcomes: applied 6, dead_letter 2" in pulled, pulled
    assert long_name not in pulled and refused not in pulled

    # merge: orders (declared reference, partitioned, three partitions) and favourites moved
    assert shop.orders_of(one) == 3 and shop.orders_of(two) == 0
    assert shop.favourites_of(one) == ["sku-1", "sku-2"]
    assert shop.klant(two) is None
    # anonymised: the customer and the address only it uses scrubbed, the key kept
    anonymised = shop.klant(three)
    assert anonymised is not None
    assert (anonymised["Voornaam"], anonymised["E-mail"], anonymised["Achternaam"]) == (
        None,
        None,
        "-",
    )
    assert anonymised["adres"]["Straat"] is None and anonymised["adres"]["Postcode"] is None
    # the household's address is left as it is for customer 10; customer 9 no longer points
    # to it
    assert shop.klant(ten) == household
    detached = shop.klant(nine)
    assert detached is not None and detached["AdresID"] is None and detached["E-mail"] is None
    # deleted with an order: anonymised, its order kept; without: gone with its favourite
    deleted = shop.klant(four)
    assert deleted is not None and deleted["E-mail"] is None and shop.orders_of(four) == 1
    assert shop.klant(five) is None and shop.favourites_of(five) == []
    # the shop's trigger stamped the updated customer and rewrote its search vector
    updated = shop.klant(shop.key("TX00000008"))
    assert updated is not None and updated["Bijgewerkt"] is not None
    assert "'bakker'" in updated["Zoek"]

    # dead letters: the name that does not fit names the column; the trigger's message (which
    # quotes the e-mail) is not kept
    assert shop.dead_letters() == {
        "TX00000006": 'a value does not fit "Shop Data"."Klant"."Voornaam" '
        "(character varying(20)) (SQLSTATE SY062)",
        "TX00000007": "raised by a trigger or function (SQLSTATE P0001)",
    }
    unchanged = shop.klant(shop.key("TX00000006"))
    assert (
        unchanged is not None
        and unchanged["Voornaam"] == state["TX00000006"]["snapshot"]["first_name"]
    )
    inbox = {
        n: i
        for n, i in shop.conn.execute(
            "SELECT i.customer_number, i.id FROM sync.dead_letter AS d"
            " JOIN sync.inbox AS i ON i.id = d.inbox_id"
        )
    }
    shop.conn.commit()
    # retried before the cause is fixed: still a dead letter, still naming the column
    retried = _run("deadletter", "retry", str(inbox["TX00000006"]), dsn=shop.dsn)
    assert retried.returncode == 1
    assert shop.dead_letters()["TX00000006"] == (
        'a value does not fit "Shop Data"."Klant"."Voornaam" (character varying(20))'
        " (SQLSTATE SY062)"
    )
    assert long_name not in retried.stdout + retried.stderr
    assert "discarded" in _ok("deadletter", "discard", str(inbox["TX00000006"]), dsn=shop.dsn)
    # the shop lets the address through: the retry applies it
    assert _changed(shop.installed, _catalog(shop.dsn)) == ([], [])
    with psycopg.connect(shop.dsn, autocommit=True) as admin_conn:
        admin_conn.execute(
            'CREATE OR REPLACE FUNCTION "Shop Data"."Klant e-mail"() RETURNS trigger'
            " LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
        )
    shop.installed = _catalog(shop.dsn)
    assert "applied" in _ok("deadletter", "retry", str(inbox["TX00000007"]), dsn=shop.dsn)
    assert shop.dead_letters() == {}

    # duplicates and stale versions: each effect once
    admin("PUT", "/admin/chaos", {"duplicate": 0.5, "stale": 0.5, "seed": 4})
    admin("POST", "/admin/activity", {"n": 40, "seed": 5})
    pulled = shop.pull()
    assert "duplicate" in pulled and "dead_letter" not in pulled, pulled
    admin("PUT", "/admin/chaos", {})
    assert shop.dead_letters() == {}

    # the back office's view and function on the customer table still answer
    row = shop.conn.execute(
        'SELECT count(*), count("Shop Data"."Klant Naam"(o."Klant-Id"))'
        ' FROM "Shop Data"."Klant Overzicht" AS o'
    ).fetchone()
    shop.conn.commit()
    assert row is not None and row[0] > 0 and row[0] == row[1]

    # a changed mapping is the next version, audited; installing it again changes nothing
    changed = MAPPING.read_text(encoding="utf-8").replace(
        'first_of = ["mobile", "phone"]', 'first_of = ["phone", "mobile"]'
    )
    file = tmp_path / "untidy.toml"
    file.write_text(changed, encoding="utf-8")
    assert "installed mapping version 2" in _ok("mapping", "install", str(file), dsn=shop.dsn)
    assert "installed mapping version 2" in _ok("mapping", "install", str(file), dsn=shop.dsn)
    audited = shop.conn.execute(
        "SELECT counts ->> 'mapping_version' FROM sync.audit"
        " WHERE action = 'mapping.installed' ORDER BY id"
    ).fetchall()
    shop.conn.commit()
    assert [v for (v,) in audited] == ["1", "2"]
    live = sorted(
        n for n, c in admin("GET", "/admin/state").json().items() if c["status"] == "live"
    )
    admin("POST", f"/admin/customers/{live[-1]}", {"phone": "+31 20 555 0199"})
    assert "outcomes: applied 1\n" in shop.pull()
    edited = shop.klant(shop.key(live[-1]))
    assert edited is not None and edited["Telefoon"] == "+31 20 555 0199"

    _no_personal_values(shop, personal)
    assert _changed(shop.installed, _catalog(shop.dsn)) == (
        [],
        [],
    ), "the feed or the mapping changed the shop's catalog"
    # an upgrade run again (as for every release) leaves the shop's catalog as it is too
    _ok("db", "upgrade", dsn=shop.dsn)
    assert _changed(shop.installed, _catalog(shop.dsn)) == ([], [])
    assert _ok("coverage", dsn=shop.dsn).startswith("ok: ")


@pytest.mark.slow
def test_login_refresh_export_and_erasure_on_the_untidy_schema(untidy: Untidy) -> None:
    shop = untidy
    role = "untidy_app_" + secrets.token_hex(3)
    shop.conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE syncctl_webshop")
    shop.conn.commit()
    params = conninfo_to_dict(shop.dsn)
    webshop = make_conninfo(**{**params, "user": role})  # type: ignore[arg-type]
    try:
        shop.simulator.admin("POST", "/admin/merge", {"old": "TX00000002", "into": "TX00000001"})
        shop.pull()
        one = shop.key("TX00000001")
        _ok(
            "policy", "create", "nieuws", "--name", "Nieuwsbrief", "--description", "Nieuws",
            "--legal-basis", "consent", "--retention", "none", "--membership", "consent",
            "--category", "Shop Data.Klant.E-mail", dsn=shop.dsn,
        )  # fmt: skip
        _ok("policy", "activate", "nieuws", dsn=shop.dsn)
        with psycopg.connect(webshop) as app:
            login = app.execute("SELECT * FROM sync.login_key('TX00000001', '')").fetchone()
            merged = app.execute("SELECT * FROM sync.login_key('TX00000002', '')").fetchone()
            created = app.execute("SELECT * FROM sync.login_key('TX00009999', '')").fetchone()
            app.execute("SELECT sync.request_refresh('TX00000003')")
            app.commit()
            assert login == (one, "linked", "TX00000001")
            assert merged == (one, "redirected", "TX00000001")
            assert created is not None and created[1:] == ("created", "TX00009999")
            # the key in any text form of its type
            app.execute(
                "SELECT gdpr.record_consent(%s, 'nieuws', true, 'webshop', 'webshop')",
                [one.upper()],
            )
            assert app.execute("SELECT gdpr.has_consent(%s, 'nieuws')", [one]).fetchone() == (True,)
            app.commit()
        # the daemon serves the refreshes: tritonX does not know TX00009999 (yet), so its stub
        # stays as the login made it and the number gets no tombstone
        daemon = subprocess.Popen(
            [
                *SYNCCTL,
                "--dsn",
                shop.dsn,
                "--tritonx-url",
                shop.simulator.url,
                "--tritonx-token",
                TOKEN,
                "run",
                "--poll-interval",
                "0.2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        try:
            while True:
                row = shop.conn.execute(
                    "SELECT outcome, reason FROM sync.audit"
                    " WHERE event_id LIKE 'refresh:TX00009999:deleted:%'"
                ).fetchone()
                shop.conn.commit()
                if row is not None:
                    assert row == ("skipped", "unknown_to_tritonx")
                    break
                assert time.monotonic() < deadline, "the refresh was not served in 60 s"
                time.sleep(0.1)
                assert daemon.poll() is None, daemon.communicate()
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=60)
        assert shop.klant(str(created[0])) is not None
        assert shop.conn.execute(
            "SELECT count(*) FROM sync.tombstone WHERE customer_number = 'TX00009999'"
        ).fetchone() == (0,)
        shop.conn.commit()

        # subject access export by the shop's key, orders through the partitioned parent
        shop.order(one, "2025-06-01")
        shop.order(one, "2027-06-01")
        exported = _ok("export", "--id", one, "--format", "json", dsn=shop.dsn)
        document = json.loads(exported)
        assert document["customer_key"] == one
        assert len(document["tables"]['"Shop Data"."Bestelling"']) == 2
        assert len(document["tables"]['"Shop Data"."Klant"']) == 1

        # an erasure from received to done, its proof without residue
        three = shop.key("TX00000003")
        shop.favourite(three, "sku-5")
        shop.order(three, "2026-05-05")
        snapshot = shop.simulator.admin("GET", "/admin/state").json()["TX00000003"]["snapshot"]
        rid = _due_erasure(shop.dsn, three)
        done = _ok("erasure", "execute", rid, "--actor", "bo:op-1", dsn=shop.dsn)
        assert f"erasure request {rid}: done" in done and "residue hits 0" in done
        erased = shop.klant(three)
        assert erased is not None and erased["E-mail"] is None and erased["Voornaam"] is None
        assert erased["adres"]["Straat"] is None
        assert shop.orders_of(three) == 1 and shop.favourites_of(three) == []
        _no_personal_values(
            shop, {str(snapshot[f]) for f in ("email", "last_name", "street") if snapshot[f]}
        )

        # retention counts from the orders (the declared reference on the partitioned table);
        # the dry run's fields stay apart however long the names, and the run does what it said
        _ok(
            "policy", "create", "klanten_bestellingen", "--name", "Klanten",
            "--description", "Bestellingen", "--legal-basis", "contract",
            "--retention", "2 years", "--retention-from", "last_order",
            "--category", "Shop Data.Klant", "--category", "Shop Data.Adres",
            "--category", "Shop Data.Bestelling", "--category", "Marketing.Favoriet",
            dsn=shop.dsn,
        )  # fmt: skip
        _ok("policy", "activate", "klanten_bestellingen", dsn=shop.dsn)
        later = ("--now", "2030-01-01T00:00:00Z")
        planned = _ok("purge", "--dry-run", *later, dsn=shop.dsn)
        lines = [line for line in planned.splitlines() if line.startswith("klanten_")]
        assert lines and all(line.startswith("klanten_bestellingen ") for line in lines)
        # the customer with the newsletter's consent keeps its e-mail: its other columns go
        assert any(re.search(r"\(Aangemaakt, .*Zoek\) scrub ", line) for line in lines), lines
        would = re.search(r"dry run: would purge (\d+) customer\(s\)", planned)
        assert would is not None
        purged = _ok("purge", *later, dsn=shop.dsn)
        assert f"purged {would.group(1)} customer(s)" in purged
        assert shop.klant(one) is not None and shop.orders_of(one) == 2
        assert _changed(shop.installed, _catalog(shop.dsn)) == ([], [])
    finally:
        shop.conn.rollback()
        shop.conn.execute(f"DROP OWNED BY {role}")
        shop.conn.execute(f"DROP ROLE {role}")
        shop.conn.commit()


@pytest.mark.slow
def test_a_local_customer_is_adopted_despite_the_shops_unique_email_index(
    untidy: Untidy,
) -> None:
    shop = untidy
    email = f"lokaal.{secrets.token_hex(4)}@example.nl"
    local = "11111111-1111-4111-8111-" + secrets.token_hex(6)
    shop.conn.execute(
        f'INSERT INTO {KLANT} ("Klant-Id", "Voornaam", "Achternaam", "E-mail", "WinkelNr")'
        " VALUES (%s, 'Lokaal', 'Klant', %s, 3)",
        [local, email.upper()],
    )
    shop.conn.commit()
    shop.order(local, "2026-04-04")
    number = shop.simulator.admin("POST", "/admin/customers").json()["customer_number"]
    shop.simulator.admin("POST", f"/admin/customers/{number}", {"email": email})
    shop.pull()
    # adopted on arrival: the unique index refused a second row with tritonX's e-mail
    assert shop.dead_letters() == {}
    assert shop.key(number) == local  # the shop's key kept, with its order
    assert shop.orders_of(local) == 1
    klant = shop.klant(local)
    assert klant is not None and klant["Voornaam"] != "Lokaal"  # tritonX's values
    _ok("links", "repair", dsn=shop.dsn)
    assert shop.key(number) == local


@pytest.mark.slow
def test_bootstrap_reports_the_events_it_could_not_import(untidy: Untidy) -> None:
    """An event of tritonX's that the shop's schema refuses (a first name longer than its
    varchar(20) column) is a dead letter, and bootstrap's report says so instead of counting it
    among the events imported and leaving the DBA to find it."""
    shop = untidy
    name = "Maximiliaan-" + secrets.token_hex(8)
    number = shop.simulator.admin("POST", "/admin/customers").json()["customer_number"]
    shop.simulator.admin("POST", f"/admin/customers/{number}", {"first_name": name})
    result = _run("bootstrap", dsn=shop.dsn, tritonx=shop.simulator.url)
    assert result.returncode == 0, result.stderr
    assert "  events imported:                2\n" in result.stdout
    assert "  events refused (dead letters):  1 (syncctl deadletter list)\n" in result.stdout, (
        result.stdout
    )
    assert name not in result.stdout + result.stderr


@pytest.mark.slow
def test_with_the_email_index_made_non_unique_a_login_adopts_and_keeps_the_shops_key(
    untidy: Untidy,
) -> None:
    """With the e-mail index non-unique, the feed writes tritonX's customer next to the local
    one, and the login adopts the local one (its key, its order and its own columns kept); the
    index can be unique again afterwards."""
    shop = untidy
    email = f"lokaal.{secrets.token_hex(4)}@example.nl"
    local = "22222222-2222-4222-8222-" + secrets.token_hex(6)
    shop.conn.execute(
        f'INSERT INTO {KLANT} ("Klant-Id", "Achternaam", "E-mail", "WinkelNr", "Notitie")'
        " VALUES (%s, 'Lokaal', %s, 3, 'vaste klant')",
        [local, email.upper()],
    )
    shop.conn.commit()
    shop.order(local, "2026-04-04")
    with psycopg.connect(shop.dsn, autocommit=True) as dba:
        dba.execute('DROP INDEX "Shop Data"."Klant_email_uniek"')
        dba.execute('CREATE INDEX "Klant_email" ON "Shop Data"."Klant" (lower("E-mail"))')
    number = shop.simulator.admin("POST", "/admin/customers").json()["customer_number"]
    shop.simulator.admin("POST", f"/admin/customers/{number}", {"email": email})
    shop.pull()
    assert shop.dead_letters() == {}
    role = "untidy_app_" + secrets.token_hex(3)
    shop.conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE syncctl_webshop")
    shop.conn.commit()
    webshop = make_conninfo(**{**conninfo_to_dict(shop.dsn), "user": role})  # type: ignore[arg-type]
    try:
        with psycopg.connect(webshop) as app:
            login = app.execute("SELECT * FROM sync.login_key(%s, '')", [number]).fetchone()
        assert login == (local, "adopted", number)
    finally:
        shop.conn.execute(f"DROP ROLE {role}")
        shop.conn.commit()
    adopted = shop.klant(local)
    assert adopted is not None and adopted["Notitie"] == "vaste klant"
    assert adopted["E-mail"] == email and shop.orders_of(local) == 1
    with psycopg.connect(shop.dsn, autocommit=True) as dba:
        dba.execute('DROP INDEX "Shop Data"."Klant_email"')
        dba.execute(
            'CREATE UNIQUE INDEX "Klant_email_uniek" ON "Shop Data"."Klant" (lower("E-mail"))'
        )


TEXT_KEYED = """
CREATE SCHEMA "Oud Systeem";
CREATE SEQUENCE "Oud Systeem"."Klant Teller";
CREATE TABLE "Oud Systeem"."Relatie" (
    "Relatie Code"  varchar(40) PRIMARY KEY,   -- no default: the shop's code made it
    "Naam"          varchar(120),
    "E-mail"        varchar(254)
);
GRANT USAGE ON SCHEMA "Oud Systeem" TO syncctl_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON "Oud Systeem"."Relatie" TO syncctl_owner;
GRANT USAGE ON SEQUENCE "Oud Systeem"."Klant Teller" TO syncctl_owner;
"""
TEXT_KEYED_MAPPING = """format = 1
[customer]
schema = "Oud Systeem"
table = "Relatie"
key = "Relatie Code"
{generate}
number = "link"
version = "link"
[customer.columns]
Naam = {{ join = ["first_name", "infix", "last_name"] }}
"E-mail" = "email"
[not_stored]
fields = ["gender", "birth_date", "phone", "mobile", "street", "house_number",
          "house_number_addition", "postcode", "city", "country_code", "loyalty_card",
          "home_store", "customer_group", "newsletter_opt_in", "blocked", "updated_at"]
"""


def _text_keyed(dsn: str, directory: Path, generate: str, key_type: str = "varchar(40)") -> None:
    """syncctl installed on the text-keyed table, mapped with this key_generate."""
    _ok("db", "upgrade", dsn=dsn)
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(TEXT_KEYED.replace("varchar(40)", key_type).encode())
    file = directory / "relatie.toml"
    file.write_text(TEXT_KEYED_MAPPING.format(generate=generate), encoding="utf-8")
    checked = _run("mapping", "check", str(file), dsn=dsn)
    assert checked.returncode == 0, checked.stdout
    _ok("mapping", "install", str(file), dsn=dsn)


SEQUENCE = 'key_generate = "sequence"\nkey_sequence = "Oud Systeem.Klant Teller"'


@pytest.mark.slow
@pytest.mark.parametrize(
    ("generate", "key_type", "made"),
    [
        (
            'key_generate = "uuid"',
            "varchar(40)",
            r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}",
        ),
        (SEQUENCE, "varchar(40)", r"[0-9]+"),
        (SEQUENCE, "bigint", r"[0-9]+"),  # the quoted sequence name alone
    ],
)
def test_a_text_key_without_a_default_gets_its_keys_as_the_mapping_says(
    fresh_database: Callable[[str], str],
    simulator_factory: Callable[..., Simulator],
    tmp_path: Path,
    generate: str,
    key_type: str,
    made: str,
) -> None:
    """A varchar key with no default (DESIGN.md: "keys may have no default (the mapping says how
    a new key is made)"): a uuid's or the sequence's number's text form is the new key; the
    sequence named as the catalog has it, a quoted mixed-case name with a space."""
    dsn = fresh_database("untidy_text_" + secrets.token_hex(4))
    _text_keyed(dsn, tmp_path, generate, key_type)
    simulator = simulator_factory("--customers", "3")
    assert "outcomes: applied 3\n" in _ok("pull", dsn=dsn, tritonx=simulator.url)
    with psycopg.connect(dsn) as conn:
        keys = [
            str(k) for (k,) in conn.execute('SELECT "Relatie Code" FROM "Oud Systeem"."Relatie"')
        ]
        linked = conn.execute("SELECT count(*) FROM sync.customer_link").fetchone()
        created = conn.execute("SELECT * FROM sync.login_key('TX00000099', '')").fetchone()
    assert len(keys) == 3 and all(re.fullmatch(made, k) for k in keys), keys
    assert linked == (3,)
    assert created is not None and created[1] == "created" and re.fullmatch(made, created[0])


@pytest.mark.slow
def test_a_sequence_key_too_long_for_its_column_is_a_dead_letter_never_cut(
    fresh_database: Callable[[str], str],
    simulator_factory: Callable[..., Simulator],
    tmp_path: Path,
) -> None:
    dsn = fresh_database("untidy_text_" + secrets.token_hex(4))
    _text_keyed(dsn, tmp_path, SEQUENCE, key_type="varchar(2)")
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("""SELECT setval('"Oud Systeem"."Klant Teller"', 99)""")
    simulator = simulator_factory("--customers", "3")
    assert "outcomes: dead_letter 3\n" in _ok("pull", dsn=dsn, tritonx=simulator.url)
    with psycopg.connect(dsn) as conn:
        keys = conn.execute('SELECT "Relatie Code" FROM "Oud Systeem"."Relatie"').fetchall()
        reasons = conn.execute("SELECT DISTINCT reason FROM sync.dead_letter").fetchall()
    assert keys == []  # '100' is never written as '10'
    assert reasons == [("value too long for its column (SQLSTATE 22001)",)]


GUARD = """
CREATE FUNCTION "Shop Data"."Klant bewaken"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'klant % mag niet weg', OLD."E-mail";
    END IF;
    IF NEW."E-mail" IS NULL AND OLD."E-mail" IS NOT NULL THEN
        RAISE EXCEPTION 'e-mail % mag niet leeg', OLD."E-mail" USING DETAIL = OLD."Achternaam";
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER "Klant bewaken" BEFORE UPDATE OR DELETE ON "Shop Data"."Klant"
    FOR EACH ROW EXECUTE FUNCTION "Shop Data"."Klant bewaken"();
"""


@pytest.mark.slow
def test_the_shops_refusals_of_merge_anonymise_and_erasure_are_named_without_values(
    untidy: Untidy,
) -> None:
    """A shop trigger that refuses deleting or emptying a customer with the e-mail in its
    message, then a CHECK the scrub breaks: the CLI says what refused, once, without a value;
    an erasure's failure says it too (not "None" and a bare SQLSTATE)."""
    shop = untidy
    state = shop.simulator.admin("GET", "/admin/state").json()
    values = {
        str(state[n]["snapshot"][f])
        for n in ("TX00000001", "TX00000002", "TX00000003", "TX00000004")
        for f in ("email", "last_name")
    }
    with psycopg.connect(shop.dsn, autocommit=True) as dba:
        dba.execute(GUARD.encode())
    refused = "Error: raised by a trigger or function (SQLSTATE P0001)\n"
    merged = _run("merge", "TX00000001", "TX00000002", dsn=shop.dsn)
    anonymised = _run("anonymise", "TX00000003", "--reason-code", "AVG", dsn=shop.dsn)
    assert (merged.returncode, merged.stderr) == (1, refused)
    assert (anonymised.returncode, anonymised.stderr) == (1, refused)

    key = shop.key("TX00000004")
    rid = _due_erasure(shop.dsn, key)
    executed = _run("erasure", "execute", rid, "--actor", "bo:op-1", dsn=shop.dsn)
    assert executed.returncode == 1
    assert executed.stdout == f"erasure request {rid}: failed before the residue search\n"
    assert executed.stderr == refused
    # the guard gone, a CHECK of the shop's that the scrub's fixed value breaks: named
    with psycopg.connect(shop.dsn, autocommit=True) as dba:
        dba.execute('DROP TRIGGER "Klant bewaken" ON "Shop Data"."Klant"')
        dba.execute(
            f'ALTER TABLE {KLANT} ADD CONSTRAINT "Naam gevuld" CHECK ("Achternaam" <> \'-\')'
            " NOT VALID"
        )
    again = _run("erasure", "execute", rid, "--actor", "bo:op-1", dsn=shop.dsn)
    assert again.returncode == 1
    assert again.stderr == (
        'Error: check violation (SQLSTATE 23514) on "Shop Data"."Klant",'
        " constraint or index Naam gevuld\n"
    )
    listed = _ok("erasure", "list", dsn=shop.dsn)
    assert "check violation (SQLSTATE 23514)" in listed
    everything = merged.stderr + anonymised.stderr + executed.stdout + again.stderr + listed
    assert [v for v in values if v in everything] == []
    _no_personal_values(shop, values)
