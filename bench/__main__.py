"""`python -m bench --size 10k|100k|1M [--size ...] [--dsn DSN] [--scenario NAME ...]
[--shop reference|boutique ...]`: builds the data with a fixed seed, runs the scenarios on the
embedded default PostgreSQL (or in databases it creates and drops on the server of DSN), on each
test schema one after the other (default: both; the boutique runs apply, pull, scaling, memory
and explain, the other scenarios run on the reference schema only) and prints the table of
results."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace

from bench import apply, databases, dataset
from bench.report import Direction, Goal, Row, parse_size, render, size_label
from bench.shops import REFERENCE, SHOPS

SCENARIOS = (
    "apply",
    "pull",
    "scaling",
    "memory",
    "explain",
    "retention",
    "erasure",
    "payloads",
    "mixed",
    "merge-large",
)
# what runs on every test schema; the rest only on the reference schema
EVERY_SHOP = ("apply", "pull", "scaling", "memory", "explain")
GOAL_SCALING = Goal(Direction.AT_MOST, 2.0)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _machine(server: databases.Server) -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    settings = server.settings(["shared_buffers", "max_wal_size", "synchronous_commit", "jit"])
    return (
        f"machine: {os.cpu_count()} cores, {memory:.1f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}; PostgreSQL {server.version()} "
        f"({server.description}); " + ", ".join(f"{k}={v}" for k, v in settings.items())
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--size",
        action="append",
        type=parse_size,
        help="events per run: 10k, 100k, 1M (repeatable; default 10k)",
    )
    parser.add_argument(
        "--dsn",
        help="a server to use instead of the embedded default "
        "(a database is created there and dropped again)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="run only these (repeatable; default: all; "
        f"on the boutique schema only {', '.join(EVERY_SHOP)})",
    )
    parser.add_argument(
        "--shop",
        action="append",
        choices=list(SHOPS),
        help="the test schema: reference (shop.customer) or boutique (tests/shops/boutique.sql, "
        "crm.customer); repeatable; default: both, one after the other in the same run",
    )
    args = parser.parse_args(argv)
    sizes: list[int] = sorted(set(args.size or [10_000]))
    wanted: list[str] = args.scenario or list(SCENARIOS)
    shops = [SHOPS[name] for name in dict.fromkeys(args.shop or list(SHOPS))]
    rows: list[Row] = []
    extra: list[str] = []
    costs: dict[str, dict[int, float]] = {shop.name: {} for shop in shops}
    with databases.server(args.dsn) as base, ExitStack() as stack:
        machine = _machine(base)
        _log(machine)
        servers = [stack.enter_context(base.for_shop(shop)) for shop in shops]
        for size in sizes:
            started = time.perf_counter()
            data = dataset.build(size)
            _log(
                f"data {size_label(size)}: {2 * size} records from {data.snapshots_from} "
                f"in {time.perf_counter() - started:.1f}s"
            )
            for server in servers:
                found = _run_shop(server, data, wanted, costs[server.shop.name])
                rows.extend(replace(row, shop=server.shop.name) for row in found[0])
                extra.extend(found[1])
    if "scaling" in wanted:
        for name, by_size in costs.items():
            if len(by_size) > 1:
                rows.append(_scaling(by_size, name))
    print(machine)
    print(f"command: python -m bench {' '.join(sys.argv[1:] if argv is None else argv)}")
    print()
    print(render(rows))
    for block in extra:
        print()
        print(block)
    return 0


def _run_shop(
    server: databases.Server, data: dataset.Dataset, wanted: list[str], costs: dict[int, float]
) -> tuple[list[Row], list[str]]:
    """The wanted scenarios on one test schema; the apply cost per event into `costs`."""
    if server.shop != REFERENCE:
        skipped = [name for name in wanted if name not in EVERY_SHOP]
        if skipped:
            _log(f"{', '.join(skipped)}: reference schema only, not run on {server.shop.name}")
        wanted = [name for name in wanted if name in EVERY_SHOP]
    rows: list[Row] = []
    extra: list[str] = []
    if "apply" in wanted or "scaling" in wanted:
        result = apply.run(server, data, _log)
        costs[data.size] = result.cost_per_event_us
        if "apply" in wanted:
            rows.extend(result.rows)
    for _name, scenario in _optional_scenarios(wanted):
        found = scenario(server, data, _log)
        rows.extend(found[0])
        extra.extend(found[1])
    return rows, extra


def _scaling(costs: dict[int, float], shop: str) -> Row:
    small, big = min(costs), max(costs)
    return Row(
        "cost per event (apply new, largest pages)",
        size_label(big),
        costs[big],
        "us/ev",
        f"at {size_label(small)}",
        costs[small],
        GOAL_SCALING,
        shop=shop,
    )


Scenario = Callable[
    [databases.Server, dataset.Dataset, Callable[[str], None]], tuple[list[Row], list[str]]
]


def _optional_scenarios(wanted: list[str]) -> list[tuple[str, Scenario]]:
    found: list[tuple[str, Scenario]] = []
    if "pull" in wanted or "memory" in wanted:
        from bench import pull

        if "pull" in wanted:
            found.append(("pull", pull.run))
        if "memory" in wanted:
            found.append(("memory", pull.memory))
    if "explain" in wanted:
        from bench import explain

        found.append(("explain", explain.run))
    if "retention" in wanted:
        from bench import retention

        found.append(("retention", retention.run))
    if "erasure" in wanted:
        from bench import erasure

        found.append(("erasure", erasure.run))
    if "payloads" in wanted:
        from bench import payloads

        found.append(("payloads", payloads.run))
    if "mixed" in wanted:
        from bench import mixed

        found.append(("mixed", mixed.run))
    if "merge-large" in wanted:
        from bench import merge_large

        found.append(("merge-large", merge_large.run))
    return found


if __name__ == "__main__":
    sys.exit(main())
