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

-- Scrub the engine's copies of the personal data of the customer numbers p_numbers (each
-- decided by the actor at the same place of p_actors), in one statement a kind: inbox payloads
-- keep only the event envelope; their dead letters are decided as skipped (their snapshot is
-- gone, and a tombstone would skip them anyway), each audited by its number's actor. A copy
-- two of the numbers hold counts for the first of them, as one number after the other would.
-- Returns per number {"sync.inbox": n, "sync.dead_letter": n} (entries of 0 left out).
CREATE OR REPLACE FUNCTION sync._scrub_copies_of(p_numbers text[], p_actors text[])
RETURNS TABLE (customer_number text, counts jsonb)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    decided  jsonb;
    scrubbed jsonb;
BEGIN
    -- the dead letters first: a malformed record is found by the snapshot the scrub drops
    WITH wanted AS (
        SELECT DISTINCT ON (c.inbox_id) c.inbox_id, n.number, n.actor
        FROM ROWS FROM (pg_catalog.unnest(p_numbers), pg_catalog.unnest(p_actors))
             WITH ORDINALITY AS n (number, actor, ord)
        CROSS JOIN LATERAL sync._dead_letter_copies(n.number) AS c
        ORDER BY c.inbox_id, n.ord
    ),
    gone AS (
        DELETE FROM sync.dead_letter AS d
        USING sync.inbox AS i, wanted AS w
        WHERE i.id = d.inbox_id AND w.inbox_id = d.inbox_id
        RETURNING d.inbox_id, i.event_id, i.event_type, i.customer_number, i.version,
                  w.number AS copy_of, w.actor
    ),
    audited AS (
        INSERT INTO sync.audit (actor, action, outcome, event_id, inbox_id, customer_number,
                                version, reason)
        SELECT g.actor, coalesce(g.event_type, 'unknown'), 'skipped',
               CASE WHEN sync.is_event_id(g.event_id) THEN g.event_id END,
               g.inbox_id,
               -- a malformed number is the record's text, not a number: not repeated
               CASE WHEN sync.is_customer_number(g.customer_number) THEN g.customer_number END,
               g.version, 'tombstone'
        FROM gone AS g
    )
    SELECT pg_catalog.jsonb_object_agg(e.copy_of, e.n) INTO decided
    FROM (SELECT g.copy_of, pg_catalog.count(*) AS n FROM gone AS g GROUP BY g.copy_of) AS e;

    WITH wanted AS (
        SELECT DISTINCT ON (c.inbox_id) c.inbox_id, n.number
        FROM pg_catalog.unnest(p_numbers) WITH ORDINALITY AS n (number, ord)
        CROSS JOIN LATERAL sync._inbox_copies(n.number) AS c
        ORDER BY c.inbox_id, n.ord
    ),
    done AS (
        UPDATE sync.inbox AS i
        SET payload = sync.event_envelope(i.payload), raw = NULL
        FROM wanted AS w
        WHERE i.id = w.inbox_id
        RETURNING w.number
    )
    SELECT pg_catalog.jsonb_object_agg(e.number, e.n) INTO scrubbed
    FROM (SELECT d.number, pg_catalog.count(*) AS n FROM done AS d GROUP BY d.number) AS e;

    RETURN QUERY
    SELECT n.number, pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'sync.inbox', (scrubbed ->> n.number)::bigint,
               'sync.dead_letter', (decided ->> n.number)::bigint))
    FROM pg_catalog.unnest(p_numbers) AS n (number);
END
$$;

-- The same for one customer number: {"sync.inbox": n, "sync.dead_letter": n}.
CREATE OR REPLACE FUNCTION sync._scrub_copies(p_number text, p_actor text)
RETURNS jsonb
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.counts FROM sync._scrub_copies_of(ARRAY[p_number], ARRAY[p_actor]) AS s
$$;
