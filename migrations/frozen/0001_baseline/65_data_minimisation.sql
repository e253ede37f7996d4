-- Data minimisation in the engine: an inbox row keeps its payload (the customer snapshot) only
-- as long as it may be needed. Once its event is decided (applied, skipped, discarded, or a
-- duplicate of a decided event) and the row is older than the retention period, the payload
-- goes; ids, versions and outcomes stay. Dead-lettered and pending rows keep theirs (a retry
-- needs it). Re-runnable.

-- Drop the payloads of decided inbox rows received more than p_older_than ago, at most p_limit
-- of them, oldest first (NULL: all); returns how many were dropped. The daemon calls it every
-- cycle (`syncctl run --keep-payloads-days`); a DBA may call it by hand.
-- Example: SELECT sync.drop_payloads('3 days', 10000);
DROP FUNCTION IF EXISTS sync.drop_payloads(interval);  -- before it took a limit
CREATE OR REPLACE FUNCTION sync.drop_payloads(
    p_older_than interval DEFAULT '7 days', p_limit integer DEFAULT NULL)
RETURNS bigint
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH due AS (
        SELECT i.id
        FROM sync.inbox AS i
        WHERE (i.payload IS NOT NULL OR i.raw IS NOT NULL)
          AND i.received_at < pg_catalog.now() - p_older_than
          AND NOT EXISTS (SELECT FROM sync.dead_letter AS d WHERE d.inbox_id = i.id)
          AND (EXISTS (SELECT FROM sync.audit AS a WHERE a.event_id = i.event_id)
               OR EXISTS (SELECT FROM sync.audit AS a WHERE a.inbox_id = i.id))
        ORDER BY i.received_at
        LIMIT p_limit
        -- a row another transaction holds (a retry of it) waits for the next call
        FOR UPDATE OF i SKIP LOCKED
    ),
    dropped AS (
        UPDATE sync.inbox AS i
        SET payload = NULL, raw = NULL
        FROM due
        WHERE i.id = due.id
        RETURNING 1
    )
    SELECT count(*) FROM dropped
$$;
