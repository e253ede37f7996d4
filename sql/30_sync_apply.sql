-- Applying staged tritonX events. A statement-level trigger on sync.inbox applies every batch
-- the moment it is staged (COPY or INSERT), in the caller's transaction, so the cursor, the
-- staged rows and their effects commit together. A batch is applied in seq order (then inbox
-- id): each maximal run of consecutive upserts set-based in one statement, each merge,
-- anonymise or delete between them on its own (sql/60_event_apply.sql), in order. Each event
-- is decided once (the unique index on sync.audit.event_id); malformed or impossible events go
-- to sync.dead_letter with a reason that names the field, never its value. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Validation
-- ---------------------------------------------------------------------------------------------

-- Which snapshot field is not of the JSON type the contract gives it, or NULL. Called by
-- sync.event_defect only for a snapshot its jsonpath test found wanting. The expected types
-- come from sync.customer_snapshot itself (boolean: a JSON boolean, integer: a number, every
-- other field: a string), first field first; customer_number is checked by sync.event_defect.
CREATE OR REPLACE FUNCTION sync._snapshot_type_defect(p_snapshot jsonb)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format('customer.%s is not a %s', a.attname, f.expected)
    FROM pg_catalog.pg_attribute AS a
    CROSS JOIN LATERAL (
        SELECT CASE a.atttypid
                   WHEN 'boolean'::pg_catalog.regtype THEN 'boolean'
                   WHEN 'integer'::pg_catalog.regtype THEN 'number'
                   ELSE 'string'
               END AS expected) AS f
    WHERE a.attrelid = (SELECT t.typrelid FROM pg_catalog.pg_type AS t
                        WHERE t.oid = 'sync.customer_snapshot'::pg_catalog.regtype)
      AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname <> 'customer_number'
      AND pg_catalog.jsonb_typeof(p_snapshot -> a.attname::text) NOT IN (f.expected, 'null')
    ORDER BY a.attnum
    LIMIT 1
$$;

