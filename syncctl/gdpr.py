"""GDPR data policies: policies, consents, retention runs, subject access, rectification and
erasure requests. The logic is in the database (sql/80_gdpr_schema.sql ..
sql/89_gdpr_erasure.sql); these are typed calls into it.

Time is a parameter everywhere (`now`), so jobs can be tested and replayed without waiting.
Nothing here logs or raises personal data: refusals carry the database's reason (ids, codes,
field names). Only SubjectData holds personal data: it is the export the person asked for."""

from __future__ import annotations

import json
import logging
import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from syncctl import queries
from syncctl.database import in_transaction
from syncctl.errors import GdprError, GdprRefusal, SubjectNotFound

T = TypeVar("T")
log = logging.getLogger(__name__)


def _refusal(code: str, reason: str) -> GdprRefusal:
    return GdprRefusal(reason, sqlstate=code)


def _in_transaction(conn: psycopg.Connection[Any], work: Callable[[], T]) -> T:
    return in_transaction(conn, work, GdprError, _refusal)


def _value(conn: psycopg.Connection[Any], name: str, /, **params: Any) -> Any:
    """The single value block `name` returns."""
    row = queries.one(conn, name, **params)
    assert row is not None
    return row[0]


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    code: str
    name: str
    state: str
    legal_basis: str
    retention: str | None
    retention_from: str
    membership: str
    customer_group: str | None
    consent_field: str | None
    merge_rule: str
    text_version: int
    description: str
    categories: list[str]


def policies(conn: psycopg.Connection[Any]) -> list[Policy]:
    rows = _in_transaction(conn, lambda: queries.all(conn, "policy_list"))
    return [Policy(*row) for row in rows]


def policy(conn: psycopg.Connection[Any], code: str) -> Policy:
    row = _in_transaction(conn, lambda: queries.one(conn, "policy_show", code=code))
    if row is None:
        raise GdprRefusal(f"no data policy {code}", sqlstate="SY080")
    return Policy(*row)


def create_policy(
    conn: psycopg.Connection[Any],
    code: str,
    *,
    name: str,
    description: str,
    legal_basis: str,
    retention: str | None,
    retention_from: str,
    categories: list[str],
    membership: str = "all",
    customer_group: str | None = None,
    consent_field: str | None = None,
    merge_rule: str = "most_restrictive",
    actor: str,
) -> int:
    """Create a draft policy; returns its id."""
    params = {
        "code": code,
        "name": name,
        "description": description,
        "legal_basis": legal_basis,
        "retention": retention,
        "retention_from": retention_from,
        "categories": categories,
        "membership": membership,
        "customer_group": customer_group,
        "consent_field": consent_field,
        "merge_rule": merge_rule,
        "actor": actor,
    }
    return int(_in_transaction(conn, lambda: _value(conn, "policy_create", **params)))


@dataclass(frozen=True)
class PolicyChange:
    """A policy's state after activating or retiring it; `consents`: the consents an
    activation took over from tritonX's field, `consents_from` where it read it ("column" or
    "snapshots"; None for a policy without a consent field)."""

    state: str
    consents: int = 0
    consents_from: str | None = None


def activate_policy(
    conn: psycopg.Connection[Any], code: str, *, actor: str, now: datetime | None = None
) -> PolicyChange:
    params = {"code": code, "actor": actor, "now": now or utcnow()}
    result = _in_transaction(conn, lambda: _value(conn, "policy_activate", **params))
    return PolicyChange(
        str(result["state"]), int(result.get("consents") or 0), result.get("consents_from")
    )


def retire_policy(
    conn: psycopg.Connection[Any], code: str, *, actor: str, now: datetime | None = None
) -> PolicyChange:
    params = {"code": code, "actor": actor, "now": now or utcnow()}
    result = _in_transaction(conn, lambda: _value(conn, "policy_retire", **params))
    return PolicyChange(str(result["state"]))


def revise_policy(
    conn: psycopg.Connection[Any], code: str, *, description: str | None, actor: str
) -> int:
    params = {"code": code, "description": description, "actor": actor}
    return int(_in_transaction(conn, lambda: _value(conn, "policy_revise", **params)))


