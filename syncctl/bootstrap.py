"""First-time onboarding of a shop whose database already holds customers: import every
tritonX customer through the feed (resumable: the cursor is the progress), then reconcile the
shop's unlinked local customers with the imported ones by normalised email, each adoption
committed on its own. Stopped at any point (`stop`), it keeps what it did; running it again
continues where it stopped and adopts nothing twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from syncctl import controller, links, queries
from syncctl.controller import PullReport
from syncctl.progress import ProgressCallback
from syncctl.tritonx import TritonXClient


@dataclass
class BootstrapReport:
    imported: PullReport
    linked: int
    adopted: int
    unlinked_left: int
    conflicts: int
    # False when stopped before the import caught up or before every adoption was made
    complete: bool = True


def bootstrap(
    conn: psycopg.Connection[Any],
    client: TritonXClient,
    *,
    actor: str,
    page_size: int = 5000,
    stop: threading.Event | None = None,
    on_page: Callable[[PullReport], None] | None = None,
    on_adoption: ProgressCallback | None = None,
    keep_payloads: bool = True,
) -> BootstrapReport:
    imported = controller.pull(
        conn,
        client,
        page_size=page_size,
        stop=stop,
        on_page=on_page,
        keep_payloads=keep_payloads,
    )
    plan = links.repair_plan(conn)
    adopted = links.repair(
        conn, links.RepairPlan(adopt=plan.adopt), actor, stop=stop, on_progress=on_adoption
    )
    counts = queries.one(conn, "bootstrap_counts")
    conn.commit()
    assert counts is not None
    return BootstrapReport(
        imported,
        int(counts[0]),
        adopted.changed,
        int(counts[1]),
        int(counts[2]),
        complete=adopted.complete and imported.caught_up,
    )
