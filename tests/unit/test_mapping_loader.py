"""The mapping file's loader: shape problems name the file, the line that defines the key and
the key path; the shipped reference mapping loads; the document is the file's plain data."""

from __future__ import annotations

import json
from textwrap import dedent

import pytest

from syncctl import mapping
from syncctl.errors import MappingInvalid

GOOD = dedent(
    """\
    format = 1

    [customer]
    schema = "Crm"
    table = "Customer"
    key = "id"
    key_generate = "identity"
    number = { column = "tx_ref" }
    version = "link"

    [customer.columns]
    email = "email"
    "Full Name" = { join = ["first_name", "infix", "last_name"] }
    sex = { field = "gender", codes = { M = "m", F = "f" }, other = "u" }

    [customer.create]
    shop_id = 1

    [[related]]
    name = "home"
    schema = "Crm"
    table = "Address"
    key = "id"
    key_generate = "identity"
    via = { column = "customer_id", kind = { column = "kind", value = "home" } }
    on_anonymise = "scrub_or_detach"

    [related.columns]
    street = "street"

    [[related]]
    name = "work"
    schema = "Crm"
    table = "Address"
    key = "id"
    key_generate = "identity"
    via = { column = "customer_id", kind = { column = "kind", value = "work" } }
    on_anonymise = "scrub_or_detach"

    [related.columns]
    city = "city"

    [not_stored]
    fields = [
        "home_store",
        "loyalty_card",
    ]
    """
)


def problems(text: str) -> list[str]:
    with pytest.raises(MappingInvalid) as caught:
        mapping.parse(text, "shop.toml")
    return caught.value.problems


