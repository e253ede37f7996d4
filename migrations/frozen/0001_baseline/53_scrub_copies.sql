-- The engine's own copies of a customer number's personal data: inbox payloads of the number
-- and of the numbers merged into it, merge snapshots naming it as `into`, records kept as text
-- (sync.inbox.raw) and its dead letters. Anonymising or deleting the customer
-- (sql/55_anonymise.sql) scrubs them in the same transaction: a payload keeps only the event
-- envelope, a dead letter is decided as skipped. Private. Re-runnable.

-- The inbox rows holding personal data of a customer number: its own events and those of the
-- numbers merged into it, and merge events naming it as `into`, whose payload holds more than
-- the event envelope (sync.event_envelope).
CREATE OR REPLACE FUNCTION sync._inbox_copies(p_number text)
RETURNS TABLE (inbox_id bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH numbers AS (
        SELECT pg_catalog.array_append(
                   ARRAY(SELECT r.old_number FROM sync.redirect AS r
                         WHERE r.survivor_number = p_number),
                   p_number) AS n
    )
    SELECT i.id
    FROM sync.inbox AS i, numbers
    WHERE (i.customer_number = ANY (numbers.n)
           OR (i.event_type = 'customer.merged' AND (i.payload ->> 'into') = ANY (numbers.n))
           -- a malformed record whose own number is missing, malformed or another: its
           -- snapshot names it (the index inbox_snapshot_number_other)
           OR ((i.payload -> 'customer' ->> 'customer_number') = ANY (numbers.n)
               AND i.customer_number IS DISTINCT FROM
                   (i.payload -> 'customer' ->> 'customer_number')))
      AND (sync.event_envelope(i.payload) <> i.payload OR i.raw IS NOT NULL)
$$;

-- The dead letters of a customer number and of the numbers merged into it, by their own number
-- or by the number their snapshot names (a malformed record's own number may be missing,
-- malformed or another): what anonymising it decides as skipped.
CREATE OR REPLACE FUNCTION sync._dead_letter_copies(p_number text)
RETURNS TABLE (inbox_id bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.inbox_id
    FROM sync.dead_letter AS d
    JOIN sync.inbox AS i ON i.id = d.inbox_id
    CROSS JOIN (SELECT ARRAY(SELECT p_number
                             UNION ALL
                             SELECT r.old_number FROM sync.redirect AS r
                             WHERE r.survivor_number = p_number) AS n) AS numbers
    WHERE i.customer_number = ANY (numbers.n)
       OR (i.payload -> 'customer' ->> 'customer_number') = ANY (numbers.n)
$$;

-- Scrub the engine's copies of a customer number's personal data: inbox payloads keep only the
-- event envelope; its dead letters are decided as skipped (their snapshot is gone, and a
-- tombstone would skip them anyway). Returns {"sync.inbox": n, "sync.dead_letter": n}.
CREATE OR REPLACE FUNCTION sync._scrub_copies(p_number text, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    scrubbed bigint;
    decided  bigint;
BEGIN
    -- the dead letters first: a malformed record is found by the snapshot the scrub drops
    WITH gone AS (
        DELETE FROM sync.dead_letter AS d
        USING sync.inbox AS i
        WHERE i.id = d.inbox_id
          AND d.inbox_id IN (SELECT c.inbox_id FROM sync._dead_letter_copies(p_number) AS c)
        RETURNING d.inbox_id, i.event_id, i.event_type, i.customer_number, i.version
    )
    INSERT INTO sync.audit (actor, action, outcome, event_id, inbox_id, customer_number,
                            version, reason)
    SELECT p_actor, coalesce(g.event_type, 'unknown'), 'skipped',
           CASE WHEN sync.is_event_id(g.event_id) THEN g.event_id END,
           g.inbox_id,
           -- a malformed number is the record's text, not a number: not repeated
           CASE WHEN sync.is_customer_number(g.customer_number) THEN g.customer_number END,
           g.version, 'tombstone'
    FROM gone AS g;
    GET DIAGNOSTICS decided = ROW_COUNT;

    UPDATE sync.inbox AS i
    SET payload = sync.event_envelope(i.payload), raw = NULL
    WHERE i.id IN (SELECT c.inbox_id FROM sync._inbox_copies(p_number) AS c);
    GET DIAGNOSTICS scrubbed = ROW_COUNT;

    RETURN pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'sync.inbox', NULLIF(scrubbed, 0), 'sync.dead_letter', NULLIF(decided, 0)));
END
$$;
