-- The mapping that binds the engine to the shop's customer table (docs/mapping.md). A DBA writes
-- it as a TOML file; the loaded document, as jsonb, is what is stored here, versioned: at most
-- one version is active, and the engine reads its customer table, key and references from it.
-- Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS sync.mapping_version (
    version               integer PRIMARY KEY,
    document              jsonb NOT NULL,
    sha256                text NOT NULL,
    -- where the document came from (a file name), never its content
    source                text,
    installed_by          text NOT NULL DEFAULT current_user,
    installed_at          timestamptz NOT NULL DEFAULT now(),
    active                boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX IF NOT EXISTS mapping_version_one_active ON sync.mapping_version (active)
    WHERE active;

-- ---------------------------------------------------------------------------------------------
-- Reading the active mapping
-- ---------------------------------------------------------------------------------------------

-- The mapped customer table, its key column and the key's type, from the active mapping. No row
-- when no mapping is active or its table is gone.
CREATE OR REPLACE FUNCTION sync.mapped_customer()
RETURNS TABLE (relation regclass, key_column name, key_type regtype)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 1
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.oid::pg_catalog.regclass, a.attname, a.atttypid::pg_catalog.regtype
    FROM sync.mapping_version AS v
    JOIN pg_catalog.pg_namespace AS n ON n.nspname = v.document #>> '{customer,schema}'
    JOIN pg_catalog.pg_class AS c
      ON c.relnamespace = n.oid AND c.relname = v.document #>> '{customer,table}'
    JOIN pg_catalog.pg_attribute AS a
      ON a.attrelid = c.oid AND a.attname = v.document #>> '{customer,key}'
         AND a.attnum > 0 AND NOT a.attisdropped
    WHERE v.active
$$;