def record_consent(
    conn: psycopg.Connection[Any],
    customer: int | str,
    policy_code: str,
    *,
    granted: bool,
    source: str = "webshop",
    actor: str = "webshop",
    at: datetime | None = None,
) -> int:
    """Record a decision of the customer whose mapped key is `customer` (an integer key, or
    any key as text: '42', a uuid); the new consent's id."""
    params = {
        "customer_key": str(customer),
        "policy": policy_code,
        "granted": granted,
        "source": source,
        "actor": actor,
        "at": at or utcnow(),
    }
    return int(_in_transaction(conn, lambda: _value(conn, "consent_record", **params)))


# ---------------------------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PurgeStep:
    """What a retention run does to one table for the customers one policy releases: the rows
    it changes there (as the run counts them) and the customers."""

    policy: str
    table: str
    columns: tuple[str, ...] | None
    action: str
    customers: int
    reasons: tuple[str, ...]
    rows: int = 0


# what an action does to a table's rows, in words (the dry run's totals)
_WAYS = {
    "anonymise": "scrubbed in place",
    "scrub": "scrubbed in place",
    "scrubbed copy": "copied",
    "detach": "detached",
    "delete_rows": "deleted",
    "delete": "deleted",
    "decide as skipped": "decided as skipped",
}


@dataclass(frozen=True)
class PurgeTable:
    """What a retention run changes in one table, whichever policies release it: the rows (the
    count the run reports for the table), how many of them each way (scrubbed in place, copied,
    detached, deleted), and the customers."""

    table: str
    rows: int
    customers: int
    ways: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class PurgePlan:
    """A retention run's dry run: per policy and table (`steps`), per table (`tables`), and the
    number of customers it changes."""

    steps: list[PurgeStep]
    tables: list[PurgeTable]
    customers: int


@dataclass
class PurgeReport:
    customers: int = 0
    batches: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    # customers whose anonymisation the shop's trigger or constraint refused (left, audited)
    refused: int = 0


@dataclass(frozen=True)
class ExpiryWarning:
    """A customer (its key as text, its tritonX number) whose data a policy stops holding. The
    key is None for a text key (it may be an e-mail address): such a customer is named by its
    number."""

    customer_key: str | None
    customer_number: str | None
    policy: str
    expires_at: datetime


def purge_plan(conn: psycopg.Connection[Any], *, now: datetime) -> list[PurgeStep]:
    """What a retention run at `now` would do, per policy and table (a dry run)."""
    return purge_dry_run(conn, now=now).steps


def purge_dry_run(conn: psycopg.Connection[Any], *, now: datetime) -> PurgePlan:
    """What a retention run at `now` would do, per policy and table and per table: the rows it
    changes (the counts the run then reports) and the customers."""
    rows = _in_transaction(conn, lambda: queries.all(conn, "retention_plan", now=now))
    steps: dict[tuple[str, str, tuple[str, ...] | None, str], _Tally] = {}
    tables: dict[str, _Tally] = {}
    for customer_key, table, columns, action, count, releasing, reasons in rows:
        for code in releasing:
            step = (code, table, tuple(columns) if columns else None, action)
            steps.setdefault(step, _Tally()).add(
                customer_key, count, reasons=tuple(r for r in reasons if r.startswith(f"{code}: "))
            )
        way = str(action).removeprefix("anonymise: ")
        tables.setdefault(table, _Tally()).add(customer_key, count, way=_WAYS.get(way, way))
    return PurgePlan(
        steps=[
            PurgeStep(
                code, table, columns, action, len(t.customers), tuple(sorted(t.reasons)), t.rows
            )
            for (code, table, columns, action), t in sorted(
                steps.items(), key=lambda item: (item[0][0], item[0][1], item[0][3])
            )
        ],
        tables=[
            PurgeTable(table, t.rows, len(t.customers), tuple(sorted(t.ways.items())))
            for table, t in sorted(tables.items())
        ],
        customers=len({str(row[0]) for row in rows}),
    )


@dataclass
class _Tally:
    """Rows and customers of a dry run's line, as they add up."""

    rows: int = 0
    customers: set[str] = field(default_factory=set)
    reasons: set[str] = field(default_factory=set)
    ways: dict[str, int] = field(default_factory=dict)

    def add(
        self, customer_key: Any, rows: int, *, reasons: tuple[str, ...] = (), way: str | None = None
    ) -> None:
        self.rows += int(rows)
        self.customers.add(str(customer_key))
        self.reasons.update(reasons)
        if way is not None:
            self.ways[way] = self.ways.get(way, 0) + int(rows)