def replaced(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


def test_a_good_file_loads_typed_and_keeps_its_plain_document() -> None:
    loaded = mapping.parse(GOOD, "shop.toml")
    assert loaded.customer.table == "Customer"
    assert loaded.number_column == "tx_ref" and loaded.version_column is None
    assert loaded.customer.columns["Full Name"].form == "join"
    assert loaded.customer.columns["sex"].codes == {"M": "m", "F": "f"}
    assert [r.name for r in loaded.related] == ["home", "work"]
    assert loaded.related[1].via is not None and loaded.related[1].via.kind is not None
    assert loaded.not_stored == ("home_store", "loyalty_card")
    assert json.loads(loaded.json())["customer"]["create"] == {"shop_id": 1}


def test_the_reference_mapping_loads() -> None:
    loaded = mapping.load(mapping.REFERENCE)
    assert (loaded.customer.schema, loaded.customer.table, loaded.customer.key) == (
        "shop",
        "customer",
        "id",
    )
    assert loaded.number_column == "customer_number"
    assert loaded.version_column == "tritonx_version"
    assert loaded.customer.columns["tritonx_updated_at"].fields == ("updated_at",)
    assert loaded.customer.columns["blocked"].null_as is False


def test_an_unknown_key_is_named_at_its_line() -> None:
    assert problems(replaced('key = "id"\n', 'key = "id"\nkey_type = "bigint"\n')) == [
        "shop.toml:7: customer.key_type: unknown key (allowed: schema, table, key, key_generate, "
        "key_sequence, number, version, columns, create)"
    ]


def test_a_wrong_type_is_named_at_its_line() -> None:
    assert problems(replaced("shop_id = 1", "shop_id = [1, 2]")) == [
        "shop.toml:17: customer.create.shop_id: must be a literal: a string, integer, finite "
        "float or boolean"
    ]
    assert problems(replaced("format = 1", 'format = "1"')) == [
        "shop.toml:1: format: must be 1 (the only format there is)"
    ]


def test_an_unknown_transform_is_named_at_its_line() -> None:
    found = problems(replaced('email = "email"', 'email = { lower = "email" }'))
    assert found == [
        "shop.toml:12: customer.columns.email.lower: unknown key (allowed: field, join, "
        "first_of, separator, codes, other, true, false, format, null_as)",
        "shop.toml:12: customer.columns.email: needs exactly one of field, join, first_of",
    ]
    assert problems(
        replaced('{ join = ["first_name", "infix", "last_name"] }', '{ first_of = ["x"], y = 1 }')
    ) == [
        "shop.toml:13: customer.columns.Full Name.y: unknown key (allowed: field, join, "
        "first_of, separator, codes, other, true, false, format, null_as)",
        "shop.toml:13: customer.columns.Full Name.y: is not allowed with first_of",
    ]


def test_a_bad_label_in_the_second_related_table_names_that_table() -> None:
    assert problems(replaced('name = "work"', 'name = "Work Address"')) == [
        "shop.toml:32: related[1].name: must match [a-z_][a-z0-9_]* (at most 32 characters)"
    ]
    assert problems(replaced('name = "work"', 'name = "home"')) == [
        "shop.toml:32: related[1].name: is used by another [[related]] table"
    ]


def test_a_problem_in_a_nested_inline_table_is_on_its_line() -> None:
    found = problems(replaced('kind = { column = "kind", value = "work" }', 'kind = { col = "k" }'))
    assert found == [
        "shop.toml:37: related[1].via.kind.col: unknown key (allowed: column, value)",
        "shop.toml:37: related[1].via.kind.column: is missing",
        "shop.toml:37: related[1].via.kind.value: is missing",
    ]
    assert problems(replaced('number = { column = "tx_ref" }', "number = { column = 7 }")) == [
        'shop.toml:8: customer.number: must be "link" or { column = "..." }'
    ]


def test_a_key_under_a_later_header_and_a_multi_line_array_keep_their_lines() -> None:
    assert problems(replaced('city = "city"', 'city = { field = "city", true = "J" }')) == [
        "shop.toml:41: related[1].columns.city: needs both true and false"
    ]
    after = GOOD + 'extra = "x"\n'
    assert problems(after) == ["shop.toml:48: not_stored.extra: unknown key (allowed: fields)"]


def test_a_toml_syntax_error_names_its_line() -> None:
    assert problems(replaced('table = "Address"', 'table = "Address')) == [
        "shop.toml:22: toml: Illegal character '\\n'"
    ]


def test_an_unterminated_file_and_a_nul_character_are_named() -> None:
    assert problems(GOOD + "[customer.extra") == [
        "shop.toml:48: toml: Expected ']' at the end of a table declaration"
    ]
    nul = replaced("shop_id = 1", 'shop_id = "a\\u0000b"')
    assert problems(nul) == ["shop.toml:17: customer.create.shop_id: holds a NUL character"]


def test_key_generate_and_the_sequence_it_needs() -> None:
    assert problems(replaced('key_generate = "identity"', 'key_generate = "serial"')) == [
        "shop.toml:7: customer.key_generate: must be one of identity, default, uuid, sequence"
    ]
    assert problems(replaced('key_generate = "identity"', 'key_generate = "sequence"')) == [
        "shop.toml:3: customer.key_sequence: is missing"
    ]
    assert problems(
        replaced('key_generate = "identity"', 'key_generate = "identity"\nkey_sequence = "a.b"')
    ) == ['shop.toml:8: customer.key_sequence: only with key_generate = "sequence"']


def test_the_locator_maps_paths_to_the_defining_lines() -> None:
    locator = mapping.Locator(GOOD)
    assert locator.line("customer.columns.Full Name") == 13
    assert locator.line("customer.columns.sex.codes.M") == 14
    assert locator.line("related[0].via.kind.value") == 25
    assert locator.line("related[1].columns.city") == 41
    assert locator.line("related[1]") == 31
    assert locator.line("not_stored.fields[1]") == 44
    assert locator.line("nothing.here") == 1


def test_strings_and_comments_that_look_like_keys_or_headers_do_not_move_lines() -> None:
    text = replaced(
        "shop_id = 1",
        'note = """\n[[related]]\nkey = "x" # ]\n"""  # [customer]\nshop_id = [ # [\n 1 ]\nn = 2',
    )
    assert problems(text) == [
        "shop.toml:21: customer.create.shop_id: must be a literal: a string, integer, finite "
        "float or boolean"
    ]
    assert mapping.Locator(text).line("customer.create.n") == 23
