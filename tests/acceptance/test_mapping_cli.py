"""`syncctl mapping check|plan|install|show` as a DBA runs them: problems and defects as
FILE:LINE: path: problem with exit 1, the reference mapping fits a fresh install, plan prints the
summary (and the compiled SQL, or one line when this database has no compiler), install refuses
a defective mapping before the database is asked and installs the reference mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from syncctl import mapping
from tests.acceptance.conftest import syncctl


def _has(conn: psycopg.Connection[Any], regprocedure: str) -> bool:
    row = conn.execute("SELECT to_regprocedure(%s) IS NOT NULL", [regprocedure]).fetchone()
    return bool(row and row[0])


def test_check_prints_file_line_path_and_exits_1_on_a_defect(dsn: str, tmp_path: Path) -> None:
    reference = mapping.REFERENCE.read_text(encoding="utf-8")
    file = tmp_path / "shop.toml"
    file.write_text(reference.replace('city = "city"', 'town = "city"'), encoding="utf-8")
    line = 1 + file.read_text(encoding="utf-8").splitlines().index('town = "city"')
    result = syncctl("mapping", "check", str(file), dsn=dsn)
    assert result.returncode == 1, result.stderr
    assert f"{file}:{line}: customer.columns.town: shop.customer has no column town" in (
        result.stdout
    )
    assert "1 defect(s)" in result.stderr


def test_a_warning_alone_is_printed_and_exits_0(
    dsn: str, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    conn.execute("ALTER TABLE shop.customer ADD COLUMN nickname varchar(5)")
    conn.commit()
    file = tmp_path / "shop.toml"
    text = mapping.REFERENCE.read_text(encoding="utf-8")
    file.write_text(text.replace('infix = "infix"\n', 'infix = "infix"\nnickname = "first_name"\n'))
    line = 1 + file.read_text(encoding="utf-8").splitlines().index('nickname = "first_name"')
    result = syncctl("mapping", "check", str(file), dsn=dsn)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{file}:{line}: customer.columns.nickname: warning: the column is character varying(5) "
        "but first_name can be 100 characters long; a longer value is a dead letter",
        f"ok: {file} fits this database (1 warning(s))",
    ]


def test_check_of_an_invalid_file_names_the_line_without_a_database(tmp_path: Path) -> None:
    file = tmp_path / "shop.toml"
    file.write_text('format = 1\n[customer]\nschema = "shop"\ncolour = "blue"\n', encoding="utf-8")
    result = syncctl("mapping", "check", str(file), dsn="dbname=never_connected")
    assert result.returncode == 1
    assert f"{file}:4: customer.colour: unknown key" in result.stdout


def test_the_reference_mapping_checks_and_plans(dsn: str, conn: psycopg.Connection[Any]) -> None:
    checked = syncctl("mapping", "check", str(mapping.REFERENCE), dsn=dsn)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout == f"ok: {mapping.REFERENCE} fits this database\n"
    planned = syncctl("mapping", "plan", str(mapping.REFERENCE), dsn=dsn)
    assert planned.returncode == 0, planned.stderr
    assert "customer table: shop.customer, key id, a new one from its identity column" in (
        planned.stdout
    )
    assert "tritonx_updated_at     <- updated_at" in planned.stdout
    assert "grants needed: none" in planned.stdout
    assert "not installed" not in planned.stdout
    assert "CREATE OR REPLACE FUNCTION syncmap.write_customers" in planned.stdout


def test_install_refuses_a_defective_mapping_before_asking_the_database(
    dsn: str, tmp_path: Path
) -> None:
    file = tmp_path / "shop.toml"
    text = mapping.REFERENCE.read_text(encoding="utf-8").replace('"tritonx_version"', '"gender"')
    file.write_text(text, encoding="utf-8")
    result = syncctl("mapping", "install", str(file), dsn=dsn)
    assert result.returncode == 1
    assert "customer.version.column: gender is text" in result.stdout
    assert "installed" not in result.stdout


def test_install_and_show_a_mapping(dsn: str, tmp_path: Path) -> None:
    # the shipped reference mapping is what a fresh install is bound by: installing it again
    # changes nothing
    again = syncctl("mapping", "install", str(mapping.REFERENCE), dsn=dsn)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("installed mapping version 1")
    # a changed mapping becomes the next version, with its file as the source
    file = tmp_path / "shop.toml"
    text = mapping.REFERENCE.read_text(encoding="utf-8")
    file.write_text(text.replace('home_store = "home_store"\n', "") + NOT_STORED, encoding="utf-8")
    installed = syncctl("mapping", "install", str(file), dsn=dsn)
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout.startswith("installed mapping version 2")
    shown = syncctl("mapping", "show", dsn=dsn)
    assert shown.returncode == 0, shown.stderr
    assert "version:      2\n" in shown.stdout
    assert f"source:       {file}\n" in shown.stdout
    assert "customer table: shop.customer" in shown.stdout
    assert "not stored: home_store" in shown.stdout


NOT_STORED = """
[not_stored]
fields = ["home_store"]
"""