def expiry_warnings(
    conn: psycopg.Connection[Any], *, now: datetime, within_days: int
) -> list[ExpiryWarning]:
    """Customers whose data a policy stops holding within `within_days` days of `now`."""
    params = {"now": now, "within": f"{int(within_days)} days"}
    rows = _in_transaction(conn, lambda: queries.all(conn, "retention_warnings", **params))
    return [ExpiryWarning(str(k), n, p, e) for k, n, p, e in rows]


def purge_scope(conn: psycopg.Connection[Any]) -> int:
    """How many customers a retention run examines (the length of its progress bar)."""
    return int(_in_transaction(conn, lambda: _value(conn, "retention_scope")))


def purge(
    conn: psycopg.Connection[Any],
    *,
    now: datetime,
    batch_size: int = 500,
    actor: str = "retention",
    progress: Callable[[int], None] | None = None,
) -> PurgeReport:
    """Carry out the retention run at `now`, examining `batch_size` customers per transaction
    in key order (`progress` is told how many). Idempotent: a run broken off and started again
    changes only what is left, a second run finds nothing to do."""
    report = PurgeReport()
    after: str | None = None
    while True:
        params = {"now": now, "after": after, "limit": batch_size, "actor": actor}
        result = _in_transaction(conn, partial(_value, conn, "purge_batch", **params))
        if result.get("last_key") is None:
            return report
        report.batches += 1
        report.customers += int(result["customers"])
        report.refused += int(result.get("refused") or 0)
        for table, rows in (result.get("counts") or {}).items():
            report.counts[table] = report.counts.get(table, 0) + int(rows)
        if progress is not None:
            progress(int(result["scanned"]))
        after = str(result["last_key"])


def daily(conn: psycopg.Connection[Any], *, now: datetime | None = None) -> dict[str, Any]:
    """The daily GDPR job for the daemon: the retention run, then the erasure requests due."""
    moment = now or utcnow()
    purged = purge(conn, now=moment)
    erasures = _in_transaction(
        conn,
        lambda: _value(conn, "erasure_execute_due", actor="scheduler", now=moment),
    )
    return {
        "purged_customers": purged.customers,
        "purge_counts": purged.counts,
        "purge_refused": purged.refused,
        **erasures,
    }


def daily_slot(at: time, now: datetime) -> datetime:
    """The latest moment at wall-clock time `at` in the zone of `now` (local when `now` is naive)
    that is not after `now`: the slot a daily job started at `now` belongs to."""
    zoned = now if now.tzinfo is not None else now.astimezone()
    slot = zoned.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    return slot if slot <= zoned else slot - timedelta(days=1)


def run_daily_if_due(
    conn: psycopg.Connection[Any], *, at: time, now: datetime | None = None
) -> dict[str, Any] | None:
    """Run the daily job for the current slot (`at` in local time, or in the zone of `now`)
    unless it finished already (gdpr.job_run); a slot broken off is taken up again. Returns the
    job's result, None when there was nothing to do."""
    moment = now or datetime.now().astimezone()
    params = {"slot": daily_slot(at, moment), "now": moment}
    claimed = _in_transaction(conn, lambda: queries.one(conn, "daily_claim", **params))
    if claimed is None:
        return None
    result = daily(conn, now=moment)
    finish = {
        "id": claimed[0],
        "now": utcnow(),
        "customers": result["purged_customers"],
        "counts": Jsonb(result["purge_counts"]),
        "done": result["done"],
        "failed": result["failed"],
    }
    _in_transaction(conn, lambda: queries.run(conn, "daily_finish", **finish))
    return result


