"""Subject access export: everything held about one person across every customer-linked table
(order lines via orders included), the engine's copies, consents, policies and the audit; and
nothing about anyone else, even when two customers share a favourite, a city and a name."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
from click.testing import CliRunner

from syncctl import gdpr
from syncctl.cli.gdpr import export_command
from tests.feed import stage, upserted

ANNA = {
    "email": "anna.jansen@example.nl",
    "last_name": "Jansen",
    "phone": "+31 20 111 1111",
    "mobile": "+31 6 1111 1111",
    "postcode": "1011 AA",
    "loyalty_card": "LC-ANNA",
}
BEA = {
    "email": "bea.visser@example.org",
    "last_name": "Visser",
    "phone": "+31 20 222 2222",
    "mobile": "+31 6 2222 2222",
    "postcode": "1022 BB",
    "loyalty_card": "LC-BEA",
}
# everything only Bea has: none of it may appear in Anna's export
BEA_ONLY = [*BEA.values(), "O-BEA-1", "<b>Bea's</b> wish", "TX00000002", "sku-bea-only"]


def _people(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    stage(conn, [upserted("TX00000001", 1, **ANNA), upserted("TX00000002", 1, **BEA)])
    anna = gdpr.resolve_subject(conn, number="TX00000001")[0]
    bea = gdpr.resolve_subject(conn, number="TX00000002")[0]
    for cid, order, wish, sku in (
        (anna, "O-ANNA-1", "a <script>x</script> wish", "sku-anna"),
        (bea, "O-BEA-1", "<b>Bea's</b> wish", "sku-bea-only"),
    ):
        order_id = conn.execute(
            "INSERT INTO shop.orders (customer_id, order_number, total_amount) VALUES (%s, %s, 10)"
            " RETURNING id",
            [cid, order],
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO shop.order_line (order_id, sku, quantity, unit_price)"
            " VALUES (%s, 'shared-sku', 1, 5), (%s, %s, 2, 2.5)",
            [order_id, order_id, sku],
        )
        conn.execute(
            "INSERT INTO shop.favourite (customer_id, sku) VALUES (%s, 'shared-sku')", [cid]
        )
        conn.execute(
            "INSERT INTO shop.wishlist (customer_id, sku, note) VALUES (%s, 'w', %s)", [cid, wish]
        )
    conn.commit()
    gdpr.activate_policy(conn, "club", actor="dpo:test")
    gdpr.record_consent(conn, anna, "club", granted=True)
    gdpr.record_consent(conn, bea, "club", granted=False)
    return anna, bea


def test_the_export_holds_everything_of_the_person(conn: psycopg.Connection[Any]) -> None:
    anna, _ = _people(conn)
    data = gdpr.subject_data(conn, number="TX00000001")
    assert data.customer_id == anna
    assert data.tables["shop.customer"][0]["email"] == ANNA["email"]
    assert sorted(r["sku"] for r in data.tables["shop.order_line"]) == ["shared-sku", "sku-anna"]
    assert data.tables["shop.orders"][0]["order_number"] == "O-ANNA-1"
    assert [r["sku"] for r in data.tables["shop.favourite"]] == ["shared-sku"]
    assert [r["granted"] for r in data.tables["gdpr.consent"]] == [True]
    assert data.tables["gdpr.current_consent"][0]["policy"] == "club"
    assert {r["code"] for r in data.tables["gdpr.policy"]} == {"club"}
    assert data.tables["sync.inbox"][0]["payload"]["customer"]["email"] == ANNA["email"]
    assert {r["action"] for r in data.tables["sync.audit"]} == {"customer.upserted"}


def test_the_export_holds_nothing_of_anyone_else(
    dsn: str, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    _people(conn)
    runner = CliRunner()
    settings = SimpleNamespace(dsn=dsn)
    outputs: dict[str, str] = {}
    for fmt in ("json", "html", "csv"):
        target = tmp_path / f"anna.{fmt}"
        result = runner.invoke(
            export_command, ["TX00000001", "--format", fmt, "--output", str(target)], obj=settings
        )
        assert result.exit_code == 0, result.output
        raw = target.read_bytes()
        if fmt == "csv":
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                names = archive.namelist()
                assert "shop.order_line.csv" in names and "sync.audit.csv" in names
                outputs[fmt] = "\n".join(archive.read(n).decode() for n in names)
        else:
            outputs[fmt] = raw.decode()
    assert json.loads(outputs["json"])["customer_number"] == "TX00000001"
    for fmt, text in outputs.items():
        assert ANNA["email"] in text, fmt
        for value in BEA_ONLY:
            assert value not in text, (fmt, value)
    # the HTML escapes what it shows
    assert "<script>" not in outputs["html"]
    assert "a &lt;script&gt;x&lt;/script&gt; wish" in outputs["html"]
    # by id, to standard output
    by_id = runner.invoke(export_command, ["--id", "1", "--format", "json"], obj=settings)
    assert by_id.exit_code == 0 and ANNA["email"] in by_id.output
    missing = runner.invoke(export_command, ["TX99999999"], obj=settings)
    assert missing.exit_code != 0 and "no local customer with number TX99999999" in missing.output


def test_a_merged_number_exports_the_survivor_with_both_histories(
    conn: psycopg.Connection[Any],
) -> None:
    _, bea = _people(conn)
    conn.execute("SELECT sync.merge_customer('TX00000002', 'TX00000001', NULL, 'ops:test')")
    conn.commit()
    data = gdpr.subject_data(conn, number="TX00000002")
    assert data.customer_number == "TX00000001"
    assert [r["old_number"] for r in data.tables["sync.redirect"]] == ["TX00000002"]
    assert sorted(r["order_number"] for r in data.tables["shop.orders"]) == [
        "O-ANNA-1",
        "O-BEA-1",
    ]
    assert str(bea) not in {r["customer_key"] for r in data.tables["gdpr.consent"]}
