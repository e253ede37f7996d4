"""Builds syncctl's schema from the migrations in the given database, with the reference shop and
its mapping (so the code generated from a mapping is checked too), and runs plpgsql_check on
every PL/pgSQL function of its schemas (trigger functions against their table and transition
tables), then the security rules: every function owned by the owner role and pinned to
`search_path = pg_catalog, pg_temp`, the shop's functions SECURITY DEFINER in their source
(sync.function_defects), and no ALTER FUNCTION that switches SECURITY on in sql/ or migrations/.
Prints every finding; exits 1 when any is an error."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import psycopg

from syncctl import reference_shop, schema

CHECK = """
SELECT p.oid::regprocedure::text AS function, c.level, c.message, c.lineno, c.statement
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
LEFT JOIN LATERAL (
    SELECT t.tgrelid, t.tgnewtable, t.tgoldtable FROM pg_trigger t
    WHERE t.tgfoid = p.oid AND NOT t.tgisinternal LIMIT 1) AS tg ON true
CROSS JOIN LATERAL plpgsql_check_function_tb(
    p.oid,
    relid => coalesce(tg.tgrelid, 0),
    oldtable => tg.tgoldtable,
    newtable => tg.tgnewtable,
    security_warnings => true) AS c
WHERE n.nspname IN ('shop', 'sync', 'report', 'gdpr', 'syncmap') AND l.lanname = 'plpgsql'
  AND (p.prorettype <> 'trigger'::regtype OR tg.tgrelid IS NOT NULL)
ORDER BY 1, c.lineno
"""


ROOT = Path(__file__).resolve().parent.parent
ALTERED_SECURITY = re.compile(r"ALTER\s+FUNCTION[^;]*\bSECURITY\b", re.IGNORECASE)


def security_findings(conn: psycopg.Connection[object]) -> list[str]:
    found = [
        f"{name}: {defect}"
        for name, defect in conn.execute("SELECT * FROM sync.function_defects()").fetchall()
    ]
    for path in sorted(
        [
            *ROOT.glob("sql/*.sql"),
            *ROOT.glob("migrations/**/*.sql"),
            *ROOT.glob("migrations/versions/*.py"),
        ]
    ):
        if ALTERED_SECURITY.search(path.read_text(encoding="utf-8")):
            found.append(
                f"{path.relative_to(ROOT)}: ALTER FUNCTION ... SECURITY (write it in "
                "the function's source)"
            )
    return found


def main(dsn: str) -> int:
    schema.upgrade(dsn)
    # the generated functions (schema syncmap) and the triggers a mapping binds exist only with a
    # mapping installed: the reference shop's
    reference_shop.install(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
        # the feed's page: every function that reads it makes it first (sync.open_page), so
        # it exists in the session that checks them too
        conn.execute("SELECT sync.open_page()")
        functions = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " JOIN pg_language l ON l.oid = p.prolang"
            " WHERE n.nspname IN ('shop', 'sync', 'report', 'gdpr', 'syncmap') AND l.lanname = 'plpgsql'"
        ).fetchone()
        findings = conn.execute(CHECK).fetchall()
        security = security_findings(conn)
    for finding in security:
        print(f"security error: {finding}")
    errors = [f for f in findings if f[1] == "error"]
    for function, level, message, lineno, statement in findings:
        print(f"{level}: {function} line {lineno} ({statement}): {message}")
    total = functions[0] if functions else 0
    print(
        f"plpgsql_check: {total} PL/pgSQL functions, {len(errors)} errors, "
        f"{len(findings) - len(errors)} warnings"
    )
    print(f"security rules: {len(security)} errors")
    return 1 if errors or security else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
