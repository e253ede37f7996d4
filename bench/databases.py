"""Where the benchmark runs: the embedded default (a throwaway PostgreSQL) or the server of a
given DSN. Either way the schema is migrated once per test schema (bench.shops) into a template
database of our own, the boutique's tables and mapping installed there, and every measurement gets
a fresh clone of it (CREATE DATABASE ... TEMPLATE), so subject and baselines start from the same
empty state on the same tables. Every database created here is dropped again."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench.shops import REFERENCE, Shop
from syncctl import schema
from syncctl.embedded import EmbeddedPostgres


class Server:
    """A PostgreSQL server on which the benchmark may create and drop databases; `clone` gives
    databases holding the engine and `shop`'s tables, mapped."""

    def __init__(self, admin_dsn: str, description: str, shop: Shop = REFERENCE) -> None:
        self.admin_dsn = admin_dsn
        self.description = description
        self.shop = shop
        self.template = f"syncctl_bench_{os.getpid()}_{shop.name}_template"
        self._clones = itertools.count(1)

    def dsn_for(self, dbname: str) -> str:
        return make_conninfo(self.admin_dsn, dbname=dbname)

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_dsn, autocommit=True)

    def version(self) -> str:
        with self.admin() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    def settings(self, names: list[str]) -> dict[str, str]:
        with self.admin() as conn:
            return {
                name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in names
            }

    def create_template(self) -> None:
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.template)))
        schema.upgrade(self.dsn_for(self.template))
        self.shop.install(self.dsn_for(self.template))

    def drop_template(self) -> None:
        self._drop(self.template)

    @contextmanager
    def for_shop(self, shop: Shop) -> Iterator[Server]:
        """The same server, its clones holding `shop` (a template of their own while the block
        runs)."""
        if shop == self.shop:
            yield self
            return
        found = Server(self.admin_dsn, self.description, shop)
        found.create_template()
        try:
            yield found
        finally:
            found.drop_template()

    def _drop(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    @contextmanager
    def clone(self) -> Iterator[str]:
        """A fresh migrated database for one measurement; its DSN."""
        name = f"syncctl_bench_{os.getpid()}_{self.shop.name}_{next(self._clones)}"
        with self.admin() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(self.template)
                )
            )
            # what syncctl's own sessions set (syncctl.database): every subject and baseline
            # runs without JIT, whose compile time dwarfs a page's statements
            conn.execute(sql.SQL("ALTER DATABASE {} SET jit = off").format(sql.Identifier(name)))
        try:
            yield self.dsn_for(name)
        finally:
            self._drop(name)


@contextmanager
def server(dsn: str | None) -> Iterator[Server]:
    """The embedded default when dsn is None, else the server `dsn` points at."""
    if dsn is None:
        with EmbeddedPostgres() as embedded:
            found = Server(embedded.dsn, "embedded (syncctl.embedded.EmbeddedPostgres)")
            found.create_template()
            try:
                yield found
            finally:
                found.drop_template()
        return
    host = conninfo_to_dict(dsn).get("host") or "libpq default"
    found = Server(dsn, f"given DSN (host {host})")
    found.create_template()
    try:
        yield found
    finally:
        found.drop_template()
