-- The feed's page: where the controller stages a page of change records before it is applied.
--
-- The controller COPYs a page into pg_temp.syncctl_page, a table of its own session that
-- sync.open_page() makes (owned by the owner role, emptied at every commit), then calls
-- sync.stage_page(keep_payloads). That inserts the page's rows into sync.inbox, where the
-- inbox trigger applies them (sql/30_sync_apply.sql) reading each record from the page, and
-- keeps in sync.inbox only what the retention asks for:
--   keep_payloads true:  the record as tritonX sent it (dropped after the retention period by
--                        sync.drop_payloads), as before;
--   keep_payloads false: for an applied, skipped or duplicate event, its typed columns and,
--                        for a merge, anonymisation or delete, its envelope (`into`, the
--                        reason code): nothing personal. A dead letter keeps the record (or
--                        its text) whatever the setting (an operator retries it from there),
--                        unless its customer is anonymised or deleted (then its envelope,
--                        and the record is not written first).
-- The page is a TEMP table: it lives in the session's memory (temp_buffers; a page larger
-- than that spills to the session's temporary file of the table, never to the write-ahead
-- log), so with keep_payloads false no snapshot of an applied event is written to the inbox
-- or the WAL. The session may insert the records' columns only: ids are drawn from the
-- inbox's sequence, so a page row is never read for an inbox row staged otherwise.

-- The session's page, made when missing (or old and empty). Refuses a pg_temp.syncctl_page that
-- is not the owner role's own (a caller's table there would run the caller's triggers or rules
-- as the owner).
CREATE OR REPLACE FUNCTION sync.open_page()
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    page regclass := pg_catalog.to_regclass('pg_temp.syncctl_page');
BEGIN
    IF page IS NOT NULL AND NOT EXISTS (
        SELECT FROM pg_catalog.pg_class AS c
        WHERE c.oid = page AND c.relkind = 'r' AND NOT c.relhasrules
          AND NOT c.relhastriggers
          AND c.relowner = (SELECT r.oid FROM pg_catalog.pg_roles AS r
                            WHERE r.rolname = CURRENT_USER)
    ) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY097',
            MESSAGE = 'pg_temp.syncctl_page is not syncctl''s page: drop it, or use a new '
                      'session';
    END IF;
    -- Autovacuum cannot vacuum a session's temporary table, and emptying it at commit keeps
    -- its relfrozenxid: a page as old as a long-lived session would hold back the database's
    -- datfrozenxid (towards a wraparound shutdown). An empty page older than
    -- vacuum_freeze_min_age (at least 10,000 transactions) is made anew.
    IF page IS NOT NULL
       AND pg_catalog.age((SELECT c.relfrozenxid FROM pg_catalog.pg_class AS c
                           WHERE c.oid = page))
           > greatest(pg_catalog.current_setting('vacuum_freeze_min_age')::integer, 10000)
    THEN
        IF NOT EXISTS (SELECT FROM pg_temp.syncctl_page) THEN
            DROP TABLE pg_temp.syncctl_page;
            page := NULL;
        END IF;
    END IF;
    IF page IS NULL THEN
        -- PUBLIC may make temporary tables unless a DBA revoked it: then say what to grant
        IF NOT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'TEMPORARY')
        THEN
            RAISE EXCEPTION USING
                ERRCODE = 'insufficient_privilege',
                MESSAGE = pg_catalog.format(
                    'role %s may not create temporary tables in database %s: the feed''s page '
                    '(pg_temp.syncctl_page) is one', CURRENT_USER,
                    pg_catalog.current_database()),
                HINT = pg_catalog.format('GRANT TEMPORARY ON DATABASE %I TO %I',
                                         pg_catalog.current_database(), CURRENT_USER);
        END IF;
        CREATE TEMP TABLE syncctl_page (
            id                bigint NOT NULL DEFAULT pg_catalog.nextval('sync.inbox_id_seq')
                                  PRIMARY KEY,
            source            text NOT NULL DEFAULT 'tritonx',
            seq               bigint,
            event_id          text,
            event_type        text,
            customer_number   text,
            version           integer,
            occurred_at       timestamptz,
            payload           jsonb,
            raw               text
        ) ON COMMIT DELETE ROWS;
        page := pg_catalog.to_regclass('pg_temp.syncctl_page');
    END IF;
    -- The session (only it can reach its temporary schema) may insert the records' columns;
    -- the id is drawn from the inbox's sequence, never given: a given one could be that of an
    -- inbox row staged otherwise (an INSERT into sync.inbox, a dead letter), whose record the
    -- apply would then read from here. A page made before this rule is brought to it.
    IF pg_catalog.has_table_privilege('public', page, 'INSERT')
       OR NOT pg_catalog.has_column_privilege('public', page, 'payload', 'INSERT') THEN
        REVOKE ALL ON pg_temp.syncctl_page FROM PUBLIC;
        GRANT INSERT (source, seq, event_id, event_type, customer_number, version, occurred_at,
                      payload, raw) ON pg_temp.syncctl_page TO PUBLIC;
    END IF;
