-- The database schema as syncctl.schema reads it from the catalog: the alembic revision, what
-- a downgrade would drop, and every object of the engine's schemas in a comparable form (the
-- migration test builds one database from the migrations and one from sql/ and compares them).

-- name: version_table_exists
-- whether alembic's version table exists (no: never migrated)
SELECT pg_catalog.to_regclass('syncctl.alembic_version') IS NOT NULL;

-- name: schema_versions
-- the revisions the database is at
SELECT version_num FROM syncctl.alembic_version;

-- name: downgrade_schemas
-- the engine's schemas, how many tables each has and the tables that hold its rows
-- (relkind 'r': a partitioned table's rows are in its partitions), which are then counted: a
-- restored backup or a server after a crash has no statistics to estimate them from
SELECT n.nspname::text, count(c.oid)::int,
       coalesce(pg_catalog.array_agg(c.relname::text) FILTER (WHERE c.relkind = 'r'), '{}')
FROM pg_catalog.pg_namespace AS n
LEFT JOIN pg_catalog.pg_class AS c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
WHERE n.nspname = ANY(%(schemas)s)
GROUP BY 1 ORDER BY 1;

-- name: downgrade_foreign_keys
-- the shop's foreign keys that point into the engine's schemas
SELECT pg_catalog.format('%%I on %%I.%%I -> %%I.%%I', c.conname,
                         source.relnamespace::regnamespace, source.relname,
                         target.relnamespace::regnamespace, target.relname)
FROM pg_catalog.pg_constraint AS c
JOIN pg_catalog.pg_class AS target ON target.oid = c.confrelid
JOIN pg_catalog.pg_class AS source ON source.oid = c.conrelid
WHERE c.contype = 'f'
  AND target.relnamespace::regnamespace::text = ANY(%(schemas)s)
  AND NOT source.relnamespace::regnamespace::text = ANY(%(schemas)s)
ORDER BY 1;

-- name: downgrade_triggers
-- the engine's triggers on tables outside its schemas (the mapped customer table's): dropped
-- with their functions
SELECT pg_catalog.format('%%I on %%s', t.tgname, t.tgrelid::regclass)
FROM pg_catalog.pg_trigger AS t
JOIN pg_catalog.pg_proc AS p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_class AS c ON c.oid = t.tgrelid
WHERE NOT t.tgisinternal AND t.tgparentid = 0
  AND p.pronamespace::regnamespace::text = ANY(%(schemas)s)
  AND NOT c.relnamespace::regnamespace::text = ANY(%(schemas)s)
ORDER BY 1;

-- name: downgrade_views
-- views outside the engine's schemas that depend on tables in them
SELECT DISTINCT pg_catalog.format('%%I.%%I', v.relnamespace::regnamespace, v.relname)
FROM pg_catalog.pg_depend AS d
JOIN pg_catalog.pg_rewrite AS r ON r.oid = d.objid
JOIN pg_catalog.pg_class AS v ON v.oid = r.ev_class
JOIN pg_catalog.pg_class AS t ON t.oid = d.refobjid
WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
  AND t.relnamespace::regnamespace::text = ANY(%(schemas)s)
  AND NOT v.relnamespace::regnamespace::text = ANY(%(schemas)s)
ORDER BY 1;

-- name: describe_columns
-- every column of the engine's schemas, comparable
SELECT table_schema, table_name, column_name, ordinal_position::int, data_type,
       udt_name, is_nullable, column_default, is_identity
FROM information_schema.columns WHERE table_schema = ANY(%(schemas)s)
ORDER BY 1, 2, 4;

-- name: describe_constraints
-- every constraint of the engine's schemas, with its definition
SELECT n.nspname, c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
WHERE n.nspname = ANY(%(schemas)s) ORDER BY 1, 2, 3;

-- name: describe_indexes
-- every index of the engine's schemas, with its definition
SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = ANY(%(schemas)s) ORDER BY 1, 2, 3;

-- name: describe_functions
-- every function of the engine's schemas, with a digest of its definition
SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
       md5(pg_get_functiondef(p.oid))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY(%(schemas)s) AND p.prokind IN ('f', 'p') ORDER BY 1, 2, 3;

-- name: describe_triggers
-- every trigger of the engine's schemas, with its definition
SELECT n.nspname, c.relname, t.tgname, pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal ORDER BY 1, 2, 3;

-- name: describe_views
-- every view of the engine's schemas, with its definition
SELECT schemaname, viewname, definition FROM pg_views
WHERE schemaname = ANY(%(schemas)s) ORDER BY 1, 2;

-- name: describe_types
-- the composite, enum and domain types of the engine's schemas
SELECT n.nspname, t.typname, t.typtype FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = ANY(%(schemas)s) AND t.typtype IN ('c', 'e', 'd')
  AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
ORDER BY 1, 2;

-- name: describe_comments
-- the comments of the engine's schemas
SELECT n.nspname, obj_description(n.oid, 'pg_namespace') FROM pg_namespace n
WHERE n.nspname = ANY(%(schemas)s) ORDER BY 1;