-- The structural defects of staged events, one row per element of the arrays (the same
-- position in each): `id` as given, `reason` NULL when the event can be applied. p_feed: the
-- events are a feed page's, whose records must carry their `seq`. For an upsert
-- this includes the snapshot's JSON types (TRITONX FIELD CONTRACT, sql/20_sync_tables.sql):
-- written out here rather than in a function of their own, as each nested call with a pinned
-- search_path costs ~10 us a row; and the feed calls this once a page with the page's arrays
-- (sync._dead_letter_defects), not once a row. The lengths are the snapshot type's.
CREATE OR REPLACE FUNCTION sync._event_defects(
    p_ids              bigint[],
    p_event_ids        text[],
    p_event_types      text[],
    p_customer_numbers text[],
    p_versions         integer[],
    p_occurred_ats     timestamptz[],
    p_payloads         jsonb[],
    p_feed             boolean
)
RETURNS TABLE (id bigint, reason text)
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.id, CASE
        WHEN p_payload IS NULL OR pg_catalog.jsonb_typeof(p_payload) <> 'object'
            THEN 'record is not a JSON object'
        -- `+` and a length test, not `{1,100}`: a bounded repeat costs ~17 us a row here
        WHEN p_event_id IS NULL OR pg_catalog.length(p_event_id) > 100
             OR p_event_id !~ '^[A-Za-z0-9._:-]+$'
            THEN 'event_id is missing or not an identifier'
        WHEN p_event_type IS NULL
             OR p_event_type NOT IN ('customer.upserted', 'customer.merged',
                                     'customer.anonymized', 'customer.deleted')
            THEN 'type is missing or unknown'
        WHEN p_customer_number IS NULL OR pg_catalog.length(p_customer_number) > 32
             OR p_customer_number !~ '^[A-Za-z0-9]+$'
            THEN 'customer_number is missing or malformed'
        WHEN p_version IS NULL OR p_version < 1
            THEN 'version is missing or not a positive integer'
        WHEN p_occurred_at IS NULL
            THEN 'occurred_at is missing or not a timestamp'
        -- a feed's record carries its position (p_feed: the page is a feed's; a login-time
        -- refresh's record has none): an integer
        WHEN p_feed AND (p_payload -> 'seq') IS NULL
            THEN 'seq is missing: a feed''s record carries its position'
        WHEN (p_payload -> 'seq') IS NOT NULL
             AND (pg_catalog.jsonb_typeof(p_payload -> 'seq') <> 'number'
                  OR (p_payload ->> 'seq') !~ '^[0-9]+$'
                  OR pg_catalog.length(p_payload ->> 'seq') > 18)
            THEN 'seq is not a whole number of at most 18 digits'
        WHEN p_event_type = 'customer.upserted'
             AND pg_catalog.jsonb_typeof(p_payload -> 'customer') IS DISTINCT FROM 'object'
            THEN 'customer snapshot is missing'
        -- compared as JSON: a number 12345678 is not the string "12345678"
        WHEN p_event_type = 'customer.upserted'
             AND (p_payload -> 'customer' -> 'customer_number')
                 IS DISTINCT FROM pg_catalog.to_jsonb(p_customer_number)
            THEN 'customer.customer_number differs from the event''s customer_number'
        WHEN p_event_type = 'customer.merged'
             AND (pg_catalog.jsonb_typeof(p_payload -> 'into') IS DISTINCT FROM 'string'
                  OR pg_catalog.length(p_payload ->> 'into') > 32
                  OR (p_payload ->> 'into') !~ '^[A-Za-z0-9]+$')
            THEN 'into is missing or malformed'
        -- The snapshot's JSON types: one jsonpath test (~3 us a row), then, for a snapshot that
        -- fails it, which field (a function of its own: this one is initialised on every call,
        -- so what is rarely run stays out of it). The lengths of its formatted fields (their
        -- type checks their format).
        WHEN p_event_type = 'customer.upserted'
             AND p_payload @? '$.customer ? (
                    (@.email.type() != "string" && @.email.type() != "null")
                 || (@.first_name.type() != "string" && @.first_name.type() != "null")
                 || (@.infix.type() != "string" && @.infix.type() != "null")
                 || (@.last_name.type() != "string" && @.last_name.type() != "null")
                 || (@.gender.type() != "string" && @.gender.type() != "null")
                 || (@.birth_date.type() != "string" && @.birth_date.type() != "null")
                 || (@.phone.type() != "string" && @.phone.type() != "null")
                 || (@.mobile.type() != "string" && @.mobile.type() != "null")
                 || (@.street.type() != "string" && @.street.type() != "null")
                 || (@.house_number.type() != "number" && @.house_number.type() != "null")
                 || (@.house_number_addition.type() != "string"
                     && @.house_number_addition.type() != "null")
                 || (@.postcode.type() != "string" && @.postcode.type() != "null")
                 || (@.city.type() != "string" && @.city.type() != "null")
                 || (@.country_code.type() != "string" && @.country_code.type() != "null")
                 || (@.loyalty_card.type() != "string" && @.loyalty_card.type() != "null")
                 || (@.home_store.type() != "string" && @.home_store.type() != "null")
                 || (@.customer_group.type() != "string" && @.customer_group.type() != "null")
                 || (@.newsletter_opt_in.type() != "boolean"
                     && @.newsletter_opt_in.type() != "null")
                 || (@.blocked.type() != "boolean" && @.blocked.type() != "null")
                 || (@.updated_at.type() != "string" && @.updated_at.type() != "null"))'
            THEN sync._snapshot_type_defect(p_payload -> 'customer')
        WHEN p_event_type = 'customer.upserted'
             AND pg_catalog.length(p_payload #>> '{customer,birth_date}') > 10
            THEN 'customer.birth_date is longer than 10 characters'
        WHEN p_event_type = 'customer.upserted'
             AND pg_catalog.length(p_payload #>> '{customer,updated_at}') > 35
            THEN 'customer.updated_at is longer than 35 characters'
        -- their formats, before PostgreSQL's date input reads them: it also takes 'today',
        -- 'epoch', 'infinity' and '1/2/2026' (read by the session's DateStyle), which would
        -- convert what tritonX sent into another value. Whether the date exists is the cast's.
        -- (No bounded repeats: each costs microseconds a row.)
        WHEN p_event_type = 'customer.upserted'
             AND (p_payload #>> '{customer,birth_date}')
                 !~ '^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]$'
            THEN 'customer.birth_date is not a date written YYYY-MM-DD'
        WHEN p_event_type = 'customer.upserted'
             AND (p_payload #>> '{customer,updated_at}')
                 !~ ('^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][Tt ][0-9][0-9]:[0-9][0-9]'
                     '(:[0-9][0-9](\.[0-9]+)?)?([Zz]|[+-][0-9][0-9](:?[0-9][0-9])?)$')
            THEN 'customer.updated_at is not an ISO-8601 date and time with a time zone'
    END
    FROM ROWS FROM (pg_catalog.unnest(p_ids), pg_catalog.unnest(p_event_ids),
                    pg_catalog.unnest(p_event_types), pg_catalog.unnest(p_customer_numbers),
                    pg_catalog.unnest(p_versions), pg_catalog.unnest(p_occurred_ats),
                    pg_catalog.unnest(p_payloads))
         AS u (id, p_event_id, p_event_type, p_customer_number, p_version, p_occurred_at,
               p_payload)
$$;

-- The structural defect of one staged event, or NULL when it can be applied
-- (sync._event_defects for one event, not held to a feed page's `seq`).
CREATE OR REPLACE FUNCTION sync.event_defect(
    p_event_id        text,
    p_event_type      text,
    p_customer_number text,
    p_version         integer,
    p_occurred_at     timestamptz,
    p_payload         jsonb
)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.reason
    FROM sync._event_defects(ARRAY[NULL::bigint], ARRAY[p_event_id], ARRAY[p_event_type],
                             ARRAY[p_customer_number], ARRAY[p_version], ARRAY[p_occurred_at],
                             ARRAY[p_payload], false) AS d
$$;

-- A payload reduced to the event's envelope: ids, type, number, version, times, `into` and
-- the reason code. What the engine keeps of an event whose customer is anonymised or deleted.
CREATE OR REPLACE FUNCTION sync.event_envelope(p_payload jsonb)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(p_payload) = 'object' THEN
        coalesce((SELECT pg_catalog.jsonb_object_agg(e.key, e.value)
                  FROM pg_catalog.jsonb_each(p_payload) AS e
                  WHERE e.key IN ('seq', 'event_id', 'type', 'customer_number', 'version',
                                  'occurred_at', 'into', 'reason_code')),
                 '{}'::jsonb)
    END
$$;

-- The first snapshot field whose value does not fit sync.customer_snapshot (longer than the
-- contract's maximum, or not of its type: a date that does not exist), or NULL. Only called
-- for an event whose upsert failed, so its per-field subtransactions are rare.
CREATE OR REPLACE FUNCTION sync.snapshot_defect(p_snapshot jsonb)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    field record;
BEGIN
    PERFORM pg_catalog.jsonb_populate_record(NULL::sync.customer_snapshot, p_snapshot);
    RETURN NULL;
EXCEPTION WHEN data_exception THEN
    FOR field IN
        SELECT a.attname, a.atttypmod
        FROM pg_catalog.pg_attribute AS a
        JOIN pg_catalog.pg_type AS t ON t.typrelid = a.attrelid
        WHERE t.oid = 'sync.customer_snapshot'::pg_catalog.regtype AND a.attnum > 0
        ORDER BY a.attnum
    LOOP
        BEGIN
            PERFORM pg_catalog.jsonb_populate_record(
                NULL::sync.customer_snapshot,
                pg_catalog.jsonb_build_object(field.attname, p_snapshot -> field.attname));
        EXCEPTION
            WHEN string_data_right_truncation THEN
                -- varchar(n): atttypmod is n + 4
                RETURN pg_catalog.format('customer.%s is longer than %s characters',
                                         field.attname, field.atttypmod - 4);
            WHEN data_exception THEN
                RETURN pg_catalog.format('customer.%s has a value that does not fit its type',
                                         field.attname);
        END;
    END LOOP;
    RETURN 'customer snapshot does not fit its type';
END
$$;

-- The defect of a record kept as text because jsonb cannot hold it (sync.inbox.raw: it holds a
-- JSON \u0000, or a lone surrogate such as \ud800): names the snapshot field that holds it
-- where one does, never the value.
CREATE OR REPLACE FUNCTION sync.raw_defect(p_raw text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    field text;
BEGIN
    -- U+0001 stands in for the character only to find the field; the record stays as it came
    SELECT e.key INTO field
    FROM pg_catalog.jsonb_each_text(
             pg_catalog.regexp_replace(p_raw, '\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})',
                                       '\\u0001', 'g')::jsonb -> 'customer') AS e
    WHERE pg_catalog.strpos(e.value, pg_catalog.chr(1)) > 0
    ORDER BY e.key
    LIMIT 1;
    RETURN pg_catalog.format(
        '%s holds \u0000 or a lone surrogate, which the contract does not allow; the record is '
        'kept as text in sync.inbox.raw', coalesce('customer.' || field, 'the record'));
EXCEPTION WHEN data_exception THEN
    RETURN 'the record holds \u0000 or a lone surrogate, which the contract does not allow; it '
           'is kept as text in sync.inbox.raw';
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Apply steps (private)
-- ---------------------------------------------------------------------------------------------

-- Dead-letter the structurally defective rows of a batch. A re-delivery of an event that is
-- already decided or dead-lettered is a duplicate, not a second dead letter.
CREATE OR REPLACE FUNCTION sync._dead_letter_defects(p_first bigint, p_last bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
-- a page's payloads as arrays (up to ~8 MB at 10,000 events) in memory, not spilled to disk
SET work_mem = '64MB'
AS $$
BEGIN
    -- the records of a page staged by sync.stage_page are read from the session's page
    PERFORM sync.open_page();
    -- one call of sync._event_defects for the whole page (a call per row costs ~10 us); a
    -- record kept as text (no payload) is a defect there too, named by sync.raw_defect
    INSERT INTO sync.dead_letter (inbox_id, event_id, reason)
    SELECT DISTINCT ON (coalesce(i.event_id, i.id::text)) i.id, i.event_id,
           CASE WHEN r.raw IS NOT NULL AND r.payload IS NULL THEN sync.raw_defect(r.raw)
                ELSE d.reason
           END
    FROM (SELECT pg_catalog.array_agg(b.id) AS ids, pg_catalog.array_agg(b.event_id) AS event_ids,
                 pg_catalog.array_agg(b.event_type) AS event_types,
                 pg_catalog.array_agg(b.customer_number) AS numbers,
                 pg_catalog.array_agg(b.version) AS versions,
                 pg_catalog.array_agg(b.occurred_at) AS occurred_ats,
                 pg_catalog.array_agg(coalesce(b.payload, (SELECT s.payload
                                                           FROM pg_temp.syncctl_page AS s
                                                           WHERE s.id = b.id)))
                     AS payloads
          FROM sync.inbox AS b
          WHERE b.id BETWEEN p_first AND p_last) AS page
    -- a feed page's records must carry their seq: sync.stage_page says whether this is one
    CROSS JOIN LATERAL sync._event_defects(page.ids, page.event_ids, page.event_types,
                                           page.numbers, page.versions, page.occurred_ats,
                                           page.payloads,
                                           coalesce(pg_catalog.current_setting(
                                                        'syncctl.feed_page', true), '') = 'on')
                       AS d
    JOIN sync.inbox AS i ON i.id = d.id
    -- the record or its text, from the session's page when the inbox does not keep it
    CROSS JOIN LATERAL (
        SELECT coalesce(i.payload, s.payload) AS payload, coalesce(i.raw, s.raw) AS raw
        FROM (SELECT) AS one
        LEFT JOIN pg_temp.syncctl_page AS s ON s.id = i.id) AS r
    WHERE d.reason IS NOT NULL
      -- probes for the defective rows only (LIMIT 1: never a scan of the whole audit)
      AND (i.event_id IS NULL
           OR ((SELECT 1 FROM sync.audit AS a WHERE a.event_id = i.event_id LIMIT 1) IS NULL
               AND (SELECT 1 FROM sync.dead_letter AS x WHERE x.event_id = i.event_id LIMIT 1)
                   IS NULL))
    ORDER BY coalesce(i.event_id, i.id::text), i.id
    ON CONFLICT (inbox_id) DO NOTHING;
END
$$;

DROP FUNCTION IF EXISTS sync._dead_letter_bad_snapshots(bigint, bigint);

-- Check now every constraint deferred to commit (a shop may declare its own DEFERRABLE
-- INITIALLY DEFERRED constraints): a violation then raises inside the event's apply, where it is
-- caught and dead-lettered, instead of at commit, where the page would fail on every retry.
-- syncctl's own deferred check (a consent may only leave a customer that is gone) stays
-- deferred: a merge re-points consents before it removes the old customer.
CREATE OR REPLACE FUNCTION sync._check_deferred_constraints()
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SET CONSTRAINTS ALL IMMEDIATE;
    SET CONSTRAINTS gdpr.consent_left_a_gone_customer DEFERRED;
END
$$;

-- Apply the upserts of a batch set-based: those with ids p_first..p_last, or of them only the
-- run p_ids when given. Per customer only the highest new version is written; lower ones are
-- recorded as superseded, versions at or below the applied one as stale, and a customer that
-- is tombstoned or merged away is never written again.
--
-- Three statements: the decisions (existence and version read from syncmap.customer_map, the
-- view generated from the active mapping), the write of the upserts they let through (one call
-- of the generated syncmap.write_customers, given arrays), then the audit from the decisions.
-- Joining the write's RETURNING back to the decisions in one statement made the planner pick a
-- nested loop over two CTEs (quadratic in the batch: 2.2 s for 5,000 rows). The write's guard
-- makes a concurrent writer of the same customer visible as a count mismatch, which is raised
-- as a serialization failure: the caller retries the whole page.
CREATE OR REPLACE FUNCTION sync._apply_upserts(p_first bigint, p_last bigint, p_ids bigint[])
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
-- a page's payloads as arrays (up to ~8 MB at 10,000 events) in memory, not spilled to disk
SET work_mem = '64MB'
-- each page's decision planned for its own range, never a session's generic plan
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    inbox_ids    bigint[];
    event_ids    text[];
    numbers      text[];
    versions     integer[];
    skip_reasons text[];
    new_flags    boolean[];
    expected     bigint;
    expected_new bigint;
    written      bigint;
    written_new  bigint;
    w_numbers    text[];
    w_versions   integer[];
    w_snapshots  jsonb[];
    w_new        boolean[];
    prior_source text;
    -- whether the audit shows the key (sync._shown_key): asked once a page, not once a row
    shown_keys   boolean := sync._shown_key('') IS NOT NULL;
    -- the inbox rows to read: a run's own span of the page (the runs between a page's merges,
    -- anonymisations and deletes are short), not the whole page once per run
    low          bigint := greatest(p_first, (SELECT min(x) FROM pg_catalog.unnest(p_ids) AS x));
    high         bigint := least(p_last, (SELECT max(x) FROM pg_catalog.unnest(p_ids) AS x));
BEGIN
    IF pg_catalog.to_regprocedure(
           'syncmap.write_customers(text[], integer[], jsonb[], boolean[])') IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY061',
            MESSAGE = 'no mapping is installed: install one with syncctl mapping install';
    END IF;
    -- A record is read from the inbox, or from the session's page when the inbox does not keep
    -- it (sync.stage_page without keep_payloads, sql/31_feed_page.sql).
    PERFORM sync.open_page();
    -- Every lookup is one index probe per staged row (a scalar or LATERAL subquery with LIMIT
    -- 1, which the planner cannot turn into a join): a hash join would scan the whole audit, or
    -- the whole customer table, on every page, a cost growing with the tables, not the page.
    -- The sorts carry keys only; the snapshot is read by inbox id for the events written.
    WITH staged AS (
        SELECT DISTINCT ON (i.event_id) i.id, i.event_id, i.customer_number, i.version,
               (coalesce(i.payload, (SELECT p.payload FROM pg_temp.syncctl_page AS p
                                     WHERE p.id = i.id)) ? 'customer') AS has_snapshot
        FROM sync.inbox AS i
        WHERE i.id BETWEEN low AND high
          -- a hashed subplan: no per-row array scan however long the run
          AND (p_ids IS NULL OR i.id IN (SELECT pg_catalog.unnest(p_ids)))
          AND i.event_type = 'customer.upserted'
          AND i.event_id IS NOT NULL
          AND (SELECT 1 FROM sync.audit AS a WHERE a.event_id = i.event_id LIMIT 1) IS NULL
          AND (SELECT 1 FROM sync.dead_letter AS x WHERE x.event_id = i.event_id LIMIT 1)
              IS NULL
          -- defective rows are dead letters already (sync._dead_letter_defects, or the
          -- retry's own check), so no second validation here
        ORDER BY i.event_id, i.id
    ),
    decided AS (
        SELECT s.*,
               CASE
                   WHEN t.tombstoned THEN 'tombstone'
                   WHEN r.survivor_number IS NOT NULL THEN 'merged_away'
                   -- scrubbed while the page applied (an erasure earlier in it): never a
                   -- write of NULLs
                   WHEN s.has_snapshot IS NOT TRUE THEN 'no_snapshot'
                   WHEN s.version <= c.version THEN 'stale'
                   WHEN pg_catalog.row_number() OVER (
                            PARTITION BY s.customer_number ORDER BY s.version DESC, s.id) > 1
                       THEN 'superseded'
               END AS skip_reason,
               c.customer_key IS NULL AS is_new,
               (t.tombstoned OR coalesce(r.tombstoned, false)) AS erased
        FROM staged AS s
        LEFT JOIN LATERAL (
            SELECT m.customer_key, m.version FROM syncmap.customer_map AS m
            WHERE m.customer_number = s.customer_number LIMIT 1) AS c ON true
        CROSS JOIN LATERAL (
            SELECT EXISTS (SELECT FROM sync.tombstone AS x
                           WHERE x.customer_number = s.customer_number) AS tombstoned) AS t
        LEFT JOIN LATERAL (
            SELECT d.survivor_number,
                   EXISTS (SELECT FROM sync.tombstone AS x
                           WHERE x.customer_number = d.survivor_number) AS tombstoned
            FROM sync.redirect AS d WHERE d.old_number = s.customer_number LIMIT 1) AS r ON true
    ),
    scrubbed AS (
        UPDATE sync.inbox AS i
        SET payload = sync.event_envelope(i.payload)
        FROM decided AS d
        WHERE i.id = d.id AND d.erased
    )
    SELECT pg_catalog.array_agg(d.id), pg_catalog.array_agg(d.event_id),
           pg_catalog.array_agg(d.customer_number), pg_catalog.array_agg(d.version),
           pg_catalog.array_agg(d.skip_reason), pg_catalog.array_agg(d.is_new),
           count(*) FILTER (WHERE d.skip_reason IS NULL),
           count(*) FILTER (WHERE d.skip_reason IS NULL AND d.is_new),
           pg_catalog.array_agg(d.customer_number) FILTER (WHERE d.skip_reason IS NULL),
           pg_catalog.array_agg(d.version) FILTER (WHERE d.skip_reason IS NULL),
           pg_catalog.array_agg((SELECT coalesce(i.payload,
                                                 (SELECT p.payload
                                                  FROM pg_temp.syncctl_page AS p
                                                  WHERE p.id = i.id)) -> 'customer'
                                 FROM sync.inbox AS i
                                 WHERE i.id = d.id)) FILTER (WHERE d.skip_reason IS NULL),
           pg_catalog.array_agg(d.is_new) FILTER (WHERE d.skip_reason IS NULL)
    INTO inbox_ids, event_ids, numbers, versions, skip_reasons, new_flags,
         expected, expected_new, w_numbers, w_versions, w_snapshots, w_new
    FROM decided AS d;

    -- the write: generated from the active mapping (sql/16_mapping_compile.sql); the guard
    -- (an older version only) is applied again there, against a concurrent writer
    written := 0;
    written_new := 0;
    IF expected > 0 THEN
        -- tritonX's consent decisions are recorded from the snapshots (below): the customer
        -- table's local-consent triggers see this write as tritonX's by gdpr.consent_source
        prior_source := gdpr._consent_source();
        PERFORM gdpr._set_consent_source('tritonx');
        SELECT w.rows_written, w.rows_created INTO written, written_new
        FROM syncmap.write_customers(w_numbers, w_versions, w_snapshots, w_new) AS w;
        PERFORM gdpr._set_consent_source(prior_source);
    END IF;

    IF (written, written_new) IS DISTINCT FROM (expected, expected_new) THEN
        -- A concurrent writer leaves the row at its version or a newer one: the page is staged
        -- again and those events are then stale. A row still older than its event (or absent)
        -- was not written at all: a BEFORE trigger of the shop's returned NULL. That is the
        -- events' own problem, and retrying would never end: SY031 makes them dead letters.
        -- (a customer decided new that exists now was created by a concurrent writer)
        IF EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest(numbers), pg_catalog.unnest(versions),
                                          pg_catalog.unnest(skip_reasons),
                                          pg_catalog.unnest(new_flags)) AS d(n, v, r, is_new)
                   WHERE d.r IS NULL
                     AND NOT EXISTS (SELECT FROM syncmap.customer_map AS c
                                     WHERE c.customer_number = d.n
                                       AND (d.is_new OR c.version >= d.v))) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'SY031',
                MESSAGE = pg_catalog.format(
                    'the customer row was not written: a trigger on %s skipped it',
                    (SELECT m.relation FROM sync.mapped_customer() AS m));
        END IF;
        RAISE EXCEPTION 'a concurrent writer changed % customers of this batch; retry it',
                        expected - written
            USING ERRCODE = 'serialization_failure';
    END IF;
    -- constraints of the shop's that are deferred to commit are checked now, where a violation
    -- is this run's and can be isolated, not at commit, where it would fail every retry
    PERFORM sync._check_deferred_constraints();
    IF expected > 0 THEN
        PERFORM gdpr._record_tritonx_consents(w_numbers, w_snapshots);
    END IF;

    INSERT INTO sync.audit (actor, action, outcome, event_id, inbox_id, customer_number,
                            customer_id, version, reason, customer_key)
    SELECT 'tritonx', 'customer.upserted',
           CASE WHEN d.skip_reason IS NULL THEN 'applied' ELSE 'skipped' END,
           d.event_id, d.inbox_id, d.customer_number, k.customer_id,
           d.version,
           CASE
               WHEN d.skip_reason IS NOT NULL THEN d.skip_reason
               WHEN d.is_new THEN 'created'
               ELSE 'updated'
           END,
           CASE WHEN shown_keys THEN k.customer_key END
    FROM ROWS FROM (pg_catalog.unnest(inbox_ids), pg_catalog.unnest(event_ids),
                    pg_catalog.unnest(numbers), pg_catalog.unnest(versions),
                    pg_catalog.unnest(skip_reasons), pg_catalog.unnest(new_flags))
         AS d(inbox_id, event_id, customer_number, version, skip_reason, is_new)
    -- one probe for both: the customer applied (a skipped event names no customer)
    LEFT JOIN LATERAL (
        SELECT c.customer_id, c.customer_key::text AS customer_key
        FROM syncmap.customer_map AS c
        WHERE d.skip_reason IS NULL AND c.customer_number = d.customer_number
        LIMIT 1
    ) AS k ON true;
END
$$;

-- One run of consecutive upserts (all upserts of the range when p_ids is NULL), in one
-- statement: the fast path. Should the statement fail for a reason that belongs to events
-- (a value that does not fit its column, a constraint, index or trigger of the shop's, a
-- missing privilege), the run is bisected in seq order, each half in its own subtransaction,
-- down to the single events that fail: those become dead letters with a reason built from the
-- error's SQLSTATE, table and constraint (sync._error_without_values), never from its message or
-- detail, and everything else applies. A single upsert a unique index of the shop's refused is
-- first offered to sync._adopt_on_arrival (sql/72_link_repair.sql). The error is caught here,
-- so neither the client nor the server log sees it. A transient error
-- (sync._error_without_values NULL: serialisation, deadlock, lock time-out, resources,
-- shutdown) fails the page, which the controller retries.
CREATE OR REPLACE FUNCTION sync._apply_upsert_run(p_first bigint, p_last bigint, p_ids bigint[])
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ids         bigint[] := p_ids;
    half        integer;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    err_context text;
    why         text;
BEGIN
    PERFORM sync._apply_upserts(p_first, p_last, ids);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                            constraint_ = CONSTRAINT_NAME, err_context = PG_EXCEPTION_CONTEXT;
    why := sync._error_without_values(state, message, schema_name, table_name, constraint_,
                                      err_context);
    IF why IS NULL THEN
        RAISE;
    END IF;
    IF ids IS NULL THEN
        ids := ARRAY(SELECT i.id FROM sync.inbox AS i
                     WHERE i.id BETWEEN p_first AND p_last
                       AND i.event_type = 'customer.upserted'
                     ORDER BY i.seq, i.id);
    END IF;
    IF pg_catalog.cardinality(ids) > 1 THEN
        half := pg_catalog.cardinality(ids) / 2;
        PERFORM sync._apply_upsert_run(p_first, p_last, ids[1:half]);
        PERFORM sync._apply_upsert_run(p_first, p_last, ids[half + 1:]);
    ELSIF pg_catalog.cardinality(ids) = 1 THEN
        -- tritonX's new customer refused by a unique index of the shop's (its e-mail's): the
        -- one unlinked local customer with tritonX's e-mail is adopted instead, if there is one
        IF state = '23505' AND sync._adopt_on_arrival(p_first, p_last, ids[1]) THEN
            RETURN;
        END IF;
        PERFORM sync.open_page();  -- if the failed attempt made it, that was rolled back
        INSERT INTO sync.dead_letter (inbox_id, event_id, reason)
        SELECT i.id, i.event_id,
               -- a value that does not fit its type (or a domain's CHECK or NOT NULL):
               -- name the field
               coalesce(CASE WHEN state LIKE '22%' OR state IN ('23514', '23502')
                             THEN coalesce(sync.snapshot_defect(r.payload -> 'customer'),
                                           syncmap.snapshot_defect(r.payload -> 'customer'))
                        END,
                        why)
        FROM sync.inbox AS i
        CROSS JOIN LATERAL (
            SELECT coalesce(i.payload, (SELECT p.payload FROM pg_temp.syncctl_page AS p
                                        WHERE p.id = i.id)) AS payload) AS r
        WHERE i.id = ids[1]
        ON CONFLICT (inbox_id) DO NOTHING;
    END IF;
END
$$;

-- Deliveries in the batch that carry a snapshot of a customer who is anonymised or deleted (or
-- merged into one) keep only their envelope: a re-delivery of an old event, a duplicate or a
-- dead letter must not bring the data back into the database. The number is taken from the
-- snapshot too, for a record whose own customer_number was malformed.
CREATE OR REPLACE FUNCTION sync._scrub_erased_deliveries(p_first bigint, p_last bigint)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE sync.inbox AS i
    SET payload = sync.event_envelope(i.payload), raw = NULL
    FROM (
        SELECT b.id, coalesce(b.customer_number, b.payload -> 'customer' ->> 'customer_number')
                   AS number
        FROM sync.inbox AS b
        WHERE b.id BETWEEN p_first AND p_last AND (b.payload ? 'customer' OR b.raw IS NOT NULL)
    ) AS d
    WHERE i.id = d.id
      -- two index probes (one condition with OR would compare each row with every tombstone)
      AND (EXISTS (SELECT FROM sync.tombstone AS t WHERE t.customer_number = d.number)
           OR EXISTS (SELECT FROM sync.tombstone AS t
                      WHERE t.customer_number = (SELECT r.survivor_number FROM sync.redirect AS r
                                                 WHERE r.old_number = d.number)))
$$;

-- Apply a batch that holds merges, anonymisations or deletes (`singles`), in segments: each
-- single on its own, in seq order (then inbox id), and the upserts between two of them as one
-- run (numbered by how many singles precede them). With p_together, the upserts of numbers no
-- single of the batch names (as its customer or as the survivor, after redirects) go first, as
-- one run (-2): they commute with the rest, so the batch is one statement of upserts and the
-- singles with the few upserts around them, however many singles it holds. With p_together
-- too, the anonymisations and deletes whose order does not matter are applied as one set (-1,
-- sync._apply_erasures): those whose number no other single of the batch names and whose
-- customer shares no row it points to (an address) with another customer a single names; a
-- set customer's upserts before its event join the first run, those after it the run after the
-- set (where a tombstone skips them), as in feed order. The setting
-- syncctl.apply_erasures_together = off applies every single on its own (to compare).
-- p_unbuilt: why the compiled moves could not be made (the singles then become dead letters
-- saying so), or NULL.
CREATE OR REPLACE FUNCTION sync._apply_segments(
    p_first bigint, p_last bigint, p_together boolean, p_unbuilt text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    segment record;
    use_set boolean := p_together AND p_unbuilt IS NULL
                       AND pg_catalog.current_setting('syncctl.apply_erasures_together', true)
                           IS DISTINCT FROM 'off';
    numbers text[];
    sharing text[];
    shared  text[] := '{}';
BEGIN
    IF use_set THEN
        -- the numbers the singles name, after redirects, whose customers point to a row
        -- another of them points to: they go one by one
        numbers := ARRAY(
            SELECT DISTINCT coalesce(r.survivor_number, n.number)
            FROM sync.inbox AS i
            CROSS JOIN LATERAL (VALUES (i.customer_number),
                                       (CASE WHEN i.event_type = 'customer.merged'
                                             THEN i.payload ->> 'into' END)) AS n (number)
            LEFT JOIN sync.redirect AS r ON r.old_number = n.number
            WHERE i.id BETWEEN p_first AND p_last AND n.number IS NOT NULL
              AND i.event_type IN ('customer.merged', 'customer.anonymized',
                                   'customer.deleted'));
        sharing := syncmap.sharing_customers(
            ARRAY(SELECT syncmap.key_of(n) FROM pg_catalog.unnest(numbers) AS n));
        shared := ARRAY(SELECT n FROM pg_catalog.unnest(numbers) AS n
                        WHERE syncmap.key_of(n) = ANY (sharing));
    END IF;
    FOR segment IN
        WITH ordered AS (
            SELECT i.id, i.seq, i.event_id, i.event_type,
                   (i.event_type IN ('customer.merged', 'customer.anonymized',
                                     'customer.deleted')
                    AND NOT EXISTS (SELECT FROM sync.dead_letter AS d
                                    WHERE d.inbox_id = i.id)) AS single,
                   coalesce(rc.survivor_number, i.customer_number) AS number,
                   CASE WHEN i.event_type = 'customer.merged'
                        THEN coalesce(rs.survivor_number, i.payload ->> 'into') END AS survivor
            FROM sync.inbox AS i
            LEFT JOIN sync.redirect AS rc ON rc.old_number = i.customer_number
            LEFT JOIN sync.redirect AS rs
                ON i.event_type = 'customer.merged' AND rs.old_number = i.payload ->> 'into'
            WHERE i.id BETWEEN p_first AND p_last
        ),
        named AS (
            SELECT v.number, count(*) AS times
            FROM (SELECT o.number FROM ordered AS o WHERE o.single
                  UNION ALL
                  SELECT o.survivor FROM ordered AS o
                  WHERE o.single AND o.survivor IS NOT NULL) AS v
            GROUP BY v.number
        ),
        erased AS (
            SELECT o.id, o.seq, o.number
            FROM ordered AS o
            JOIN named AS v ON v.number = o.number
            WHERE use_set AND o.single AND v.times = 1
              AND o.event_type IN ('customer.anonymized', 'customer.deleted')
              AND NOT o.number = ANY (shared)
              -- a second delivery of the event in the batch is a duplicate of the first
              AND NOT EXISTS (SELECT FROM ordered AS d
                              WHERE d.event_id = o.event_id AND d.id <> o.id)
        ),
        numbered AS (
            SELECT o.id, o.seq,
                   CASE WHEN e.id IS NOT NULL THEN 'set'
                        WHEN o.single THEN 'single'
                        ELSE 'upserts' END AS kind,
                   CASE WHEN e.id IS NOT NULL THEN -1
                        WHEN s.id IS NOT NULL
                            THEN CASE WHEN (o.seq, o.id) < (s.seq, s.id) THEN -2 ELSE 0 END
                        WHEN NOT p_together OR o.single
                             OR o.number IN (SELECT v.number FROM named AS v)
                            THEN count(*) FILTER (WHERE o.single AND e.id IS NULL)
                                 OVER (ORDER BY o.seq, o.id)
                        ELSE -2 END AS run
            FROM ordered AS o
            LEFT JOIN erased AS e ON e.id = o.id
            LEFT JOIN erased AS s ON NOT o.single AND s.number = o.number
        )
        SELECT n.run, n.kind, pg_catalog.array_agg(n.id ORDER BY n.seq, n.id) AS ids
        FROM numbered AS n
        GROUP BY n.run, n.kind
        ORDER BY n.run, n.kind = 'upserts'
    LOOP
        IF segment.kind = 'single' AND p_unbuilt IS NOT NULL THEN
            INSERT INTO sync.dead_letter (inbox_id, event_id, reason)
            SELECT i.id, i.event_id, p_unbuilt
            FROM sync.inbox AS i
            WHERE i.id = segment.ids[1]
              AND NOT EXISTS (SELECT FROM sync.audit AS a WHERE a.event_id = i.event_id)
              AND NOT EXISTS (SELECT FROM sync.dead_letter AS d WHERE d.event_id = i.event_id)
            ON CONFLICT (inbox_id) DO NOTHING;
        ELSIF segment.kind = 'set' THEN
            PERFORM sync._apply_erasures(segment.ids);
        ELSIF segment.kind = 'single' THEN
            PERFORM sync._apply_event(segment.ids[1]);
        ELSE
            PERFORM sync._apply_upsert_run(p_first, p_last, segment.ids);
        END IF;
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Apply the staged rows sync.inbox.id BETWEEN p_first AND p_last and return what became of
-- them: {"applied": n, "skipped": n, "dead_letter": n, "duplicate": n}. Every row is decided
-- when it returns (never pending). Idempotent: applying a range again decides nothing twice.
-- A batch with merges, anonymisations or deletes is first applied with the upserts of the
-- customers they do not name together (sync._apply_segments); should any event of it become
-- a dead letter, that attempt is rolled back and the batch applied in feed order, where an
-- event's outcome may depend on another customer's (a unique e-mail address of the shop's
-- that an anonymisation frees, or that the first of two new customers takes).
CREATE OR REPLACE FUNCTION sync.apply_inbox(p_first bigint, p_last bigint)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    summary     jsonb;
    moves       boolean;
    unbuilt     text;
    rejected    bigint;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    err_context text;
BEGIN
    PERFORM sync._dead_letter_defects(p_first, p_last);
    moves := EXISTS (
        SELECT FROM sync.inbox AS i
        WHERE i.id BETWEEN p_first AND p_last
          AND i.event_type IN ('customer.merged', 'customer.anonymized', 'customer.deleted'));
    -- the compiled code, current for the whole batch: the write made from today's catalog
    -- (sync._write_current) and, for a batch with merges, anonymisations or deletes, the moves
    -- (sql/57_moves_compile.sql). Should they fail to build, the batch's merges,
    -- anonymisations and deletes become dead letters saying so, the write stays as it is
    -- (`mapping check` says it is stale), and the upserts apply.
    BEGIN
        IF moves THEN
            PERFORM sync._moves_current();
        ELSE
            PERFORM sync._write_current();
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                                constraint_ = CONSTRAINT_NAME, err_context = PG_EXCEPTION_CONTEXT;
        unbuilt := sync._error_without_values(state, message, schema_name, table_name,
                                              constraint_, err_context);
        IF unbuilt IS NULL THEN
            RAISE;
        END IF;
        unbuilt := 'the compiled moves could not be made: ' || unbuilt;
    END;
    IF NOT moves THEN
        -- the common batch: upserts only, one statement
        PERFORM sync._apply_upsert_run(p_first, p_last, NULL);
    ELSE
        SELECT count(*) INTO rejected FROM sync.dead_letter AS d
        WHERE d.inbox_id BETWEEN p_first AND p_last;
        BEGIN
            PERFORM sync._apply_segments(p_first, p_last, true, unbuilt);
            IF (SELECT count(*) FROM sync.dead_letter AS d
                WHERE d.inbox_id BETWEEN p_first AND p_last) > rejected THEN
                RAISE EXCEPTION USING ERRCODE = 'SY098', MESSAGE = 'apply in feed order';
            END IF;
        EXCEPTION WHEN SQLSTATE 'SY098' THEN
            PERFORM sync._apply_segments(p_first, p_last, false, unbuilt);
        END;
    END IF;
    PERFORM sync._scrub_erased_deliveries(p_first, p_last);
    SELECT pg_catalog.jsonb_object_agg(s.state, s.events) INTO summary
    FROM (
        SELECT st.state, count(*) AS events
        FROM sync._range_status(p_first, p_last) AS st
        GROUP BY st.state
    ) AS s;
    IF summary ? 'pending' THEN
        -- Every staged event is decided in its page's transaction. Nothing above should leave
        -- one pending; should it happen, the event becomes a dead letter an operator can
        -- retry, rather than a row the cursor has moved past for ever.
        INSERT INTO sync.dead_letter (inbox_id, event_id, reason)
        SELECT st.inbox_id, st.event_id, 'left undecided by the page apply; retry it'
        FROM sync._range_status(p_first, p_last) AS st
        WHERE st.state = 'pending'
        ON CONFLICT (inbox_id) DO NOTHING;
        summary := sync._add_count(summary - 'pending', 'dead_letter',
                                   (summary ->> 'pending')::bigint);
    END IF;
    RETURN summary;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------

-- What became of every staged row: applied, skipped, dead_letter, duplicate (another delivery
-- of the same event was decided or dead-lettered) or pending. Each row's audit and dead letters
-- are found by index probes (LIMIT 1 subqueries, which the planner cannot turn into a join): a
-- range of inbox ids (a page's summary, sync._range_status) costs its own rows, not a hash join
-- over the whole audit, whose cost grew with the audit (3.4-5.9 us an event at 100k audited);
-- the reason is looked up only when it is selected.
CREATE OR REPLACE VIEW sync.inbox_status AS
SELECT i.id AS inbox_id,
       i.source,
       i.seq,
       i.event_id,
       i.event_type,
       i.customer_number,
       i.version,
       i.received_at,
       CASE
           WHEN a.inbox_id = i.id THEN a.outcome
           -- a malformed event without a usable id, decided by hand (discarded)
           WHEN own.outcome IS NOT NULL THEN own.outcome
           WHEN EXISTS (SELECT FROM sync.dead_letter AS dl WHERE dl.inbox_id = i.id)
               THEN 'dead_letter'
           WHEN a.id IS NOT NULL
                OR EXISTS (SELECT FROM sync.dead_letter AS x WHERE x.event_id = i.event_id)
               THEN 'duplicate'
           ELSE 'pending'
       END AS state,
       CASE
           WHEN a.inbox_id = i.id THEN a.reason
           WHEN own.outcome IS NOT NULL THEN own.reason
           ELSE (SELECT dl.reason FROM sync.dead_letter AS dl WHERE dl.inbox_id = i.id)
       END AS reason
FROM sync.inbox AS i
LEFT JOIN LATERAL (
    SELECT a.id, a.inbox_id, a.outcome, a.reason FROM sync.audit AS a
    WHERE a.event_id = i.event_id LIMIT 1) AS a ON true
LEFT JOIN LATERAL (
    SELECT o.outcome, o.reason FROM sync.audit AS o
    WHERE o.inbox_id = i.id AND o.event_id IS NULL AND a.id IS NULL LIMIT 1) AS own ON true;

-- The state of the inbox rows p_first..p_last (a page's summary, the metrics' reading of the
-- events not decided): sync.inbox_status for that range.
CREATE OR REPLACE FUNCTION sync._range_status(p_first bigint, p_last bigint)
RETURNS TABLE (inbox_id bigint, event_id text, state text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.inbox_id, s.event_id, s.state FROM sync.inbox_status AS s
    WHERE s.inbox_id BETWEEN p_first AND p_last
$$;

-- ---------------------------------------------------------------------------------------------
-- Triggers
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION sync._inbox_apply_staged()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    first_id bigint;
    last_id  bigint;
BEGIN
    SELECT min(s.id), max(s.id) INTO first_id, last_id FROM staged AS s;
    IF first_id IS NOT NULL THEN
        -- the loader reads the summary back in the same transaction
        PERFORM pg_catalog.set_config('syncctl.last_apply',
                                      sync.apply_inbox(first_id, last_id)::text, true);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER inbox_apply_staged
    AFTER INSERT ON sync.inbox
    REFERENCING NEW TABLE AS staged
    FOR EACH STATEMENT
    EXECUTE FUNCTION sync._inbox_apply_staged();

CREATE OR REPLACE FUNCTION sync._audit_is_append_only()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'sync.audit is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE OR REPLACE TRIGGER audit_is_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON sync.audit
    FOR EACH STATEMENT
    EXECUTE FUNCTION sync._audit_is_append_only();
