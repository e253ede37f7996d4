-- Schemas of syncctl. `shop` is a reference webshop model (real deployments bring their own
-- customer-linked tables), `sync` is the engine. Re-runnable.
CREATE SCHEMA IF NOT EXISTS shop;
COMMENT ON SCHEMA shop IS 'Reference webshop model: customers and everything linked to them.';

CREATE SCHEMA IF NOT EXISTS sync;
COMMENT ON SCHEMA sync IS 'syncctl engine: inbox, cursor, redirects, tombstones, dead letters, audit.';

CREATE SCHEMA IF NOT EXISTS syncmap;
COMMENT ON SCHEMA syncmap IS
    'Generated from the active mapping by sync.install_mapping: never edit by hand.';