@dataclass
class DailyJob:
    """The daemon's hook for the daily GDPR job (`syncctl run --gdpr-daily-at HH:MM`): called
    every cycle, runs the job once per slot; after a failure it waits `retry_seconds`."""

    at: time
    retry_seconds: float = 300.0
    _not_before: float = 0.0

    def __call__(self, conn: psycopg.Connection[Any]) -> dict[str, Any] | None:
        if clock.monotonic() < self._not_before:
            return None
        try:
            result = run_daily_if_due(conn, at=self.at)
        except GdprError as exc:
            # the SQLSTATE only: a server message may quote a value
            log.error(
                "daily GDPR job failed (SQLSTATE %s); retrying in %.0f s",
                exc.sqlstate or "-",
                self.retry_seconds,
            )
            self._not_before = clock.monotonic() + self.retry_seconds
            return None
        if result is not None:
            log.info(
                "daily GDPR job: %d customer(s) purged (%d refused by the shop's triggers or"
                " constraints), erasure requests %d done, %d failed",
                result["purged_customers"],
                result["purge_refused"],
                result["done"],
                result["failed"],
            )
        return result


# ---------------------------------------------------------------------------------------------
# Subject access and rectification
# ---------------------------------------------------------------------------------------------
CustomerKey = int | str
"""A local customer: its key in the mapped customer table, an int for an integer key (the
customer id), else the key's text ('4b9f6a1e-...'). The database takes either as text."""


@dataclass
class SubjectData:
    """Everything the database holds about one person, per source table (schema.table, the
    mapped customer table first), each row as the database's JSON of it (a number with a
    fraction as a Decimal, exact). Personal data."""

    customer_key: str
    customer_id: int | None
    customer_number: str | None
    generated_at: datetime
    customer_table: str = ""
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Subject:
    """A local customer found by key or number: the key as text, the id (integer keys), the
    tritonX number (None for a customer tritonX does not know) and the mapped table."""

    key: str
    customer_id: int | None
    number: str | None
    table: str


def find_subject(
    conn: psycopg.Connection[Any], *, number: str | None = None, key: str | None = None
) -> Subject:
    """The local customer for a number (following merges) or a key (as text; an integer key's
    id as digits). SubjectNotFound names the number, never the key (a text key may be
    anything)."""
    params = {"number": number, "key": key}
    row = _in_transaction(conn, lambda: queries.one(conn, "resolve_customer", **params))
    if row is None:
        what = "has this key" if key is not None else f"with number {number}"
        raise SubjectNotFound(f"no local customer {what}", sqlstate="SY020")
    return Subject(str(row[0]), None if row[1] is None else int(row[1]), row[2], str(row[3]))


def resolve_subject(
    conn: psycopg.Connection[Any], *, number: str | None = None, customer_id: int | None = None
) -> tuple[int, str | None]:
    """The local customer id and number for a number (following merges) or an id, on a mapped
    table with an integer key (find_subject takes any key)."""
    found = find_subject(conn, number=number, key=None if customer_id is None else str(customer_id))
    if found.customer_id is None:
        raise SubjectNotFound("the mapped customer key is not an integer", sqlstate="SY020")
    return found.customer_id, found.number


def subject_data(
    conn: psycopg.Connection[Any],
    *,
    number: str | None = None,
    customer_id: CustomerKey | None = None,
    now: datetime | None = None,
) -> SubjectData:
    """The subject access export ("registerutdrag") of one customer, by number or key."""
    found = find_subject(conn, number=number, key=None if customer_id is None else str(customer_id))
    moment = now or utcnow()
    rows = _in_transaction(
        conn,
        lambda: queries.all(conn, "subject_data", customer_key=found.key, now=moment),
    )
    data = SubjectData(found.key, found.customer_id, found.number, moment, found.table)
    for source, row in rows:
        # Decimal, not float: an amount keeps its scale (12.50) and a wide numeric its digits
        data.tables.setdefault(str(source), []).append(json.loads(row, parse_float=Decimal))
    return data


def rectify(
    conn: psycopg.Connection[Any], customer: CustomerKey, fields: dict[str, Any], *, actor: str
) -> list[str]:
    """Correct the shop's own columns of a customer; returns the field names changed."""
    params = {"customer_key": str(customer), "fields": Jsonb(fields), "actor": actor}
    result = _in_transaction(conn, lambda: _value(conn, "rectify", **params))
    return [str(name) for name in result["fields"]]


