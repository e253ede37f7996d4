"""Scenario `erasure`: executing erasure requests (gdpr.execute_erasure: the anonymisation
through the back-office path, then the residue search that proves it) on a database of N
customers applied through the feed (their inbox payloads still held), with two orders each
delivered to the customer's own name and e-mail. Names are Dutch and repeat across customers, as
they do in life. Timed in requests a second over a sample, each request its own transaction.
Baselines on a fresh database each with the same rows: (a) the anonymisation alone
(sync.anonymise_from_backoffice, no proof); (b) a Python client doing the same proof row by row:
it anonymises through the same function, then fetches the rows the search looks at
(gdpr._residue_scopes) and digests every value client-side. Both read the same rows, so the
goal against the client is parity: digesting in the database must not be slower than shipping
the rows out. (The search over every row of every table that this scoping replaced took 36 s a
request at 10k customers and failed every request on other people's names.)"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench import inbox_copy
from bench.apply import stage_pages
from bench.databases import Server
from bench.dataset import Dataset
from bench.report import Direction, Goal, Row, size_label
from bench.statements import settle, statements
from syncctl import gdpr

SAMPLE = 20
CLIENT_SAMPLE = 5
ACTOR = "bench"
NOW = datetime(2026, 11, 23, tzinfo=UTC)
GOAL_VS_BARE = Goal(Direction.AT_LEAST, 0.25)
GOAL_VS_CLIENT = Goal(Direction.AT_LEAST, 1)

_SEPARATORS = re.compile(r'[\s,;:/|()<>"]+')
_NOT_ALNUM = re.compile(r"[\W_]+")


@contextmanager
def _populated(server: Server, data: Dataset) -> Iterator[str]:
    with server.clone() as dsn:
        with psycopg.connect(dsn) as conn:
            inbox_copy.prepare(conn)
            stage_pages(conn, data.inserts, 10_000)
            conn.execute(statements()["erasure_orders"])
            conn.commit()
        settle(dsn)
        yield dsn


def _subjects(dsn: str, customers: int, sample: int) -> list[int]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            statements()["erasure_subjects"], {"customers": customers, "sample": sample}
        ).fetchall()
    return [int(row[0]) for row in found]


def _scheduled(conn: psycopg.Connection[Any], customer_id: int) -> int:
    request = gdpr.receive_erasure(conn, customer_id, actor=ACTOR, now=NOW)
    gdpr.verify_erasure(conn, request, actor=ACTOR, now=NOW)
    gdpr.schedule_erasure(conn, request, actor=ACTOR, now=NOW)
    return request


def _subject(dsn: str, ids: list[int]) -> tuple[float, dict[str, int]]:
    states: dict[str, int] = {}
    seconds = 0.0
    with psycopg.connect(dsn) as conn:
        for customer_id in ids:
            request = _scheduled(conn, customer_id)
            started = time.perf_counter()
            proof = gdpr.execute_erasure(conn, request, actor=ACTOR, now=NOW)
            seconds += time.perf_counter() - started
            states[proof.state] = states.get(proof.state, 0) + 1
    return seconds, states


def _bare(dsn: str, ids: list[int]) -> float:
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        for customer_id in ids:
            with conn.transaction():
                conn.execute(statements()["erasure_anonymise"], {"id": customer_id})
        return time.perf_counter() - started


def _digests(text: str, key: bytes) -> set[str]:
    """gdpr._text_digests, client-side: the whole text and every run of one to four words,
    HMAC-SHA256 under the install's key."""
    words = [w for w in _SEPARATORS.split(text.strip()) if w] or [""]
    candidates = {_NOT_ALNUM.sub("", text.lower())}
    for start in range(len(words)):
        for n in range(1, 5):
            if start + n <= len(words):
                candidates.add(_NOT_ALNUM.sub("", "".join(words[start : start + n]).lower()))
    return {
        hmac.new(key, c.encode(), hashlib.sha256).hexdigest() for c in candidates if len(c) >= 6
    }


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _client_hits(
    conn: psycopg.Connection[Any],
    rows_sql: str,
    is_json: list[bool],
    digests: set[str],
    key: bytes,
) -> int:
    """Values of the scope's rows that reveal a digest, fetched and digested client-side."""
    hits = 0
    with conn.cursor(name="residue") as rows:
        rows.itersize = 2_000
        rows.execute(rows_sql)
        for row in rows:
            for value, json_column in zip(row, is_json, strict=True):
                if value is None:
                    continue
                texts = _strings(value) if json_column else [str(value)]
                if any(_digests(text, key) & digests for text in texts):
                    hits += 1
    return hits


def _client(dsn: str, ids: list[int]) -> tuple[float, int]:
    s = statements()
    hits = 0
    seconds = 0.0
    with psycopg.connect(dsn) as conn:
        pad = conn.execute(s["erasure_proof_key"]).fetchone()
        assert pad is not None
        key = bytes(b ^ 0x36 for b in pad[0])  # the key, from its inner pad
        for customer_id in ids:
            request = _scheduled(conn, customer_id)
            started = time.perf_counter()
            with conn.transaction():
                found = conn.execute(s["erasure_digests"], {"request": request}).fetchone()
                digests = set(found[0] if found else ())
                conn.execute(s["erasure_anonymise"], {"id": customer_id})
                scopes = conn.execute(s["erasure_scopes"], {"id": customer_id}).fetchall()
                for _name, _columns, is_json, rows_sql in scopes:
                    hits += _client_hits(conn, rows_sql, is_json, digests, key)
            seconds += time.perf_counter() - started
    return seconds, hits


def run(server: Server, data: Dataset, log: Callable[[str], None]) -> tuple[list[Row], list[str]]:
    customers = data.size
    label = size_label(customers)
    rates: dict[str, float] = {}
    for name in ("subject", "bare", "client"):
        with _populated(server, data) as dsn:
            sample = CLIENT_SAMPLE if name == "client" else SAMPLE
            ids = _subjects(dsn, customers, sample)
            if name == "subject":
                seconds, states = _subject(dsn, ids)
                log(f"erasure {label}: {len(ids)} requests in {seconds:.2f}s, states {states}")
            elif name == "bare":
                seconds = _bare(dsn, ids)
                log(f"erasure {label}: anonymisation alone {seconds:.2f}s for {len(ids)}")
            else:
                seconds, hits = _client(dsn, ids)
                log(f"erasure {label}: client {seconds:.2f}s for {len(ids)}, {hits} hits")
            rates[name] = len(ids) / seconds
    return [
        Row(
            "erasure request executed (with proof)",
            label,
            rates["subject"],
            "req/s",
            "anonymisation alone",
            rates["bare"],
            GOAL_VS_BARE,
        ),
        Row(
            "erasure request executed (with proof)",
            label,
            rates["subject"],
            "req/s",
            "row-by-row client",
            rates["client"],
            GOAL_VS_CLIENT,
        ),
    ], []
