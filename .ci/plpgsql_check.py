"""Builds syncctl's schema from the migrations in the given database and runs plpgsql_check on
every PL/pgSQL function of its schemas (trigger functions against their table and transition
tables). Prints every finding; exits 1 when any is an error."""

from __future__ import annotations

import sys

import psycopg

from syncctl import schema

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
WHERE n.nspname IN ('shop', 'sync', 'report', 'gdpr') AND l.lanname = 'plpgsql'
  AND (p.prorettype <> 'trigger'::regtype OR tg.tgrelid IS NOT NULL)
ORDER BY 1, c.lineno
"""


def main(dsn: str) -> int:
    schema.upgrade(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
        functions = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " JOIN pg_language l ON l.oid = p.prolang"
            " WHERE n.nspname IN ('shop', 'sync', 'report', 'gdpr') AND l.lanname = 'plpgsql'"
        ).fetchone()
        findings = conn.execute(CHECK).fetchall()
    errors = [f for f in findings if f[1] == "error"]
    for function, level, message, lineno, statement in findings:
        print(f"{level}: {function} line {lineno} ({statement}): {message}")
    total = functions[0] if functions else 0
    print(f"plpgsql_check: {total} PL/pgSQL functions, {len(errors)} errors, "
          f"{len(findings) - len(errors)} warnings")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
