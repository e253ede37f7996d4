"""The TRITONX FIELD CONTRACT (sql/20_sync_tables.sql): every place that states tritonX's
snapshot fields and can be read mechanically agrees with sync.customer_snapshot, the one
definition. A failure names the place that is out of step and the fields it gets wrong."""

from __future__ import annotations

import json
import random
import re
import tomllib
from collections import Counter
from collections.abc import Iterable
from typing import Any

import psycopg
import pytest

from bench import dataset
from syncctl.simulator import population
from tests import feed, truth
from tests.contract import (
    JSON_TYPES,
    ROOT,
    documented_fields,
    mapped_columns,
    mapped_fields,
    snapshot_type,
)
from tests.integration import test_hostile_input

REFERENCE_MAPPING = ROOT / "syncctl" / "mappings" / "reference.toml"


@pytest.fixture
def fields(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, int | None]]:
    """field -> (JSON type, varchar length) as sync.customer_snapshot defines them."""
    defined = snapshot_type(conn)
    unknown = {f: kind for f, (kind, _) in defined.items() if kind not in JSON_TYPES}
    assert not unknown, f"sync.customer_snapshot: no JSON type known for {unknown}"
    return {f: (JSON_TYPES[kind], limit) for f, (kind, limit) in defined.items()}


def out_of_step(place: str, stated: Iterable[str], defined: Iterable[str]) -> str:
    stated, defined = set(stated), set(defined)
    return (
        f"{place} is out of step with sync.customer_snapshot: "
        f"missing {sorted(defined - stated)}, not a field {sorted(stated - defined)}"
    )


