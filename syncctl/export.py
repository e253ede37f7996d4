"""Rendering a subject access export (syncctl.gdpr.SubjectData) for the person it is about: JSON
(one document), CSV (one file per table, in a zip; a text cell a spreadsheet would read as a
formula is prefixed with `'`) or HTML (readable, every value escaped). Sections are named by
table (schema.table, as the database names the source), each row once; the mapped customer
table, whatever its name, is "your customer record". Pure functions of the data; nothing is
logged."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import zipfile
from decimal import Decimal
from typing import Any

from syncctl.gdpr import SubjectData

FORMATS = ("json", "csv", "html")

# What each source is, for the reader (English / Nederlands); a table not named here is titled
# by its name, the mapped customer table (whatever its name) as the customer record.
_CUSTOMER_TITLE = "Your customer record / Uw klantgegevens"
_TITLES = {
    "shop.address": "Addresses / Adressen",
    "shop.orders": "Orders / Bestellingen",
    "shop.order_line": "Order lines / Bestelregels",
    "shop.favourite": "Favourites / Favorieten",
    "shop.wishlist": "Wish list / Verlanglijst",
    "shop.cart": "Shopping cart / Winkelwagen",
    "shop.newsletter_subscription": "Newsletter subscriptions / Nieuwsbriefabonnementen",
    "shop.login_identity": "Logins / Inloggegevens",
    "gdpr.consent": "Consent history / Toestemmingen (historie)",
    "gdpr.current_consent": "Current consents / Huidige toestemmingen",
    "gdpr.policy": "Data policies that apply to you / Privacybeleid dat op u van toepassing is",
    "gdpr.erasure_request": "Erasure requests / Verzoeken tot verwijdering",
    "sync.customer_link": "Your customer number / Uw klantnummer",
    "sync.redirect": "Customer numbers merged into yours / Samengevoegde klantnummers",
    "sync.inbox": "Copies received from our customer system / Ontvangen kopieën",
    "sync.outbox": "Messages to our customer system / Verzonden berichten",
    "sync.audit": "Actions on your data / Handelingen met uw gegevens",
}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")  # as the database writes it: 0.0000001, not 1E-7
    if isinstance(value, dict | list):
        return _dumps(value, sort_keys=True)
    return str(value)


# json writes a Decimal only as a string. A number goes out as a marker string that holds its
# index and is replaced by the number's digits afterwards: the marker's NUL characters cannot
# occur in an exported value or name (PostgreSQL's text and jsonb refuse NUL).
_NUMBER_MARKER = re.compile(r'"\\u0000(\d+)\\u0000"')


def _dumps(value: Any, **options: Any) -> str:
    """JSON text with every Decimal written as the number it is (12.50 keeps its scale)."""
    numbers: list[str] = []

    def number(item: Any) -> Any:
        if isinstance(item, Decimal):
            numbers.append(format(item, "f"))
            return f"\0{len(numbers) - 1}\0"
        return str(item)

    text = json.dumps(value, ensure_ascii=False, default=number, **options)
    return _NUMBER_MARKER.sub(lambda found: numbers[int(found[1])], text)


# What makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    """A cell for a spreadsheet: a text value that starts like a formula is prefixed with `'`,
    which the spreadsheet shows as text. Only text: the export's rows come from jsonb, so a
    number (a negative amount) is a Python number here and stays one."""
    cell = _cell(value)
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    return names


def _title(data: SubjectData, table: str) -> str:
    if table == data.customer_table:
        return _CUSTOMER_TITLE
    return _TITLES.get(table, table)


def _document(data: SubjectData) -> dict[str, Any]:
    return {
        "customer_key": data.customer_key,
        "customer_id": data.customer_id,
        "customer_number": data.customer_number,
        "customer_table": data.customer_table,
        "generated_at": data.generated_at.isoformat(),
        "tables": data.tables,
    }


def to_json(data: SubjectData) -> bytes:
    return _dumps(_document(data), indent=2, sort_keys=True).encode("utf-8")


def _entry_name(table: str) -> str:
    """The table's file in the archive: a slash or backslash of the name (a DBA may use them)
    percent-encoded, so the entry is one file in the folder it is unpacked into."""
    return table.replace("%", "%25").replace("/", "%2F").replace("\\", "%5C") + ".csv"


def to_csv_zip(data: SubjectData) -> bytes:
    """One CSV file per table (`shop.orders.csv`), plus `export.json` naming the subject."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for table, rows in sorted(data.tables.items()):
            text = io.StringIO()
            columns = _columns(rows)
            writer = csv.writer(text)
            writer.writerow([_csv_cell(name) for name in columns])
            for row in rows:
                writer.writerow([_csv_cell(row.get(name)) for name in columns])
            archive.writestr(_entry_name(table), text.getvalue())
        header = {k: v for k, v in _document(data).items() if k != "tables"}
        archive.writestr("export.json", json.dumps(header, indent=2, default=str))
    return buffer.getvalue()


def to_html(data: SubjectData) -> bytes:
    """A self-contained page: one section per table, a row per record."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Your personal data / Uw persoonsgegevens</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin-bottom:2em}td,th{border:1px solid #999;padding:.3em .6em;text-align:left;"
        "vertical-align:top}th{background:#eee}</style></head><body>",
        "<h1>Your personal data / Uw persoonsgegevens</h1>",
        f"<p>Customer / Klant: {e(data.customer_number or data.customer_key)}<br>"
        f"Generated / Aangemaakt: {e(data.generated_at.isoformat())}</p>",
    ]
    for table, rows in sorted(data.tables.items()):
        columns = _columns(rows)
        parts.append(f"<h2>{e(_title(data, table))}</h2>")
        parts.append(f"<p><small>{e(table)}: {len(rows)}</small></p>")
        parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in columns) + "</tr>")
        for row in rows:
            cells = "".join(f"<td>{e(_cell(row.get(c)))}</td>" for c in columns)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts).encode("utf-8")


def render(data: SubjectData, fmt: str) -> bytes:
    if fmt == "json":
        return to_json(data)
    if fmt == "csv":
        return to_csv_zip(data)
    if fmt == "html":
        return to_html(data)
    raise ValueError(f"unknown export format {fmt}")
