"""Link report and repair: what keeps people from logging in, counted, and fixed where the fix
is unambiguous (adopt the only unlinked local customer with a linked customer's tritonX e-mail;
move a local customer still linked to a merged-away number to its survivor); an ambiguous one
(several local customers with that e-mail) is recorded as a link conflict.

Repair commits every fix on its own (its audit row carries its own time): an interrupted
repair keeps what it did, and running it again plans only what is left."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg

from syncctl import queries
from syncctl.progress import ProgressCallback
from syncctl.tritonx import TritonXClient

log = logging.getLogger("syncctl.links")


class Anomaly(NamedTuple):
    """A kind of link anomaly and how many customers have it."""

    anomaly: str
    customers: int


class Adoption(NamedTuple):
    """A local customer to adopt into the linked customer of tritonX number `number`. The keys
    as sync.shown_key shows them: an integer or uuid key as text, None for a text key (it may
    be an e-mail address: the controller never reads one); adopted by number."""

    local_key: str | None
    linked_key: str | None
    number: str


class Relink(NamedTuple):
    """A link to the merged-away number `old`, to move to its survivor."""

    old: str
    survivor: str


@dataclass
class RepairPlan:
    adopt: list[Adoption] = field(default_factory=list)
    merge: list[Relink] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.adopt) + len(self.merge)


@dataclass(frozen=True)
class RepairOutcome:
    """changed: fixes applied; attempted: fixes tried (a skipped one counts here only);
    planned: fixes in the plan. attempted < planned when the repair was stopped."""

    changed: int
    attempted: int
    planned: int

    @property
    def complete(self) -> bool:
        return self.attempted == self.planned


def anomalies(conn: psycopg.Connection[Any]) -> list[Anomaly]:
    return [Anomaly(str(a), int(n)) for a, n in queries.all(conn, "link_anomalies")]


def shown(key: str | None) -> str:
    """A key sync.shown_key showed, for the operator's output: "(text key)" for a text key."""
    return "(text key)" if key is None else key


def repair_plan(conn: psycopg.Connection[Any]) -> RepairPlan:
    """What repair would do now; reads only, and ends its read transaction."""
    plan = RepairPlan(
        adopt=[
            Adoption(None if a is None else str(a), None if b is None else str(b), str(n))
            for a, b, n in queries.all(conn, "adoptable")
        ],
        merge=[Relink(str(o), str(s)) for o, s in queries.all(conn, "misdirected_links")],
    )
    conn.commit()
    return plan


def repair(
    conn: psycopg.Connection[Any],
    plan: RepairPlan,
    actor: str,
    *,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> RepairOutcome:
    """Carry out the plan, one committed, audited transaction a fix, until done or `stop` is
    set (the fix in hand is finished). A link whose survivor was erased in the meantime is
    skipped, and audited as such. Work of the caller still uncommitted is committed first.
    Linked customers whose tritonX e-mail several local customers have are recorded as link
    conflicts first (one open conflict a customer)."""
    conn.commit()
    with conn.transaction():
        queries.run(conn, "record_adoption_conflicts")
    total = len(plan)
    changed = attempted = 0
    fixes: list[tuple[str, dict[str, Any]]] = [
        ("adopt", {"number": number, "actor": actor}) for _local, _linked, number in plan.adopt
    ] + [("repair_redirected_link", {"old": old, "actor": actor}) for old, _ in plan.merge]
    if on_progress is not None:
        on_progress(0, total)
    for query, params in fixes:
        if stop is not None and stop.is_set():
            break
        with conn.transaction():
            row = queries.one(conn, query, **params)
        attempted += 1
        if query == "adopt" or (row is not None and row[0] == "applied"):
            changed += 1
        else:
            log.warning("link of %s not repaired (the audit says why)", params["old"])
        if on_progress is not None:
            on_progress(attempted, total)
    return RepairOutcome(changed, attempted, total)


def unknown_to_tritonx(
    conn: psycopg.Connection[Any], client: TritonXClient, sample: int
) -> Anomaly:
    """Of a random sample of linked numbers, those tritonX answers 404 for."""
    numbers = [str(n) for (n,) in queries.all(conn, "sample_linked_numbers", limit=sample)]
    conn.commit()
    unknown = sum(1 for n in numbers if client.fetch_customer(n).status == "gone")
    return Anomaly(f"linked numbers unknown to tritonX (of {len(numbers)} asked)", unknown)
