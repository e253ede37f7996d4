"""The test schemas the benchmark runs on: the reference shop (`shop`, made by
syncctl.reference_shop, mapped by syncctl/mappings/reference.toml) and the boutique
(tests/shops/boutique.sql, mapped by tests/shops/boutique.toml), a shop that differs from it on
purpose (uuid key, one full-name column, the address in a table of its own, the tritonX number in
a column it already had, the version in sync.customer_link). The boutique's DDL and mapping are
read from those files, not copied: they are the suite's, and the benchmark installs them as a DBA
would — the DDL, the GRANTs `sync.mapping_defects` names for the owner role, then
`sync.install_mapping`.

Each shop names its baselines' statements in bench/statements.sql: the reference's blocks by
their plain name, the boutique's with the prefix `boutique_`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.statements import statements
from syncctl import mapping, mapping_database, reference_shop

REPOSITORY = Path(__file__).resolve().parents[1]
# at most this many rounds of "run the check, grant what it names": a grant on a schema can
# only reveal the table grants behind it, so two rounds suffice today
_GRANT_ROUNDS = 4


@dataclass(frozen=True)
class Shop:
    """A schema the feed writes to. `ddl` and `mapping` are None for the reference shop, which
    the migrations create and map."""

    name: str
    ddl: Path | None = None
    mapping: Path | None = None

    def statement(self, name: str) -> str:
        """The shop's own version of a named baseline statement."""
        return statements()[name if self.ddl is None else f"{self.name}_{name}"]

    def install(self, dsn: str) -> None:
        """Create the shop's tables in a migrated database, grant the owner role what the
        mapping check asks for, and install the mapping as the active version."""
        if self.ddl is None or self.mapping is None:
            reference_shop.install(dsn)
            return
        loaded = mapping.load(self.mapping, str(self.mapping.relative_to(REPOSITORY)))
        with psycopg.connect(dsn) as conn:
            conn.execute(self.ddl.read_bytes())
            conn.commit()
            _grant_what_the_check_asks(conn, loaded)
            mapping_database.install(conn, loaded, loaded.file)


def _grant_what_the_check_asks(conn: psycopg.Connection[Any], loaded: mapping.Mapping) -> None:
    for _ in range(_GRANT_ROUNDS):
        defects = [d for d in mapping_database.defects(conn, loaded) if not d.warning]
        grants = [d.grant for d in defects if d.grant is not None]
        if len(grants) < len(defects):
            problems = "; ".join(f"{d.path}: {d.problem}" for d in defects if d.grant is None)
            raise RuntimeError(f"{loaded.file} does not fit the bench database: {problems}")
        if not grants:
            return
        for grant in dict.fromkeys(grants):
            conn.execute(grant.encode())
        conn.commit()
    raise RuntimeError(f"{loaded.file}: the check still asks for grants after {_GRANT_ROUNDS}")


REFERENCE = Shop("reference")
BOUTIQUE = Shop(
    "boutique",
    REPOSITORY / "tests" / "shops" / "boutique.sql",
    REPOSITORY / "tests" / "shops" / "boutique.toml",
)
SHOPS = {shop.name: shop for shop in (REFERENCE, BOUTIQUE)}
