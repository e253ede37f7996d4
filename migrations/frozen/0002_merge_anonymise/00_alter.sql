-- 0002_merge_anonymise: what existing databases need before the definitions that follow.
ALTER TABLE sync.audit ADD COLUMN IF NOT EXISTS related_number text;
-- the upsert apply takes a run of ids now (a new signature, so the old one must go)
DROP FUNCTION IF EXISTS sync._apply_upserts(bigint, bigint);