END
$$;

-- Insert the session's page into sync.inbox (the inbox trigger applies it) and empty the page;
-- what became of its events, as sync.apply_inbox says it ({"applied": n, ...}; {} for an
-- empty page). p_keep_payloads: whether the inbox keeps the records of the events that are
-- not dead letters (the retention is not zero). p_feed: the page is a page of the feed (the
-- cursor moves past it), whose every record must carry its `seq` (a record without one is a
-- dead letter); false for records from elsewhere (a login-time refresh), which have none.
DROP FUNCTION IF EXISTS sync.stage_page(boolean);
CREATE OR REPLACE FUNCTION sync.stage_page(p_keep_payloads boolean, p_feed boolean)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    first_id bigint;
    last_id  bigint;
    summary  jsonb;
BEGIN
    PERFORM sync.open_page();
    SELECT min(p.id), max(p.id) INTO first_id, last_id FROM pg_temp.syncctl_page AS p;
    IF first_id IS NULL THEN
        RETURN '{}'::jsonb;
    END IF;
    PERFORM pg_catalog.set_config('syncctl.last_apply', '', true);
    -- read by sync._dead_letter_defects, for this INSERT's rows only
    PERFORM pg_catalog.set_config('syncctl.feed_page', CASE WHEN p_feed THEN 'on' ELSE '' END,
                                  true);
    INSERT INTO sync.inbox (id, source, seq, event_id, event_type, customer_number, version,
                            occurred_at, payload, raw)
    OVERRIDING SYSTEM VALUE
    SELECT p.id, p.source, p.seq, p.event_id, p.event_type, p.customer_number, p.version,
           p.occurred_at,
           CASE
               WHEN p_keep_payloads THEN p.payload
               -- what a merge, anonymisation or delete is applied from
               WHEN p.event_type IN ('customer.merged', 'customer.anonymized',
                                     'customer.deleted')
                   THEN sync.event_envelope(p.payload)
           END,
           -- a record kept as text is a dead letter's (kept below)
           CASE WHEN p_keep_payloads THEN p.raw END
    FROM pg_temp.syncctl_page AS p
    ORDER BY p.id;
    PERFORM pg_catalog.set_config('syncctl.feed_page', '', true);
    summary := coalesce(NULLIF(pg_catalog.current_setting('syncctl.last_apply', true),
                                '')::jsonb,
                        '{}'::jsonb);
    IF NOT p_keep_payloads THEN
        -- the dead letters keep what tritonX sent (the record, or its text); those naming a
        -- customer anonymised or deleted (or merged into one) only their envelope, never
        -- written whole first: the event's number (taken from the snapshot too, as
        -- sync._scrub_erased_deliveries takes it) or a merge's `into` (refused, SY004: a
        -- COPY into sync.inbox keeps its envelope only, sync._apply_event)
        UPDATE sync.inbox AS i
        SET payload = CASE WHEN e.erased THEN sync.event_envelope(p.payload) ELSE p.payload END,
            raw = CASE WHEN NOT e.erased THEN p.raw END
        FROM sync.dead_letter AS d
        JOIN pg_temp.syncctl_page AS p ON p.id = d.inbox_id
        CROSS JOIN LATERAL (
            SELECT pg_catalog.bool_or(
                       EXISTS (SELECT FROM sync.tombstone AS t
                               WHERE t.customer_number = n.number)
                       OR EXISTS (SELECT FROM sync.tombstone AS t
                                  WHERE t.customer_number = (SELECT r.survivor_number
                                                             FROM sync.redirect AS r
                                                             WHERE r.old_number = n.number)))
                       AS erased
            FROM (VALUES (coalesce(p.customer_number,
                                   p.payload -> 'customer' ->> 'customer_number')),
                         (CASE WHEN p.event_type = 'customer.merged'
                               THEN p.payload ->> 'into' END)) AS n (number)) AS e
        WHERE d.inbox_id BETWEEN first_id AND last_id
          AND i.id = d.inbox_id AND (p.payload IS NOT NULL OR p.raw IS NOT NULL);
    END IF;
    -- staged: a second call in this transaction stages only what was copied since
    DELETE FROM pg_temp.syncctl_page;
    RETURN summary;
END
$$;
