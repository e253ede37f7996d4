-- Data minimisation in the engine: an inbox row keeps its payload (the customer snapshot) only
-- as long as it may be needed. Once its event is decided (applied, skipped, discarded, or a
-- duplicate of a decided event) and the row is older than the retention period, the payload
-- goes; ids, versions and outcomes stay. Dead-lettered and pending rows keep theirs (a retry
-- needs it). Re-runnable.

-- Drop the payloads of decided inbox rows received more than p_older_than ago; returns how
-- many were dropped. Schedule it (daily, say); nothing calls it yet.
-- Example: SELECT sync.drop_payloads('3 days');
CREATE OR REPLACE FUNCTION sync.drop_payloads(p_older_than interval DEFAULT '7 days')
RETURNS bigint
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
    WITH dropped AS (
        UPDATE sync.inbox AS i
        SET payload = NULL
        WHERE i.payload IS NOT NULL
          AND i.received_at < pg_catalog.now() - p_older_than
          AND NOT EXISTS (SELECT FROM sync.dead_letter AS d WHERE d.inbox_id = i.id)
          AND (EXISTS (SELECT FROM sync.audit AS a WHERE a.event_id = i.event_id)
               OR EXISTS (SELECT FROM sync.audit AS a WHERE a.inbox_id = i.id))
        RETURNING 1
    )
    SELECT count(*) FROM dropped
$$;