# ---------------------------------------------------------------------------------------------
# Erasure requests
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErasureRequest:
    """An erasure request as listed: the customer's key (as text; None for a text key, which
    may be an e-mail address) and number, no digests."""

    id: int
    customer_key: str | None
    customer_number: str | None
    state: str
    received_at: datetime
    scheduled_for: datetime | None
    finished_at: datetime | None
    attempts: int
    last_error: str | None
    residue_hits: int | None
    columns_searched: int | None


def receive_erasure(
    conn: psycopg.Connection[Any],
    customer: CustomerKey,
    *,
    actor: str,
    now: datetime | None = None,
) -> int:
    params = {"customer_key": str(customer), "actor": actor, "now": now or utcnow()}
    return int(_in_transaction(conn, lambda: _value(conn, "erasure_receive", **params)))


def verify_erasure(
    conn: psycopg.Connection[Any], request_id: int, *, actor: str, now: datetime | None = None
) -> None:
    params = {"request_id": request_id, "actor": actor, "now": now or utcnow()}
    _in_transaction(conn, lambda: queries.run(conn, "erasure_verify", **params))


def schedule_erasure(
    conn: psycopg.Connection[Any],
    request_id: int,
    *,
    actor: str,
    grace_days: int = 0,
    now: datetime | None = None,
) -> datetime:
    params = {
        "request_id": request_id,
        "actor": actor,
        "grace": f"{int(grace_days)} days",
        "now": now or utcnow(),
    }
    due: datetime = _in_transaction(conn, lambda: _value(conn, "erasure_schedule", **params))
    return due


def cancel_erasure(
    conn: psycopg.Connection[Any], request_id: int, *, actor: str, now: datetime | None = None
) -> None:
    params = {"request_id": request_id, "actor": actor, "now": now or utcnow()}
    _in_transaction(conn, lambda: queries.run(conn, "erasure_cancel", **params))


@dataclass(frozen=True)
class ErasureProof:
    """The proof of an erasure: counts and ids only. `residue`: per column, the values still
    found; `same_email_customers`: other local customers with the same e-mail, not erased
    (ids for an integer key, else keys);
    `tables_not_searched`: tables the erasing role may not read (or another owner's under
    row-level security), which the residue search left out."""

    request: int
    state: str
    columns_searched: int | None
    residue_hits: int | None
    residue: dict[str, int]
    counts: dict[str, int]
    outbox_id: int | None
    same_email_customers: list[CustomerKey]
    tables_not_searched: list[str]
    error: str | None


@dataclass(frozen=True)
class ErasureStep:
    """One table an erasure's anonymisation changes: how many rows, and how (scrub, scrubbed
    copy, detach, delete_rows, decide as skipped)."""

    table: str
    action: str
    rows: int


def erasure_plan(conn: psycopg.Connection[Any], request_id: int) -> list[ErasureStep]:
    """What executing the erasure request would change, per table (a dry run): the counts the
    execution then reports; empty when its customer is anonymised already."""
    rows = _in_transaction(conn, lambda: queries.all(conn, "erasure_plan", request_id=request_id))
    return [ErasureStep(str(table), str(action), int(n)) for table, action, n in rows]


def execute_erasure(
    conn: psycopg.Connection[Any], request_id: int, *, actor: str, now: datetime | None = None
) -> ErasureProof:
    """Anonymise and search for residue; returns the proof of erasure (counts only)."""
    params = {"request_id": request_id, "actor": actor, "now": now or utcnow()}
    proof = _in_transaction(conn, lambda: _value(conn, "erasure_execute", **params))
    return ErasureProof(
        request=int(proof["request"]),
        state=str(proof["state"]),
        columns_searched=proof.get("columns_searched"),
        residue_hits=proof.get("residue_hits"),
        residue=dict(proof.get("residue") or {}),
        counts=dict(proof.get("counts") or {}),
        outbox_id=proof.get("outbox_id"),
        same_email_customers=list(proof.get("same_email_customers") or []),
        tables_not_searched=list(proof.get("tables_not_searched") or []),
        error=proof.get("error"),
    )


def erasure_requests(
    conn: psycopg.Connection[Any], *, state: str | None = None
) -> list[ErasureRequest]:
    rows = _in_transaction(conn, lambda: queries.all(conn, "erasure_list", state=state))
    return [ErasureRequest(*row) for row in rows]
