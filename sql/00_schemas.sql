-- Schemas of syncctl: `sync` is the engine, `syncmap` the code generated from the mapping (the
-- shop's own customer tables stay where they are; sql/reference_shop/ is the demo's). Re-runnable.

CREATE SCHEMA IF NOT EXISTS sync;
COMMENT ON SCHEMA sync IS 'syncctl engine: inbox, cursor, redirects, tombstones, dead letters, audit.';

CREATE SCHEMA IF NOT EXISTS syncmap;
COMMENT ON SCHEMA syncmap IS
    'Generated from the active mapping by sync.install_mapping: never edit by hand.';
