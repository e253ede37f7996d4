"""The controller as `syncctl pull` runs it, in a process of its own so its peak memory is
its own: `python -m bench.pull_process DSN URL TOKEN PAGE_SIZE [land-only]` pulls the feed until
caught up (syncctl.controller.pull with a TritonXClient) and prints one JSON line: events,
seconds, outcome counts, and resident memory after imports and at its peak.

`land-only`: the same pipeline (the worker fetching, decoding and typing page n+1 while page n
is written), but each page is binary-COPYed into a trigger-less copy of the inbox
(public.staged_inbox, which must exist) instead of being staged and applied: what the pull
would reach if the apply cost nothing.

Peak RSS is the kernel's high-water mark of this process's address space (VmHWM in
/proc/self/status). Not getrusage(): on Linux ru_maxrss survives execve, so a child started by
a parent holding the benchmark's data would report the parent's size at fork time."""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any


def _rss_mib() -> float:
    """Peak resident set size of this process, MiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best effort


def _land_only() -> None:
    """Replace the controller's staging with a bare COPY of the page's rows (no cursor, no
    apply)."""
    import psycopg

    from bench.statements import statements
    from syncctl import controller
    from syncctl.loader import INBOX_TYPES, PageOutcome

    def land(conn: psycopg.Connection[Any], *page: Any, **_: Any) -> PageOutcome:
        rows: list[tuple[Any, ...]] = page[-1]  # stage_page's arguments; the worker's rows last
        with conn.transaction(), conn.cursor().copy(statements()["staging_copy"]) as copy:
            copy.set_types(INBOX_TYPES)
            for row in rows:
                copy.write_row(row)
        return PageOutcome(events=len(rows))

    setattr(controller, "stage_page", land)  # noqa: B010 (the name the Feed calls)


def main(argv: list[str]) -> int:
    dsn, url, token, page_size = argv[0], argv[1], argv[2], int(argv[3])
    from syncctl.controller import pull
    from syncctl.database import connect
    from syncctl.tritonx import TritonXClient

    if argv[4:] == ["land-only"]:
        _land_only()
    idle = _rss_mib()
    client = TritonXClient(url, token)
    with connect(dsn) as conn:
        started = time.perf_counter()
        report = pull(conn, client, page_size=page_size)
        seconds = time.perf_counter() - started
    client.close()
    print(
        json.dumps(
            {
                "events": report.events,
                "pages": report.pages,
                "seconds": seconds,
                "states": dict(report.states),
                "caught_up": report.caught_up,
                "rss_idle_mib": idle,
                "rss_peak_mib": _rss_mib(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
