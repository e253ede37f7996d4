"""Link report and repair: what keeps people from logging in, counted, and fixed where the fix
is unambiguous (adopt the only unlinked local customer with a linked customer's tritonX e-mail;
move a local customer still linked to a merged-away number to its survivor); an ambiguous one
(several local customers with that e-mail) is recorded as a link conflict."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import psycopg

from syncctl.database import queries
from syncctl.tritonx import TritonXClient

log = logging.getLogger("syncctl.links")


@dataclass
class RepairPlan:
    adopt: list[tuple[int, int, str]] = field(default_factory=list)
    merge: list[tuple[str, str]] = field(default_factory=list)


def anomalies(conn: psycopg.Connection[Any]) -> list[tuple[str, int]]:
    return [(str(a), int(n)) for a, n in conn.execute(queries()["link_anomalies"])]


def repair_plan(conn: psycopg.Connection[Any]) -> RepairPlan:
    q = queries()
    return RepairPlan(
        adopt=[(int(a), int(b), str(n)) for a, b, n in conn.execute(q["adoptable"])],
        merge=[(str(o), str(s)) for o, s in conn.execute(q["misdirected_links"])],
    )


def repair(conn: psycopg.Connection[Any], plan: RepairPlan, actor: str) -> int:
    """Carry out the plan, one audited transaction a fix; returns how many were made (a link
    whose survivor was erased in the meantime is skipped, and audited as such). Linked
    customers whose tritonX e-mail several local customers have are recorded as link conflicts
    first (one open conflict a customer)."""
    q = queries()
    done = 0
    with conn.transaction():
        conn.execute(q["record_adoption_conflicts"])
    for local_id, linked_id, _number in plan.adopt:
        with conn.transaction():
            conn.execute(q["adopt"], {"local_id": local_id, "linked_id": linked_id, "actor": actor})
        done += 1
    for old, _survivor in plan.merge:
        with conn.transaction():
            row = conn.execute(q["repair_redirected_link"], {"old": old, "actor": actor}).fetchone()
        if row is not None and row[0] == "applied":
            done += 1
        else:
            log.warning("link of %s not repaired (the audit says why)", old)
    return done


def unknown_to_tritonx(
    conn: psycopg.Connection[Any], client: TritonXClient, sample: int
) -> tuple[int, int]:
    """(asked, unknown): a random sample of linked numbers that tritonX answers 404 for."""
    numbers = [
        str(n) for (n,) in conn.execute(queries()["sample_linked_numbers"], {"limit": sample})
    ]
    conn.commit()
    unknown = sum(1 for n in numbers if client.fetch_customer(n).status == "gone")
    return len(numbers), unknown
