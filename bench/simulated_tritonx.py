"""The tritonX simulator in a process of its own (`python -m bench.simulated_tritonx N SEED
TOKEN`): encodes the population's events, prints its URL, serves until stdin closes. Its own
process, so what the simulator does does not share a GIL with the controller being measured;
on loopback, so no network cost is hidden or added. Pages are served from the pre-encoded
events (the same bytes as encoding them per request), so the simulator takes as little of the
machine's two cores as a feed can: a real tritonX does its work on its own machine."""

from __future__ import annotations

import sys

from syncctl.simulator.server import SimulatorServer


def main(argv: list[str]) -> int:
    customers, seed, token = int(argv[0]), int(argv[1]), argv[2]
    server = SimulatorServer(customers=customers, seed=seed, token=token)
    server.state.preencode()
    with server:
        print(server.url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
