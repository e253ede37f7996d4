-- The engine's own copies of a customer number's personal data: inbox payloads of the number
-- and of the numbers merged into it, merge snapshots naming it as `into`, records kept as text
-- (sync.inbox.raw) and its dead letters. Anonymising or deleting the customer
-- (sql/55_anonymise.sql) scrubs them in the same transaction: a payload keeps only the event
-- envelope, a dead letter is decided as skipped. Private. Re-runnable.

-- The customer numbers p_numbers and the numbers merged into them (redirects), as (alias,
-- owner): what a copy of an owner's personal data is found by.
CREATE OR REPLACE FUNCTION sync._copy_numbers(p_numbers text[])
RETURNS TABLE (alias text, owner text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.number, n.number FROM pg_catalog.unnest(p_numbers) AS n (number)
    UNION ALL
    SELECT r.old_number, r.survivor_number FROM sync.redirect AS r
    WHERE r.survivor_number = ANY (p_numbers)
$$;

-- The inbox rows holding personal data of the customer numbers p_numbers: their own events and
-- those of the numbers merged into them, and merge events naming them as `into`, whose payload
-- holds more than the event envelope (sync.event_envelope); each with the number whose copy it
-- is (the first of p_numbers when it is several's, as one number after the other would).
CREATE OR REPLACE FUNCTION sync._inbox_copies_of(p_numbers text[])
RETURNS TABLE (inbox_id bigint, customer_number text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH numbers AS (
        SELECT pg_catalog.array_agg(c.alias) AS n FROM sync._copy_numbers(p_numbers) AS c
    )
    SELECT i.id,
           (SELECT c.owner FROM sync._copy_numbers(p_numbers) AS c
            WHERE c.alias IN (i.customer_number,
                              CASE WHEN i.event_type = 'customer.merged'
                                   THEN i.payload ->> 'into' END,
                              i.payload -> 'customer' ->> 'customer_number')
            ORDER BY pg_catalog.array_position(p_numbers, c.owner) LIMIT 1)
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

-- The same for one customer number.
CREATE OR REPLACE FUNCTION sync._inbox_copies(p_number text)
RETURNS TABLE (inbox_id bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.inbox_id FROM sync._inbox_copies_of(ARRAY[p_number]) AS c
$$;

-- The dead letters of the customer numbers p_numbers and of the numbers merged into them, by
-- their own number or by the number their snapshot names (a malformed record's own number may
-- be missing, malformed or another): what anonymising them decides as skipped; each with the
-- number whose copy it is (the first of p_numbers when it is several's).
CREATE OR REPLACE FUNCTION sync._dead_letter_copies_of(p_numbers text[])
RETURNS TABLE (inbox_id bigint, customer_number text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.inbox_id,
           (SELECT c.owner FROM sync._copy_numbers(p_numbers) AS c
            WHERE c.alias IN (i.customer_number, i.payload -> 'customer' ->> 'customer_number')
            ORDER BY pg_catalog.array_position(p_numbers, c.owner) LIMIT 1)
    FROM sync.dead_letter AS d
    JOIN sync.inbox AS i ON i.id = d.inbox_id
    CROSS JOIN (SELECT pg_catalog.array_agg(c.alias) AS n
                FROM sync._copy_numbers(p_numbers) AS c) AS numbers
    WHERE i.customer_number = ANY (numbers.n)
       OR (i.payload -> 'customer' ->> 'customer_number') = ANY (numbers.n)
$$;

-- The same for one customer number.
CREATE OR REPLACE FUNCTION sync._dead_letter_copies(p_number text)
RETURNS TABLE (inbox_id bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.inbox_id FROM sync._dead_letter_copies_of(ARRAY[p_number]) AS c
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
    letters  bigint[];
    owners   text[];
    actors   text[];
    copies   bigint[];
    holders  text[];
    decided  jsonb;
    scrubbed jsonb;
BEGIN
    -- which number each copy counts for, then the copies by their ids (index probes)
    SELECT pg_catalog.array_agg(c.inbox_id), pg_catalog.array_agg(c.customer_number),
           pg_catalog.array_agg(p_actors[pg_catalog.array_position(p_numbers, c.customer_number)])
    INTO letters, owners, actors
    FROM sync._dead_letter_copies_of(p_numbers) AS c;
    -- the dead letters first: a malformed record is found by the snapshot the scrub drops
    IF letters IS NOT NULL THEN
        WITH gone AS (
            DELETE FROM sync.dead_letter AS d
            USING sync.inbox AS i
            WHERE i.id = d.inbox_id AND d.inbox_id = ANY (letters)
            RETURNING d.inbox_id, i.event_id, i.event_type, i.customer_number, i.version,
                      pg_catalog.array_position(letters, d.inbox_id) AS place
        ),
        audited AS (
            INSERT INTO sync.audit (actor, action, outcome, event_id, inbox_id,
                                    customer_number, version, reason)
            SELECT actors[g.place], coalesce(g.event_type, 'unknown'), 'skipped',
                   CASE WHEN sync.is_event_id(g.event_id) THEN g.event_id END,
                   g.inbox_id,
                   -- a malformed number is the record's text, not a number: not repeated
                   CASE WHEN sync.is_customer_number(g.customer_number)
                        THEN g.customer_number END,
                   g.version, 'tombstone'
            FROM gone AS g
        )
        SELECT pg_catalog.jsonb_object_agg(e.number, e.n) INTO decided
        FROM (SELECT owners[g.place] AS number, pg_catalog.count(*) AS n
              FROM gone AS g GROUP BY 1) AS e;
    END IF;

    SELECT pg_catalog.array_agg(c.inbox_id), pg_catalog.array_agg(c.customer_number)
    INTO copies, holders
    FROM sync._inbox_copies_of(p_numbers) AS c;
    IF copies IS NOT NULL THEN
        WITH done AS (
            UPDATE sync.inbox AS i
            SET payload = sync.event_envelope(i.payload), raw = NULL
            WHERE i.id = ANY (copies)
            RETURNING pg_catalog.array_position(copies, i.id) AS place
        )
        SELECT pg_catalog.jsonb_object_agg(e.number, e.n) INTO scrubbed
        FROM (SELECT holders[d.place] AS number, pg_catalog.count(*) AS n
              FROM done AS d GROUP BY 1) AS e;
    END IF;

    RETURN QUERY
    SELECT n.number, pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
               'sync.inbox', (scrubbed ->> n.number)::bigint,
               'sync.dead_letter', (decided ->> n.number)::bigint))
    FROM pg_catalog.unnest(p_numbers) AS n (number);
END
$$;

-- Scrub the engine's copies of a customer number's personal data: inbox payloads keep only the
-- event envelope; its dead letters are decided as skipped (their snapshot is gone, and a
-- tombstone would skip them anyway). Returns {"sync.inbox": n, "sync.dead_letter": n}. The
-- one-by-one form of sync._scrub_copies_of, with plain statements.
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
