"""The pure-Python model of a mapping (tests/shops/oracle.py) on the boutique's mapping and
hand-written snapshots: the rows the engine must write, worked out by hand from the transform
rules of the mapping format."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from syncctl.simulator.population import snapshot as simulated
from tests.feed import snapshot
from tests.shops import Boutique
from tests.shops.oracle import CONTRACT_FIELDS, ValueDoesNotFit, mapped_columns, source_value

BOUTIQUE = Boutique()


def _fields(source: Any) -> set[str]:
    if isinstance(source, str):
        return {source}
    return set(source.get("join", [])) | set(source.get("first_of", [])) | {source.get("field")}


def test_a_full_snapshot_gives_the_boutiques_representation() -> None:
    assert BOUTIQUE.expected_row(snapshot("TX00000001")) == {
        "tx_ref": "TX00000001",
        "email": "tx00000001@example.nl",
        "full_name": "Anna van der Berg",
        "sex": "f",
        "is_blocked": 0,
        "newsletter": "J",
        "birthday": date(1984, 3, 12),
        "phone": "+31 6 1234 5678",
        "segment": "retail",
        "shop_id": 1,
        "address.street": "Keizersgracht 12 A",
        "address.zip": "1015 CJ",
        "address.city": "Amsterdam",
        "address.country": "NL",
        "address.created_by": "syncctl",
    }


@pytest.mark.parametrize(
    ("first", "infix", "last", "full_name"),
    [
        ("Anna", None, "Berg", "Anna Berg"),
        ("Anna", "", "Berg", "Anna Berg"),
        ("Anna", "   ", "Berg", "Anna Berg"),
        (" Anna ", "van der ", " Berg", "Anna van der Berg"),
        (None, None, "Berg", "Berg"),
        # all parts empty: the join gives NULL, the mapping's null_as fills the NOT NULL column
        (None, None, None, "(unknown)"),
        ("", " ", None, "(unknown)"),
    ],
)
def test_the_name_joins_the_non_empty_parts(
    first: str | None, infix: str | None, last: str | None, full_name: str
) -> None:
    row = BOUTIQUE.expected_row(
        snapshot("TX00000002", first_name=first, infix=infix, last_name=last)
    )
    assert row["full_name"] == full_name


@pytest.mark.parametrize(
    ("gender", "sex"), [("M", "m"), ("F", "f"), ("X", "u"), ("f", "u"), ("", "u"), (None, None)]
)
def test_gender_codes_and_other(gender: str | None, sex: str | None) -> None:
    assert BOUTIQUE.expected_row(snapshot("TX00000003", gender=gender))["sex"] == sex


@pytest.mark.parametrize(
    ("value", "is_blocked", "newsletter"), [(True, 1, "J"), (False, 0, "N"), (None, 0, "N")]
)
def test_booleans_in_the_shops_codes_and_null_as(
    value: bool | None, is_blocked: int, newsletter: str
) -> None:
    row = BOUTIQUE.expected_row(snapshot("TX00000004", blocked=value, newsletter_opt_in=value))
    assert (row["is_blocked"], row["newsletter"]) == (is_blocked, newsletter)


@pytest.mark.parametrize(
    ("mobile", "phone", "expected"),
    [
        ("+31 6 1", "+31 20 1", "+31 6 1"),
        (None, "+31 20 1", "+31 20 1"),
        # coalesce, not "first non-empty": an empty mobile is a value
        ("", "+31 20 1", ""),
        (None, None, None),
    ],
)
def test_phone_is_the_first_present_of_mobile_and_phone(
    mobile: str | None, phone: str | None, expected: str | None
) -> None:
    row = BOUTIQUE.expected_row(snapshot("TX00000005", mobile=mobile, phone=phone))
    assert row["phone"] == expected


def test_the_address_row_joins_street_and_house_number() -> None:
    row = BOUTIQUE.expected_row(snapshot("TX00000006", house_number_addition=None))
    assert row["address.street"] == "Keizersgracht 12"
    row = BOUTIQUE.expected_row(
        snapshot(
            "TX00000006",
            street=None,
            house_number=None,
            house_number_addition=None,
            postcode=None,
            city=None,
            country_code=None,
            birth_date=None,
        )
    )
    assert {k: v for k, v in row.items() if k.startswith("address.")} == {
        "address.street": None,
        "address.zip": None,
        "address.city": None,
        "address.country": None,
        "address.created_by": "syncctl",
    }
    assert row["birthday"] is None


@pytest.mark.parametrize(
    ("fields", "column"),
    [
        ({"first_name": "A" * 30, "last_name": "B" * 30}, "full_name"),
        ({"mobile": "+31 6 1234 5678 9012 3"}, "phone"),
        ({"city": "C" * 81}, "address.city"),
        (
            {"street": "S" * 100, "house_number": 123456789, "house_number_addition": "bis-bis-bi"},
            "address.street",
        ),
    ],
)
def test_a_value_longer_than_its_column_does_not_fit(fields: dict[str, Any], column: str) -> None:
    with pytest.raises(ValueDoesNotFit) as refused:
        BOUTIQUE.expected_row(snapshot("TX00000007", **fields))
    assert refused.value.column == column


def test_values_that_just_fit() -> None:
    row = BOUTIQUE.expected_row(
        snapshot("TX00000008", first_name="A" * 29, infix=None, last_name="B" * 30)
    )
    assert row["full_name"] == "A" * 29 + " " + "B" * 30


def test_the_transform_forms_of_the_format() -> None:
    s = snapshot("TX00000009", birth_date="1984-03-02", house_number=7)
    assert source_value({"field": "birth_date", "format": "YYYYMMDD"}, s) == "19840302"
    assert source_value({"join": ["postcode", "city"], "separator": ", "}, s) == (
        "1015 CJ, Amsterdam"
    )
    assert source_value({"join": ["house_number", "newsletter_opt_in"]}, s) == "7 true"
    assert source_value({"field": "city", "codes": {"Amsterdam": "AMS"}}, s) == "AMS"
    assert source_value({"field": "city", "codes": {"Utrecht": "UTR"}}, s) is None
    assert source_value({"field": "infix", "null_as": "-"}, snapshot("T", infix=None)) == "-"
    assert source_value("email", s) == "tx00000009@example.nl"


def test_every_contract_field_is_decided_exactly_once() -> None:
    sources = [m.source for m in mapped_columns(BOUTIQUE.mapping) if not m.created_only]
    used = [f for source in sources for f in _fields(source) if f]
    not_stored = BOUTIQUE.mapping["not_stored"]["fields"]
    decided = set(used) | set(not_stored)
    assert decided == set(CONTRACT_FIELDS) - {"customer_number"}
    assert not set(used) & set(not_stored)
    assert len(not_stored) == len(set(not_stored))


def test_create_columns_are_the_shops_not_null_columns_without_a_source() -> None:
    assert BOUTIQUE.created_columns == {"segment", "shop_id", "address.created_by"}


def test_the_simulated_population_fits_the_boutique() -> None:
    rows = [BOUTIQUE.expected_row(simulated(7, i)) for i in range(1, 3001)]
    assert {r["sex"] for r in rows} == {"m", "f", "u"}
    assert all(r["full_name"] != "(unknown)" for r in rows)
    assert {r["newsletter"] for r in rows} == {"J", "N"}
