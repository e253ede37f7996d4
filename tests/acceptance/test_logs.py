"""`syncctl --log-format json -vv pull` against a chaotic simulator: every stderr line is a JSON
object, the error paths are logged, and no personal data of the pulled population (emails,
names, phones, street, postcodes, birth dates, loyalty cards) appears in any of it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import psycopg

from syncctl.simulator.population import snapshot
from tests.acceptance.conftest import TOKEN, Simulator, syncctl

CUSTOMERS = 300
SEED = 7

# Values long enough that finding one in a log line is no coincidence.
FIELDS = ("email", "phone", "mobile", "birth_date", "loyalty_card")
WORD_FIELDS = ("first_name", "last_name", "street", "postcode", "city")


def _personal(
    pulled: set[str], edited: list[dict[str, Any]] | None = None
) -> tuple[set[str], set[str]]:
    """Literal values and whole words of the customers the database now holds: their seeded
    snapshots and, when given, the snapshots tritonX's activity edited since."""
    literal: set[str] = set()
    words: set[str] = set()
    seeded = [snapshot(SEED, i) for i in range(CUSTOMERS + 1)]
    for snap in seeded + (edited or []):
        if snap["customer_number"] not in pulled:
            continue
        literal |= {str(snap[f]) for f in FIELDS if snap.get(f)}
        words |= {str(snap[f]) for f in WORD_FIELDS if snap.get(f)}
        if str(snap["postcode"]).isdigit():
            # a Belgian postcode is a 4-digit number: a sequence number or port could match
            words.discard(str(snap["postcode"]))
        else:
            literal.add(str(snap["postcode"]).replace(" ", ""))
        name = " ".join(p for p in (snap["first_name"], snap["infix"], snap["last_name"]) if p)
        literal.add(name)
    return literal, words


def _leaks(text: str, literal: set[str], words: set[str]) -> list[str]:
    found = [v for v in literal if v in text]
    found += [w for w in words if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text)]
    return sorted(found)


def test_json_logs_of_a_pull_carry_no_personal_data(
    simulator_factory: Callable[..., Simulator], dsn: str, conn: psycopg.Connection[Any]
) -> None:
    simulator = simulator_factory(
        "--customers",
        str(CUSTOMERS),
        "--seed",
        str(SEED),
        "--chaos-malformed",
        "0.3",
        "--chaos-server-error",
        "0.3",
        "--chaos-seed",
        "5",
    )
    simulator.admin("POST", "/admin/activity", json={"n": 40, "seed": 2})
    done = syncctl(
        "--log-format",
        "json",
        "-vv",
        "--tritonx-url",
        simulator.url,
        "--tritonx-token",
        TOKEN,
        "pull",
        "--page-size",
        "50",
        dsn=dsn,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]
    assert entries and all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    assert any(e["level"] == "warning" for e in entries), "the chaos left no trace in the logs"

    pulled = {r[0] for r in conn.execute("SELECT customer_number FROM shop.customer")}
    assert len(pulled) > CUSTOMERS // 2
    state = simulator.admin("GET", "/admin/state").json()
    edited = [e["snapshot"] for e in state.values() if e.get("snapshot")]
    literal, words = _personal(pulled, edited)
    assert len(literal) > 1000 and len(words) > 100
    # json.dumps escapes non-ASCII: search the decoded messages as well as the raw lines
    decoded = "\n".join(" ".join(str(v) for v in e.values()) for e in entries)
    assert _leaks(done.stderr + "\n" + decoded + "\n" + done.stdout, literal, words) == []


def test_the_leak_scan_finds_a_planted_value() -> None:
    snap = snapshot(SEED, 3)
    literal, words = _personal({snap["customer_number"]})
    line = json.dumps({"message": f"refresh of {snap['last_name']} failed"})
    decoded = json.loads(line)["message"]
    assert _leaks(decoded, literal, words) == [snap["last_name"]]
