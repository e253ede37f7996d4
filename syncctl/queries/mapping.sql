-- The mapping (docs/mapping.md): its check against the live catalog, the SQL it compiles to, its
-- installation and the active version (syncctl.mapping_database runs them). The document is the
-- mapping file as JSON.

-- name: mapping_defects
-- every defect of a mapping document against this database's catalog, none when it fits
SELECT path, problem FROM sync.mapping_defects(%(document)s::jsonb);

-- name: mapping_compiler
-- which of the mapping compiler's objects this database has (an older engine has none)
SELECT pg_catalog.to_regprocedure('sync.compile_mapping(jsonb)') IS NOT NULL AS compile,
       pg_catalog.to_regprocedure('sync.install_mapping(jsonb, text)') IS NOT NULL AS install,
       pg_catalog.to_regclass('sync.mapping_version') IS NOT NULL AS versions;

-- name: mapping_compile
-- the SQL a mapping compiles to, not executed
SELECT sync.compile_mapping(%(document)s::jsonb);

-- name: mapping_install_role
-- act as the owner role for the rest of the transaction: what install creates belongs to it
-- (the login must be a member, as for `syncctl db upgrade`)
SELECT pg_catalog.set_config('role', sync.role_name('owner'), true);

-- name: mapping_install
-- check, compile, execute and store a mapping as the active version; returns its number
SELECT sync.install_mapping(%(document)s::jsonb, %(source)s);

-- name: mapping_active
-- the active mapping version: number, checksum, where it came from, who installed it and when
SELECT version, sha256, source, installed_by, installed_at, document
FROM sync.mapping_version
WHERE active;

-- name: mapping_compiled
-- whether the active mapping's generated write exists (the feed's customer table is bound);
-- reads the catalog only, so any role may ask
SELECT EXISTS (SELECT FROM pg_catalog.pg_proc AS p
               JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
               WHERE n.nspname = 'syncmap' AND p.proname = 'write_customers');
