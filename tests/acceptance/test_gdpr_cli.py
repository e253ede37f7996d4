"""The GDPR commands as an operator runs them, in subprocesses against a database fed from the
simulator: a policy activated, a subject access export as a CSV zip and as HTML, an erasure
request from received to done with its proof, the report of it, and a retention dry run.
Only the export itself holds personal data; nothing else the commands print does."""

from __future__ import annotations

import csv
import io
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.acceptance.conftest import TOKEN, Simulator, syncctl


def _ok(*args: str, dsn: str) -> str:
    result = syncctl(*args, dsn=dsn)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


@pytest.mark.slow
def test_export_erasure_report_and_purge_from_the_command_line(
    simulator_factory: Callable[..., Simulator],
    dsn: str,
    conn: psycopg.Connection[Any],
    tmp_path: Path,
) -> None:
    simulator = simulator_factory("--customers", "20", "--seed", "8")
    _ok("--tritonx-url", simulator.url, "--tritonx-token", TOKEN, "pull", dsn=dsn)
    state = simulator.admin("GET", "/admin/state").json()
    subject = state["TX00000001"]["snapshot"]
    others = {s["snapshot"]["email"] for n, s in state.items() if n != "TX00000001"}
    printed: list[str] = []

    printed.append(_ok("policy", "activate", "newsletter", "--actor", "dpo", dsn=dsn))
    assert "policy newsletter: active" in printed[-1]

    archive = tmp_path / "subject.zip"
    printed.append(
        _ok("export", "TX00000001", "--format", "csv", "--output", str(archive), dsn=dsn)
    )
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with zipfile.ZipFile(archive) as bundle:
        names = set(bundle.namelist())
        customer = list(csv.DictReader(io.StringIO(bundle.read("shop.customer.csv").decode())))
        everything = " ".join(bundle.read(name).decode() for name in names)
    assert {"shop.customer.csv", "sync.audit.csv", "export.json"} <= names
    assert [row["email"] for row in customer] == [subject["email"]]
    assert [email for email in others if email in everything] == []

    page = _ok("export", "TX00000001", "--format", "html", dsn=dsn)
    assert page.startswith("<!DOCTYPE html>") and subject["email"] in page

    received = _ok("erasure", "receive", "TX00000001", "--actor", "bo:7", dsn=dsn)
    request = received.split()[2].rstrip(":")
    printed.append(received)
    printed.append(_ok("erasure", "verify", request, "--actor", "bo:7", dsn=dsn))
    printed.append(_ok("erasure", "schedule", request, "--actor", "bo:7", dsn=dsn))
    proof = _ok("erasure", "execute", request, "--actor", "bo:7", dsn=dsn)
    printed.append(proof)
    assert f"erasure request {request}: done; searched " in proof
    assert "residue hits 0" in proof
    queued = conn.execute(
        "SELECT count(*) FROM sync.outbox WHERE customer_number = 'TX00000001'"
        " AND event_type = 'customer.anonymize_requested'"
    ).fetchone()
    assert queued == (1,)

    report = _ok("report", "erasure-requests", "--format", "csv", dsn=dsn)
    printed.append(report)
    rows = list(csv.DictReader(io.StringIO(report)))
    assert [(r["request_id"], r["state"], r["residue_hits"]) for r in rows] == [
        (request, "done", "0")
    ]
    printed.append(_ok("erasure", "list", dsn=dsn))
    printed.append(_ok("purge", "--dry-run", dsn=dsn))
    assert "dry run: nothing to purge" in printed[-1]

    personal = {str(subject[k]) for k in ("email", "phone", "street") if subject.get(k)}
    personal |= {f"{subject['first_name']} {subject['last_name']}"} | others
    assert [p for p in personal if any(p in text for text in printed)] == []