def event_defect_source(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(
        "SELECT p.prosrc FROM pg_catalog.pg_proc AS p WHERE p.oid = 'sync._event_defects'::regproc"
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_the_contract_document_states_every_field_its_type_and_length(
    conn: psycopg.Connection[Any], fields: dict[str, tuple[str, int | None]]
) -> None:
    place = 'docs/tritonx-contract.md ("Snapshot fields")'
    documented = documented_fields()
    assert list(documented) == list(fields), out_of_step(place, documented, fields)
    types = {f: kind for f, (kind, _) in documented.items() if kind != fields[f][0]}
    assert not types, f"{place} gives another JSON type for {sorted(types)}"
    # a formatted string (a date, a time) has no varchar length: sync._event_defects tests it
    formatted = event_defect_lengths(conn)
    expected = {f: limit or formatted.get(f) for f, (_, limit) in fields.items()}
    lengths = sorted(f for f in fields if documented[f][1] != expected[f])
    assert not lengths, f"{place} gives another maximum length for {lengths}"
    unlimited = [f for f, (kind, limit) in documented.items() if kind == "string" and not limit]
    assert not unlimited, f"{place} gives no maximum length for the strings {unlimited}"


def event_defect_lengths(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """field -> the maximum length sync._event_defects tests for a field with no varchar length."""
    found = re.findall(
        r"length\(p_payload #>> '\{customer,(\w+)\}'\) > (\d+)", event_defect_source(conn)
    )
    return {field: int(limit) for field, limit in found}


def test_the_json_type_check_names_every_field_with_its_type(
    conn: psycopg.Connection[Any], fields: dict[str, tuple[str, int | None]]
) -> None:
    place = "sync._event_defects's jsonpath test (sql/30_sync_apply.sql)"
    checked = dict(re.findall(r'@\.(\w+)\.type\(\) != "(?!null")(\w+)"', event_defect_source(conn)))
    expected = {f: kind for f, (kind, _) in fields.items() if f != "customer_number"}
    assert set(checked) == set(expected), out_of_step(place, checked, expected)
    wrong = sorted(f for f in checked if checked[f] != expected[f])
    assert not wrong, f"{place} expects another JSON type for {wrong}"
    unbounded = {f for f, (kind, limit) in fields.items() if kind == "string" and limit is None}
    lengths = event_defect_lengths(conn)
    assert set(lengths) == unbounded, (
        f"{place}: the strings without a varchar length are {sorted(unbounded)}, "
        f"their length is tested for {sorted(lengths)}"
    )


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def assert_fits(
    place: str, snapshots: list[dict[str, Any]], fields: dict[str, tuple[str, int | None]]
) -> None:
    """Each snapshot has exactly the contract's fields, each value of its JSON type and length."""
    for snap in snapshots:
        assert set(snap) == set(fields), out_of_step(place, snap, fields)
        wrong = sorted(
            f
            for f, value in snap.items()
            if value is not None
            and (
                json_type(value) != fields[f][0]
                or (isinstance(value, str) and len(value) > (fields[f][1] or len(value)))
            )
        )
        assert not wrong, f"{place} makes values that do not fit the contract in {wrong}"


def test_the_simulators_snapshots_have_every_field(
    fields: dict[str, tuple[str, int | None]],
) -> None:
    snapshots = [population.snapshot(seed, i) for seed in (1, 2) for i in range(1, 300)]
    assert_fits("the simulator's generator (syncctl/simulator/population.py)", snapshots, fields)


def test_the_test_records_have_every_field(fields: dict[str, tuple[str, int | None]]) -> None:
    assert_fits("tests/feed.py snapshot()", [feed.snapshot("TX00000001")], fields)


def test_the_benchmarks_own_generator_has_every_field(
    fields: dict[str, tuple[str, int | None]],
) -> None:
    encoder = dataset._Encoder(random.Random(1))
    encoder.simulated = None  # the generator used when the simulator is not installed
    snapshots = [
        json.loads(encoder.customer(i, 1, "2026-11-20T10:00:00.001Z")) for i in range(1, 300)
    ]
    assert_fits("bench/dataset.py's fragment generator", snapshots, fields)


def test_the_test_oracle_compares_every_stored_field(
    fields: dict[str, tuple[str, int | None]],
) -> None:
    # the oracle reads customers by customer_number and does not compare tritonX's own
    # updated_at (the shop keeps it as tritonx_updated_at); it compares every other field
    expected = set(fields) - {"customer_number", "updated_at"}
    place = "the test oracle (tests/truth.py SNAPSHOT_FIELDS)"
    assert Counter(truth.SNAPSHOT_FIELDS) == Counter(expected), out_of_step(
        place, truth.SNAPSHOT_FIELDS, expected
    )


def test_the_hostile_input_test_covers_every_free_string(
    fields: dict[str, tuple[str, int | None]],
) -> None:
    expected = {f for f, (_, limit) in fields.items() if limit} - {"customer_number"}
    place = "tests/integration/test_hostile_input.py TEXT_FIELDS"
    assert set(test_hostile_input.TEXT_FIELDS) == expected, out_of_step(
        place, test_hostile_input.TEXT_FIELDS, expected
    )


def assert_every_field_decided(
    place: str, document: dict[str, Any], fields: dict[str, tuple[str, int | None]]
) -> None:
    used = Counter(mapped_fields(document))
    not_stored = Counter(document.get("not_stored", {}).get("fields", []))
    decided = used.keys() | not_stored.keys()
    expected = set(fields) - {"customer_number"}
    assert decided == expected, out_of_step(place, decided, expected)
    both = sorted(used.keys() & not_stored.keys())
    assert not both, f"{place} maps and lists as not stored {both}"
    twice = sorted(f for f, n in not_stored.items() if n > 1)
    assert not twice, f"{place} lists as not stored more than once {twice}"


def active_mapping(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute("SELECT document FROM sync.mapping_version WHERE active").fetchone()
    assert row is not None, "no active mapping in a new installation"
    document: dict[str, Any] = row[0]
    return document


def test_the_installed_mapping_decides_every_field(
    conn: psycopg.Connection[Any], fields: dict[str, tuple[str, int | None]]
) -> None:
    place = "the reference shop's mapping (the active sync.mapping_version)"
    assert_every_field_decided(place, active_mapping(conn), fields)


def test_the_reference_mapping_file_decides_every_field(
    fields: dict[str, tuple[str, int | None]],
) -> None:
    with REFERENCE_MAPPING.open("rb") as handle:
        document = tomllib.load(handle)
    assert_every_field_decided("syncctl/mappings/reference.toml", document, fields)


def test_every_mapped_column_has_a_pii_strategy(conn: psycopg.Connection[Any]) -> None:
    classified = set(
        conn.execute("SELECT table_schema, table_name, column_name FROM sync.pii_column")
    )
    missing = sorted(
        ".".join(c) for c in mapped_columns(active_mapping(conn)) if c not in classified
    )
    assert not missing, (
        f"the PII registry's seeds (sync.pii_column, sql/40_registry.sql) classify no "
        f"strategy for the mapped columns {missing}"
    )
