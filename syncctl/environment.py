"""What a command runs against. With no DSN (no --dsn, DATABASE_URL or PG* variables) a
throwaway embedded PostgreSQL is started and migrated, with the reference shop (schema shop and
its mapping: syncctl.reference_shop) as the shop's tables; with no tritonX URL the bundled
simulator is started on loopback, but only where its invented customers can do no harm: on
the embedded database, or when the operator asked for it (`--simulator`). A configured
database must already be at the head revision (DBAs run `syncctl db upgrade`), unless the
command migrates it itself, and hold an installed mapping (`syncctl mapping install`). A
tritonX URL and token are checked here, before any request."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from syncctl import queries, reference_shop, schema
from syncctl.database import configured_dsn, connect
from syncctl.embedded import EmbeddedPostgres
from syncctl.errors import MappingNotInstalled, SettingMissing
from syncctl.simulator.server import SimulatorServer
from syncctl.tritonx import TritonXClient

log = logging.getLogger("syncctl")

NO_TRITONX_URL = (
    "no tritonX URL: set --tritonx-url or TRITONX_URL (and --tritonx-token or TRITONX_TOKEN); "
    "the bundled simulator starts by itself only on the throwaway embedded database, "
    "add --simulator to load its invented customers into this database"
)


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
            reference_shop.install(server.dsn)
            yield Database(server.dsn, embedded=True)
        return
    if migrate:
        schema.upgrade(dsn)
    else:
        schema.require_current(dsn)
    _require_mapping(dsn)
    yield Database(dsn, embedded=False)


def _require_mapping(dsn: str) -> None:
    """Refuse a database without an active mapping: the feed would have no customer table to
    write, and every event would become a dead letter."""
    with connect(dsn) as conn:
        compiled = queries.one(conn, "mapping_compiled")
    if not (compiled and compiled[0]):
        raise MappingNotInstalled(
            "no mapping is installed in this database: the feed has no customer table to write."
            " Install the shop's: syncctl mapping install FILE (docs/own-database.md); for the"
            " demo's reference shop: syncctl db reference-shop"
        )


def tritonx_client(url: str, token: str | None) -> TritonXClient:
    """A client for the configured tritonX, refused at once (never retried) when the URL
    has no http(s) scheme or host, or when there is no token."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise SettingMissing(f"the tritonX URL {url!r} is not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise SettingMissing(
            f"the tritonX URL {url!r} needs a scheme and a host, "
            "such as https://tritonx.example.com"
        )
    if not token:
        raise SettingMissing("no tritonX token: set --tritonx-token or TRITONX_TOKEN")
    return TritonXClient(url, token)


@dataclass(frozen=True)
class TritonX:
    client: TritonXClient
    simulator: SimulatorServer | None


@contextmanager
def tritonx(
    url: str | None,
    token: str | None,
    *,
    simulator_allowed: bool,
    customers: int = 10_000,
    seed: int = 1,
) -> Iterator[TritonX]:
    """The configured tritonX, or the bundled simulator when there is no URL and
    `simulator_allowed` (the embedded database, or --simulator); else SettingMissing."""
    if url:
        with tritonx_client(url, token) as client:
            yield TritonX(client, None)
        return
    if not simulator_allowed:
        raise SettingMissing(NO_TRITONX_URL)
    with SimulatorServer(customers=customers, seed=seed) as simulator:
        log.info("no tritonX URL configured: started the simulator at %s", simulator.url)
        with TritonXClient(simulator.url, simulator.token) as client:
            yield TritonX(client, simulator)
