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

-- ---------------------------------------------------------------------------------------------
-- The reference shop's mapping (syncctl/mappings/reference.toml, as a document): active on an
-- installation that has none yet, so the demo's shop schema is bound from the start.
-- ---------------------------------------------------------------------------------------------
INSERT INTO sync.mapping_version (version, document, sha256, source, active)
SELECT 1, d.document,
       pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(d.document::text, 'UTF8')),
                         'hex'),
       'syncctl/mappings/reference.toml', true
FROM (VALUES ('{
  "format": 1,
  "customer": {
    "schema": "shop", "table": "customer", "key": "id", "key_generate": "identity",
    "number": {"column": "customer_number"},
    "version": {"column": "tritonx_version"},
    "columns": {
      "email": "email", "first_name": "first_name", "infix": "infix", "last_name": "last_name",
      "gender": "gender", "birth_date": "birth_date", "phone": "phone", "mobile": "mobile",
      "street": "street", "house_number": "house_number",
      "house_number_addition": "house_number_addition", "postcode": "postcode", "city": "city",
      "country_code": "country_code", "loyalty_card": "loyalty_card", "home_store": "home_store",
      "customer_group": "customer_group",
      "newsletter_opt_in": {"field": "newsletter_opt_in", "null_as": false},
      "blocked": {"field": "blocked", "null_as": false},
      "tritonx_updated_at": "updated_at"
    }
  }
}'::jsonb)) AS d (document)
WHERE NOT EXISTS (SELECT FROM sync.mapping_version);
