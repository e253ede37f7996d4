"""Operating the merge and anonymise engine by hand: merges and anonymisations (with dry runs
that print per table how many rows would change), dead letters (list, show, retry, discard)
and the PII coverage check. The logic is in the database (sql/48_redirect.sql ..
sql/55_anonymise.sql, sql/60_event_apply.sql); these are typed calls into it.

Nothing here reads or returns personal data: ids, numbers, event ids, types, versions, table
names, counts and reasons only. Refusals the database raises (SQLSTATE class SY) become
EngineRefusal with the database's reason, which holds no personal data either."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from syncctl import grammar, queries
from syncctl.database import in_transaction
from syncctl.errors import DeadLetterNotFound, EngineError, EngineRefusal

T = TypeVar("T")


def _refusal(code: str, reason: str) -> EngineRefusal:
    if code == "SY030":
        return DeadLetterNotFound(reason, sqlstate=code)
    return EngineRefusal(reason, sqlstate=code)


def _in_transaction(conn: psycopg.Connection[Any], work: Callable[[], T]) -> T:
    return in_transaction(conn, work, EngineError, _refusal)


# ---------------------------------------------------------------------------------------------
# Merge and anonymise
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanRow:
    """One table a merge or anonymisation changes: how many rows, and how."""

    table: str
    rows: int
    detail: str = ""


@dataclass
class Report:
    """What a merge or anonymisation did (or, for a dry run, would do)."""

    outcome: str
    reason: str
    counts: dict[str, int] = field(default_factory=dict)
    plan: list[PlanRow] = field(default_factory=list)
    dry_run: bool = False


def merge(
    conn: psycopg.Connection[Any], old: str, survivor: str, *, actor: str, dry_run: bool = False
) -> Report:
    """Merge customer number `old` into `survivor` (one transaction), or plan it."""
    params = {"old": old, "survivor": survivor, "actor": actor}

    if dry_run:

        def check() -> Report:
            refused = queries.one(conn, "merge_refusal", **params)
            if refused is not None and refused[0] is not None:
                raise _refusal(refused[0], refused[1])
            rows = queries.all(conn, "merge_plan", **params)
            steps = [
                PlanRow(table, int(count), _conflict_detail(int(conflicts), rule))
                for table, count, conflicts, rule in rows
            ]
            unresolved = [table for table, _, conflicts, rule in rows if conflicts and rule is None]
            counts = {p.table: p.rows for p in steps}
            if unresolved:
                return Report(
                    "refused",
                    "unresolved conflicts in " + ", ".join(unresolved),
                    counts,
                    steps,
                    dry_run=True,
                )
            reason = "merged" if steps else "redirect_only"
            return Report("would apply", reason, counts, steps, dry_run=True)

        return _in_transaction(conn, check)

    def run() -> Report:
        row = queries.one(conn, "merge", **params)
        assert row is not None
        return _report(row[0])

    return _in_transaction(conn, run)


def merge_several(
    conn: psycopg.Connection[Any],
    olds: list[str],
    survivor: str,
    *,
    actor: str,
    dry_run: bool = False,
) -> Report:
    """Merge the customer numbers `olds` into `survivor` in one transaction (an N-way merge:
    any impossible pair refuses it all). Its dry run carries the merge out and rolls it back,
    so it counts what each merge changes after the ones before it."""
    if len(olds) == 1:
        return merge(conn, olds[0], survivor, actor=actor, dry_run=dry_run)

    def run() -> Report:
        with conn.transaction(force_rollback=dry_run):
            row = queries.one(conn, "merge_several", olds=olds, survivor=survivor, actor=actor)
        assert row is not None
        counts = {str(k): int(v) for k, v in (row[0].get("counts") or {}).items()}
        return Report(
            "would apply" if dry_run else "applied",
            f"{int(row[0]['merged'])} customers merged",
            counts,
            [PlanRow(table, rows) for table, rows in counts.items()],
            dry_run=dry_run,
        )

    return _in_transaction(conn, run)


def _conflict_detail(conflicts: int, rule: str | None) -> str:
    if conflicts == 0:
        return ""
    if rule is None:
        return f"{conflicts} conflict(s), no merge rule: the merge would be refused"
    return f"{conflicts} conflict(s) resolved by rule {rule}"


def anonymise(
    conn: psycopg.Connection[Any],
    number: str,
    *,
    reason_code: str,
    actor: str,
    dry_run: bool = False,
) -> Report:
    """Anonymise the local customer `number` and queue the outbound event, or plan it."""
    params = {"number": number, "reason_code": reason_code, "actor": actor}

    if dry_run:

        def check() -> Report:
            refused = queries.one(conn, "anonymise_refusal", **params)
            if refused is not None and refused[0] is not None:
                raise _refusal(refused[0], refused[1])
            steps = [
                PlanRow(table, int(count), action)
                for table, action, count in queries.all(conn, "anonymise_plan", **params)
            ]
            return Report(
                "would apply", "anonymised", {p.table: p.rows for p in steps}, steps, dry_run=True
            )

        return _in_transaction(conn, check)

    def run() -> Report:
        row = queries.one(conn, "anonymise", **params)
        assert row is not None
        return _report(row[0])

    return _in_transaction(conn, run)


def _report(result: dict[str, Any]) -> Report:
    counts = {str(k): int(v) for k, v in (result.get("counts") or {}).items()}
    return Report(
        outcome=str(result.get("outcome")),
        reason=str(result.get("reason") or ""),
        counts=counts,
        plan=[PlanRow(table, rows) for table, rows in counts.items()],
    )


# ---------------------------------------------------------------------------------------------
# Dead letters
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeadLetter:
    """A staged event that could not be applied. No payload: it may hold personal data."""

    inbox_id: int
    event_id: str | None
    event_type: str | None
    customer_number: str | None
    version: int | None
    reason: str
    attempts: int
    created_at: datetime
    last_attempt_at: datetime


def _dead_letter(row: tuple[Any, ...]) -> DeadLetter:
    inbox_id, event_id, event_type, number, version, reason, attempts, created, last = row

    def well_formed(value: Any, grammatical: Callable[[object], bool]) -> str | None:
        # a malformed record's fields may be anything, personal data included: show none
        return value if grammatical(value) else None

    return DeadLetter(
        inbox_id=int(inbox_id),
        event_id=well_formed(event_id, grammar.is_event_id),
        event_type=well_formed(event_type, grammar.is_identifier),
        customer_number=well_formed(number, grammar.is_customer_number),
        version=version,
        reason=str(reason),
        attempts=int(attempts),
        created_at=created,
        last_attempt_at=last,
    )


def dead_letters(conn: psycopg.Connection[Any], *, limit: int = 100) -> list[DeadLetter]:
    """The oldest dead letters first."""
    rows = _in_transaction(conn, lambda: queries.all(conn, "dead_letter_list", limit=limit))
    return [_dead_letter(row) for row in rows]


def dead_letter(conn: psycopg.Connection[Any], inbox_id: int) -> DeadLetter:
    row = _in_transaction(
        conn,
        lambda: queries.one(conn, "dead_letter_show", inbox_id=inbox_id),
    )
    if row is None:
        raise DeadLetterNotFound(f"inbox row {inbox_id} has no dead letter", sqlstate="SY030")
    return _dead_letter(row)


def retry_dead_letter(conn: psycopg.Connection[Any], inbox_id: int) -> str:
    """Apply the event again: 'applied' or 'skipped' (dead letter gone) or 'dead_letter'."""

    def run() -> str:
        row = queries.one(conn, "dead_letter_retry", inbox_id=inbox_id)
        assert row is not None
        return str(row[0])

    return _in_transaction(conn, run)


def discard_dead_letter(conn: psycopg.Connection[Any], inbox_id: int, *, actor: str) -> None:
    """Give up on the event: the dead letter goes, an audit row records who discarded it."""
    _in_transaction(
        conn,
        lambda: queries.run(conn, "dead_letter_discard", inbox_id=inbox_id, actor=actor),
    )


# ---------------------------------------------------------------------------------------------
# Coverage
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoverageDefect:
    table: str  # as PostgreSQL quotes it: "web.shop".customer, sales."Review", public.address
    column: str | None  # the catalog's name
    defect: str
    # unclassified, unclassified_further, strategy, merge_rule, unindexed, declared_reference,
    # privilege, look_alike, other_key, trigger, function or mapping
    # (docs/merge-and-anonymise.md)
    kind: str
    place: str  # table.column, the column quoted too; table.* for the whole table


def coverage_defects(conn: psycopg.Connection[Any]) -> list[CoverageDefect]:
    """Unclassified columns and other registry defects; empty when merge and anonymise are
    safe for every customer-linked table."""
    rows = _in_transaction(conn, lambda: queries.all(conn, "coverage_defects"))
    return [CoverageDefect(*row) for row in rows]
