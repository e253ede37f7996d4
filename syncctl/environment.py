"""What a command runs against. With no DSN (no --dsn, DATABASE_URL or PG* variables) a
throwaway embedded PostgreSQL is started and migrated; with no tritonX URL the bundled
simulator is started on loopback. A configured database must already be at the head
revision (DBAs run `syncctl db upgrade`), unless the command migrates it itself."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from syncctl import schema
from syncctl.database import configured_dsn
from syncctl.embedded import EmbeddedPostgres
from syncctl.simulator.server import SimulatorServer
from syncctl.tritonx import TritonXClient

log = logging.getLogger("syncctl")


@dataclass(frozen=True)
class Database:
    dsn: str
    embedded: bool


@contextmanager
def database(dsn_option: str | None, *, migrate: bool = False) -> Iterator[Database]:
    dsn = configured_dsn(dsn_option)
    if dsn is None:
        with EmbeddedPostgres() as server:
            log.info("no database configured: started a throwaway embedded PostgreSQL")
            schema.upgrade(server.dsn)
            yield Database(server.dsn, embedded=True)
        return
    if migrate:
        schema.upgrade(dsn)
    else:
        schema.require_current(dsn)
    yield Database(dsn, embedded=False)


@dataclass(frozen=True)
class TritonX:
    client: TritonXClient
    simulator: SimulatorServer | None


@contextmanager
def tritonx(
    url: str | None, token: str | None, *, customers: int = 10_000, seed: int = 1
) -> Iterator[TritonX]:
    if url:
        client = TritonXClient(url, token or "")
        try:
            yield TritonX(client, None)
        finally:
            client.close()
        return
    with SimulatorServer(customers=customers, seed=seed) as simulator:
        log.info("no tritonX URL configured: started the simulator at %s", simulator.url)
        client = TritonXClient(simulator.url, simulator.token)
        try:
            yield TritonX(client, simulator)
        finally:
            client.close()
