"""The controller as `syncctl pull` runs it, in a process of its own so its peak memory is
its own: `python -m bench.pull_process DSN URL TOKEN PAGE_SIZE` pulls the feed until caught up
(syncctl.controller.pull with a TritonXClient) and prints one JSON line: events, seconds,
outcome counts, and resident memory after imports and at its peak.

Peak RSS is the kernel's high-water mark of this process's address space (VmHWM in
/proc/self/status). Not getrusage(): on Linux ru_maxrss survives execve, so a child started by
a parent holding the benchmark's data would report the parent's size at fork time."""

from __future__ import annotations

import json
import resource
import sys
import time


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


def main(argv: list[str]) -> int:
    dsn, url, token, page_size = argv[0], argv[1], argv[2], int(argv[3])
    from syncctl.controller import pull
    from syncctl.database import connect
    from syncctl.tritonx import TritonXClient

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
