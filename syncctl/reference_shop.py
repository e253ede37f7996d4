"""The reference shop: the demo's and the tests' customer tables (schema `shop`), bound to the
engine by its mapping (syncctl/mappings/reference.toml) like any shop's own tables. It is not part
of the engine: `syncctl db upgrade` installs the engine alone, so a shop's own database gets no
`shop` schema; the embedded demo database and `syncctl db reference-shop` add it."""

from __future__ import annotations

import psycopg

from syncctl import installation, mapping, mapping_database, queries, resources
from syncctl.schema import run_sql_files

# where the mapping was installed from, as sync.mapping_version.source records it
SOURCE = "syncctl/mappings/reference.toml"


def install(dsn: str) -> int:
    """Create the reference shop in a database at the newest engine revision (re-runnable: what
    exists stays, with its rows) and install its mapping as the active version (nothing changes
    when it is active already). Returns the mapping's version."""
    with psycopg.connect(dsn, autocommit=False) as conn:
        installation.prepare(conn)
        run_sql_files(conn, resources.reference_shop_files())
        conn.commit()
        version = mapping_database.install(conn, load(), SOURCE)
        # a guard names a customer-linked table, which only the installed mapping makes one
        queries.run(conn, "reference_shop_guard")
        conn.commit()
        return version


def load() -> mapping.Mapping:
    """The reference shop's mapping."""
    return mapping.load(mapping.REFERENCE, SOURCE)
