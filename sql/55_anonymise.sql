-- Anonymising and deleting customers, from the feed (customer.anonymized, customer.deleted),
-- from the back office and by hand, on the mapped customer table (any schema and key type).
-- Irreversible: personal data in the customer row and in every customer-linked table is
-- overwritten per the PII registry (sql/40_registry.sql), the rows of delete_rows tables go,
-- transactions (orders, amounts, dates) stay, a row the customer points to (an address) is
-- scrubbed when only this customer uses it and detached otherwise (sql/52_scrub_rows.sql); a
-- tombstone makes every later event for the number a recorded no-op; the copies the engine
-- holds (inbox payloads of the number and of the numbers merged into it, merge snapshots naming
-- it as `into`, its dead letters) are scrubbed in the same transaction
-- (sql/53_scrub_copies.sql). A delete with bookkeeping rows (orders) is an anonymisation;
-- without, the customer and all its linked rows are removed. Inside, a customer is named by
-- its number and, for row work, by its key as text (syncmap.key_of); the public functions
-- keep their signatures.
-- A local anonymisation (back office, by hand) queues a sync.outbox event for tritonX in the
-- same transaction. Audit rows carry ids, numbers, counts and reason codes, never data.
-- Re-runnable.
--
-- SQLSTATEs: SY008 number was merged away, SY020 customer unknown (not local; a back-office id
-- when the mapped key is not an integer), SY021 already anonymised or deleted, SY022 PII
-- registry incomplete (refused: fails closed), SY023 reason code or actor not an identifier,
-- SY061 no mapping installed.

-- ---------------------------------------------------------------------------------------------
-- Decisions: refusals, the anonymisation itself, plans
-- ---------------------------------------------------------------------------------------------

-- Why the customer number cannot be anonymised by hand, as (SQLSTATE, reason), or NULLs.
-- The feed turns the first three into recorded no-ops (see sync._anonymise), and leaves the
-- fourth, the registry's completeness, to the compiled erasure (p_registry false).
DROP FUNCTION IF EXISTS sync.anonymise_refusal(text);
CREATE OR REPLACE FUNCTION sync.anonymise_refusal(
    p_number text, p_registry boolean DEFAULT true, OUT code text, OUT reason text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    buried   text;
    survivor text;
    missing  bigint;
BEGIN
    SELECT t.kind INTO buried FROM sync.tombstone AS t WHERE t.customer_number = p_number;
    SELECT r.survivor_number INTO survivor FROM sync.redirect AS r WHERE r.old_number = p_number;
    IF buried IS NOT NULL THEN
        code := 'SY021';
        reason := pg_catalog.format('customer %s is already %s', p_number, buried);
    ELSIF survivor IS NOT NULL THEN
        code := 'SY008';
        reason := pg_catalog.format('customer %s was merged into %s: anonymise the survivor',
                                    p_number, survivor);
    ELSIF syncmap.key_of(p_number) IS NULL THEN
        code := 'SY020';
        reason := pg_catalog.format('customer %s is not a local customer', p_number);
    ELSIF p_registry THEN
        missing := sync._unclassified_count();
        IF missing > 0 THEN
            code := 'SY022';
            reason := pg_catalog.format(
                'anonymisation refused: %s column(s) have no PII strategy', missing);
        END IF;
    END IF;
END
$$;

-- What the feed decides for an anonymisation (p_delete false) or delete of a customer number:
-- kind NULL when it is a recorded no-op, skipped for the reason why (a tombstoned number, a
-- merged-away one: p_refusal from sync.anonymise_refusal; with p_held_only a customer whose
-- tritonX data syncctl does not hold, p_held); else the tombstone's kind (a delete of a local
-- customer p_key without bookkeeping rows removes it) and the audit's reason, with the reason
-- code when it is an identifier. One decision for one event (sync._anonymise) and for a set
-- (sync._anonymise_numbers).
CREATE OR REPLACE FUNCTION sync._erasure_decision(
    p_refusal text, p_held_only boolean, p_held boolean, p_key text, p_delete boolean,
    p_bookkeeping boolean, p_reason_code text, OUT kind text, OUT why text)
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN d.skip IS NOT NULL THEN NULL
                WHEN p_delete AND (p_key IS NULL OR NOT p_bookkeeping) THEN 'deleted'
                ELSE 'anonymised' END,
           coalesce(d.skip,
                    CASE WHEN p_key IS NULL THEN 'not_local'
                         WHEN p_delete AND NOT p_bookkeeping THEN 'deleted'
                         WHEN p_delete THEN 'anonymised: bookkeeping rows kept'
                         ELSE 'anonymised' END
                    || CASE WHEN sync.is_identifier(p_reason_code)
                            THEN pg_catalog.format(' (reason code %s)', p_reason_code)
                            ELSE '' END)
    FROM (SELECT CASE p_refusal WHEN 'SY021' THEN 'tombstone'
                                WHEN 'SY008' THEN 'merged_away'
                                ELSE CASE WHEN p_held_only AND p_held IS NOT TRUE
                                          THEN 'unknown_to_tritonx' END END AS skip) AS d
$$;

-- Anonymise or delete the customer numbers p_numbers at once (the feed's set of a page's
-- anonymisations and deletes whose order does not matter, sync._apply_segments), each as
-- sync._anonymise decides it for its event (the arguments at the same place of each array):
-- skipped for a tombstoned number, a merged-away one and, with p_held_only, one whose tritonX
-- data syncctl does not hold; else the local customers erased together
-- (syncmap.erase_customers: one statement a table), the numbers tombstoned, the engine's
-- copies scrubbed (sync._scrub_copies_of) and one audit row per event, in one statement each.
-- The customers must be distinct and share no row they point to (SY096 otherwise); the
-- callers make the compiled moves current first. Returns per place (ord) what sync._anonymise
-- returns for it; an audit row's duration is the set's divided by its events.
CREATE OR REPLACE FUNCTION sync._anonymise_numbers(
    p_numbers text[],
    p_delete boolean[],
    p_reason_codes text[],
    p_event_ids text[],
    p_inbox_ids bigint[],
    p_actors text[],
    p_versions integer[],
    p_held_only boolean[])
RETURNS TABLE (ord bigint, outcome text, reason text, counts jsonb, customer_id bigint,
               customer_key text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started  timestamptz := pg_catalog.clock_timestamp();
    keys     text[];
    ids      bigint[];
    whys     text[];
    kinds    text[];
    erased   jsonb := '{}';
    scrubbed jsonb;
BEGIN
    PERFORM syncmap.lock_customers(ARRAY(
        SELECT k.key FROM pg_catalog.unnest(p_numbers) AS n (number)
        CROSS JOIN LATERAL (SELECT syncmap.key_of(n.number) AS key) AS k
        WHERE k.key IS NOT NULL));
    -- as they are now that they are locked (customer_id: the audit's id for an integer key);
    -- a bookkeeping row decides before the erasure removes it
    SELECT pg_catalog.array_agg(d.key ORDER BY d.ord), pg_catalog.array_agg(d.id ORDER BY d.ord),
           pg_catalog.array_agg(x.why ORDER BY d.ord), pg_catalog.array_agg(x.kind ORDER BY d.ord)
    INTO keys, ids, whys, kinds
    FROM (
        SELECT e.ord, e.del, e.reason_code, e.held_only, m.key, m.id, m.held, r.code,
               m.key IS NOT NULL AND e.del AND syncmap.has_bookkeeping(m.key) AS bookkeeping
        FROM ROWS FROM (pg_catalog.unnest(p_numbers), pg_catalog.unnest(p_delete),
                        pg_catalog.unnest(p_reason_codes), pg_catalog.unnest(p_held_only))
             WITH ORDINALITY AS e (number, del, reason_code, held_only, ord)
        LEFT JOIN LATERAL (
            SELECT c.customer_key::text AS key, c.customer_id AS id,
                   c.version IS NOT NULL AS held
            FROM syncmap.customer_map AS c WHERE c.customer_number = e.number) AS m ON true
        CROSS JOIN LATERAL sync.anonymise_refusal(e.number, false) AS r
    ) AS d
    CROSS JOIN LATERAL sync._erasure_decision(d.code, d.held_only, d.held, d.key, d.del,
                                              d.bookkeeping, d.reason_code) AS x;

    IF EXISTS (SELECT FROM pg_catalog.generate_subscripts(keys, 1) AS i
               WHERE kinds[i] IS NOT NULL AND keys[i] IS NOT NULL) THEN
        -- refuses (SY022) an anonymisation while a column is unclassified
        erased := syncmap.erase_customers(
            ARRAY(SELECT keys[i] FROM pg_catalog.generate_subscripts(keys, 1) AS i
                  WHERE kinds[i] IS NOT NULL AND keys[i] IS NOT NULL ORDER BY i),
            ARRAY(SELECT p_delete[i] FROM pg_catalog.generate_subscripts(keys, 1) AS i
                  WHERE kinds[i] IS NOT NULL AND keys[i] IS NOT NULL ORDER BY i));
    END IF;
    INSERT INTO sync.tombstone (customer_number, kind, event_id)
    SELECT p_numbers[i], kinds[i], p_event_ids[i]
    FROM pg_catalog.generate_subscripts(kinds, 1) AS i
    WHERE kinds[i] IS NOT NULL
    ORDER BY i;
    IF FOUND THEN
        SELECT pg_catalog.jsonb_object_agg(s.customer_number, s.counts) INTO scrubbed
        FROM sync._scrub_copies_of(
            ARRAY(SELECT p_numbers[i] FROM pg_catalog.generate_subscripts(kinds, 1) AS i
                  WHERE kinds[i] IS NOT NULL ORDER BY i),
            ARRAY(SELECT p_actors[i] FROM pg_catalog.generate_subscripts(kinds, 1) AS i
                  WHERE kinds[i] IS NOT NULL ORDER BY i)) AS s;
    END IF;

    RETURN QUERY
    WITH result AS (
        SELECT i::bigint AS ord,
               CASE WHEN kinds[i] IS NOT NULL THEN 'applied' ELSE 'skipped' END AS outcome,
               CASE WHEN kinds[i] IS NOT NULL
                    THEN coalesce(erased -> keys[i], '{}')
                         || coalesce(scrubbed -> p_numbers[i], '{}')
                    ELSE '{}' END AS counts
        FROM pg_catalog.generate_subscripts(p_numbers, 1) AS i
    ),
    audited AS (
        INSERT INTO sync.audit (actor, action, outcome, event_id, inbox_id, customer_number,
                                customer_id, version, counts, reason, duration_ms, customer_key)
        SELECT p_actors[r.ord],
               CASE WHEN p_delete[r.ord] THEN 'customer.deleted' ELSE 'customer.anonymized' END,
               r.outcome, p_event_ids[r.ord], p_inbox_ids[r.ord], p_numbers[r.ord], ids[r.ord],
               p_versions[r.ord], r.counts, whys[r.ord],
               EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000
                   / pg_catalog.cardinality(p_numbers),
               sync._shown_key(keys[r.ord])
        FROM result AS r
        ORDER BY r.ord
    )
    SELECT r.ord, r.outcome, whys[r.ord], r.counts, ids[r.ord], keys[r.ord]
    FROM result AS r ORDER BY r.ord;
END
$$;

-- Apply the anonymise and delete events of inbox rows p_ids (in feed order) as one set
-- (sync._anonymise_numbers), each as sync._decide_event would one by one; an event whose id is
-- decided or dead-lettered already is a duplicate and left out. Any error of the set (a shop
-- trigger refusing one erasure, SY022, a foreign key the shop added, two customers sharing a
-- row: SY096) rolls the set back, and its events are applied one by one (sync._apply_event),
-- so that only a refused event becomes a dead letter. A transient error fails the batch.
-- Called by sync._apply_segments for the events whose order does not matter.
CREATE OR REPLACE FUNCTION sync._apply_erasures(p_ids bigint[])
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    inbox_id    bigint;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    err_context text;
BEGIN
    BEGIN
        PERFORM
        FROM (
            SELECT pg_catalog.array_agg(i.customer_number ORDER BY u.ord) AS numbers,
                   pg_catalog.array_agg(i.event_type = 'customer.deleted' ORDER BY u.ord)
                       AS deletes,
                   pg_catalog.array_agg(i.payload ->> 'reason_code' ORDER BY u.ord) AS codes,
                   pg_catalog.array_agg(i.event_id ORDER BY u.ord) AS event_ids,
                   pg_catalog.array_agg(i.id ORDER BY u.ord) AS inbox_ids,
                   pg_catalog.array_agg(i.source ORDER BY u.ord) AS actors,
                   pg_catalog.array_agg(i.version ORDER BY u.ord) AS versions,
                   -- a login-time refresh's delete is tritonX's 404 (sync._decide_event)
                   pg_catalog.array_agg(i.event_type = 'customer.deleted'
                                        AND i.source = 'tritonx-refresh' ORDER BY u.ord)
                       AS held_only
            FROM pg_catalog.unnest(p_ids) WITH ORDINALITY AS u (id, ord)
            JOIN sync.inbox AS i ON i.id = u.id
            WHERE i.event_id IS NOT NULL
              AND NOT EXISTS (SELECT FROM sync.audit AS a WHERE a.event_id = i.event_id)
              AND NOT EXISTS (SELECT FROM sync.dead_letter AS d WHERE d.event_id = i.event_id)
        ) AS e
        CROSS JOIN LATERAL sync._anonymise_numbers(e.numbers, e.deletes, e.codes, e.event_ids,
                                                    e.inbox_ids, e.actors, e.versions,
                                                    e.held_only) AS a
        WHERE e.numbers IS NOT NULL;
        PERFORM sync._check_deferred_constraints();
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                                constraint_ = CONSTRAINT_NAME, err_context = PG_EXCEPTION_CONTEXT;
        IF sync._error_without_values(state, message, schema_name, table_name, constraint_,
                                      err_context) IS NULL THEN
            RAISE;
        END IF;
        FOREACH inbox_id IN ARRAY p_ids LOOP
            PERFORM sync._apply_event(inbox_id);
        END LOOP;
    END;
END
$$;

-- Anonymise (p_delete false) or delete (p_delete true) a customer number: the feed's one by
-- one and the by-hand path. p_strict raises what sync.anonymise_refusal names; the feed
-- instead records a no-op skip for a tombstoned number and for a merged-away one (the event is
-- about a number that is only an alias now; following the redirect would erase the survivor
-- on the strength of an event about another identity: tritonX sends the survivor's own event
-- when it means it), and tombstones a number that is not local (scrubbing the copies the
-- engine holds). p_held_only (a login-time refresh that tritonX answered 404, "unknown or
-- deleted"): only a customer whose tritonX data syncctl holds (a local row with a version) is
-- deleted; a number tritonX has never sent (no local row, or a first login's stub) is a
-- recorded no-op (`unknown_to_tritonx`) and gets no tombstone: it may be the number tritonX
-- hands out next. Decided as sync._anonymise_numbers decides each of a set
-- (sync._erasure_decision). The callers make the compiled moves current first
-- (sync._moves_current()).
DROP FUNCTION IF EXISTS sync._anonymise(text, boolean, text, text, bigint, text, integer, boolean);
CREATE OR REPLACE FUNCTION sync._anonymise(
    p_number text,
    p_delete boolean,
    p_reason_code text,
    p_event_id text,
    p_inbox_id bigint,
    p_actor text,
    p_version integer,
    p_strict boolean,
    p_held_only boolean)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started   timestamptz := pg_catalog.clock_timestamp();
    verb      text := CASE WHEN p_delete THEN 'customer.deleted' ELSE 'customer.anonymized' END;
    local_key text := syncmap.key_of(p_number);
    local_id  bigint;
    held      boolean;
    refused   record;
    decided   record;
    counts    jsonb := '{}';
BEGIN
    IF local_key IS NOT NULL THEN
        PERFORM syncmap.lock_customers(ARRAY[local_key]);
        -- as it is now that it is locked; customer_id: the audit's id for an integer key
        SELECT m.customer_key::text, m.customer_id, m.version IS NOT NULL
        INTO local_key, local_id, held
        FROM syncmap.customer_map AS m WHERE m.customer_number = p_number;
    END IF;
    SELECT * INTO refused FROM sync.anonymise_refusal(p_number, p_strict);
    IF p_strict AND refused.code IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = refused.code, MESSAGE = refused.reason;
    END IF;
    SELECT * INTO decided
    FROM sync._erasure_decision(refused.code, p_held_only, held, local_key, p_delete,
                                local_key IS NOT NULL AND p_delete
                                AND syncmap.has_bookkeeping(local_key),
                                p_reason_code);
    IF decided.kind IS NOT NULL THEN
        IF local_key IS NOT NULL THEN
            -- refuses (SY022) an anonymisation while a column is unclassified
            counts := syncmap.erase_customer(local_key, p_delete);
        END IF;
        INSERT INTO sync.tombstone (customer_number, kind, event_id)
        VALUES (p_number, decided.kind, p_event_id);
        counts := counts || sync._scrub_copies(p_number, p_actor);
    END IF;
    INSERT INTO sync.audit (actor, action, outcome, event_id, inbox_id, customer_number,
                            customer_id, version, counts, reason, duration_ms, customer_key)
    VALUES (p_actor, verb, CASE WHEN decided.kind IS NULL THEN 'skipped' ELSE 'applied' END,
            p_event_id, p_inbox_id, p_number, local_id, p_version, counts, decided.why,
            EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000,
            sync._shown_key(local_key));
    RETURN pg_catalog.jsonb_build_object(
        'outcome', CASE WHEN decided.kind IS NULL THEN 'skipped' ELSE 'applied' END,
        'reason', decided.why, 'counts', counts, 'customer_id', local_id,
        'customer_key', local_key);
END
$$;

-- A local anonymisation of a locked customer row (its key as text), with the outbound event
-- for tritonX when the customer has a number. The callers make the compiled moves current
-- before they lock (sync._moves_current()). Shared by the back-office button and the by-hand
-- command.
DROP FUNCTION IF EXISTS sync._anonymise_locally(bigint, text, text, text);
CREATE OR REPLACE FUNCTION sync._anonymise_locally(
    p_key text, p_number text, p_reason_code text, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started timestamptz := pg_catalog.clock_timestamp();
    result  jsonb;
    counts  jsonb;
    queued  bigint;
    local_id bigint;
BEGIN
    -- the audit's customer id: the key itself when it is an integer
    IF (SELECT m.key_type FROM sync.mapped_customer() AS m)
       IN ('smallint'::pg_catalog.regtype, 'integer'::pg_catalog.regtype,
           'bigint'::pg_catalog.regtype) THEN
        local_id := p_key::bigint;
    END IF;
    IF p_number IS NULL THEN
        -- not linked to tritonX: nothing to tell anyone, no number to tombstone; the key is
        -- marked erased instead (its kept rows no longer hold a row shared with others)
        counts := syncmap.erase_customer(p_key, false);
        INSERT INTO sync.erased_key (customer_key)
        VALUES (p_key)
        ON CONFLICT (customer_key) DO NOTHING;
        INSERT INTO sync.audit (actor, action, outcome, customer_id, counts, reason, duration_ms,
                                customer_key)
        VALUES (p_actor, 'customer.anonymized', 'applied', local_id, counts,
                pg_catalog.format('anonymised locally, no tritonX number (reason code %s)',
                                  p_reason_code),
                EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000,
                sync._shown_key(p_key));
        RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'counts', counts,
                                             'customer_id', local_id, 'customer_key', p_key);
    END IF;
    result := sync._anonymise(p_number, false, p_reason_code, NULL, NULL, p_actor, NULL,
                              true, false);
    INSERT INTO sync.outbox (customer_number, event_type, payload)
    VALUES (p_number, 'customer.anonymize_requested',
            pg_catalog.jsonb_build_object('reason_code', p_reason_code, 'requested_by', p_actor))
    RETURNING id INTO queued;
    RETURN result || pg_catalog.jsonb_build_object('outbox_id', queued);
END
$$;

-- What anonymising (p_delete false) or deleting (p_delete true) a customer changes, per table:
-- the local customer p_key's rows (sync._erasure_plan; none when p_key is NULL) and, when it has
-- the number p_number, the engine's copies the same run scrubs (inbox payloads) and decides
-- (dead letters). One plan for every dry run, so that what a dry run counts is what the run
-- does. p_let_go, p_before: the customer's turn in a run that erases several
-- (sync._erasure_steps).
DROP FUNCTION IF EXISTS sync._customer_erasure_plan(text, text, boolean, jsonb);
CREATE OR REPLACE FUNCTION sync._customer_erasure_plan(
    p_key text, p_number text, p_delete boolean, p_let_go jsonb DEFAULT '{}',
    p_before text[] DEFAULT '{}')
RETURNS TABLE (table_name text, action text, rows bigint)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT p.table_name, p.action, p.rows
    FROM sync._erasure_plan(p_key, p_delete, p_let_go, p_before) AS p
    WHERE p_key IS NOT NULL
    UNION ALL
    SELECT 'sync.inbox', 'scrub', count(*)
    FROM sync._inbox_copies(p_number)
    WHERE p_number IS NOT NULL
    HAVING count(*) > 0
    UNION ALL
    SELECT 'sync.dead_letter', 'decide as skipped', count(*)
    FROM sync._dead_letter_copies(p_number)
    WHERE p_number IS NOT NULL
    HAVING count(*) > 0;
END
$$;

-- The same for a customer number: its local customer's rows when it has one.
DROP FUNCTION IF EXISTS sync._number_erasure_plan(text, boolean);
CREATE OR REPLACE FUNCTION sync._number_erasure_plan(p_number text, p_delete boolean)
RETURNS TABLE (table_name text, action text, rows bigint)
LANGUAGE plpgsql  -- not sql: syncmap is made by the mapping, after this file
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT p.table_name, p.action, p.rows
    FROM sync._customer_erasure_plan(syncmap.key_of(p_number), p_number, p_delete) AS p;
END
$$;

-- What anonymising the local customers p_keys (keys as text, in the key's order) one after the
-- other changes, per customer and table, as the back-office anonymisation does it for each
-- (sync._anonymise_locally: the customer's rows, and the engine's copies when it has a number):
-- the dry run of a retention run. A row customers of the list share (a household's address) is
-- copied or detached for each but the last of them in key order, for whom it is its own by then
-- (scrubbed in place) unless a customer outside the list or another table (staff, a store)
-- uses it too. So is a row a later customer's own rows reach (an older delivery address) that
-- customers before it in the list point to or ship their wishes to: by its turn they have let go
-- of it (sync._erasure_steps, p_before).
CREATE OR REPLACE FUNCTION sync._anonymisations_plan(p_keys text[])
RETURNS TABLE (customer_key text, table_name text, action text, rows bigint)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped  record;
    pointed record;
    earlier jsonb;
    -- {customer key: {pointed table: customers of the list before it pointing to its row}}
    let_go  jsonb := '{}';
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    FOR pointed IN SELECT * FROM sync._pointed_tables() LOOP
        EXECUTE pg_catalog.format(
            'SELECT coalesce(pg_catalog.jsonb_object_agg(e.k, e.n), ''{}'') FROM ('
            '    SELECT c.%1$I::text AS k, pg_catalog.count(*) OVER (PARTITION BY c.%2$I'
            '                                                ORDER BY c.%1$I) - 1 AS n'
            '    FROM %3$s AS c WHERE c.%1$I = ANY ($1::%4$s[]) AND c.%2$I IS NOT NULL) AS e '
            'WHERE e.n > 0',
            mapped.key_column, pointed.pointer, mapped.relation, mapped.key_type)
            INTO earlier USING p_keys;
        SELECT let_go || coalesce(pg_catalog.jsonb_object_agg(
                   e.key, coalesce(let_go -> e.key, '{}')
                          || pg_catalog.jsonb_build_object(pointed.qualified_name, e.value)),
                   '{}')
        INTO let_go
        FROM pg_catalog.jsonb_each(earlier) AS e;
    END LOOP;
    RETURN QUERY
    SELECT k.key, p.table_name, p.action, p.rows
    FROM pg_catalog.unnest(p_keys) WITH ORDINALITY AS k (key, ord)
    CROSS JOIN LATERAL sync._customer_erasure_plan(k.key, syncmap.number_of(k.key), false,
                                                   coalesce(let_go -> k.key, '{}'),
                                                   p_keys[1:(k.ord - 1)::integer]) AS p
    ORDER BY k.ord;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- What anonymising the customer with this number would change, per table: (table, action,
-- rows), rows > 0 only: the customer row, its linked tables and the rows it points to when it
-- is local, the inbox payloads scrubbed and the dead letters decided. Empty when there is
-- nothing to change.
-- Example: SELECT * FROM sync.anonymise_plan('TX00000001');
CREATE OR REPLACE FUNCTION sync.anonymise_plan(p_number text)
RETURNS TABLE (table_name text, action text, rows bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM sync._number_erasure_plan(p_number, false)
$$;

-- What a customer.deleted event for this number would change, per table, as anonymise_plan:
-- a customer with bookkeeping rows (orders) is planned as an anonymisation, one without as
-- removed (action delete_rows / delete; a row it points to that another customer or table uses
-- is left untouched).
-- Example: SELECT * FROM sync.delete_plan('TX00000001');
CREATE OR REPLACE FUNCTION sync.delete_plan(p_number text)
RETURNS TABLE (table_name text, action text, rows bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM sync._number_erasure_plan(p_number, true)
$$;

-- The back-office button for any key type: anonymise the local customer whose key (as text, the
-- key's own text form: '42', a uuid) is p_customer_key, and queue the event that tells tritonX
-- (when the customer has a number). A key that is not of the key's type, or names nobody, is
-- SY020; the key is never echoed.
-- Example: SELECT sync.anonymise_from_backoffice_key('4b9f6a1e-...', 'AVG', 'backoffice:42');
CREATE OR REPLACE FUNCTION sync.anonymise_from_backoffice_key(
    p_customer_key text, p_reason_code text, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    local_key   text;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    context     text;
BEGIN
    PERFORM sync._checked_identifier(p_reason_code, 'reason code');
    PERFORM sync._checked_identifier(p_actor, 'actor');
    PERFORM sync._checked_length(p_customer_key, sync._key_limit(), 'customer key');
    -- the compiled moves, current before any customer is locked (sql/57_moves_compile.sql)
    PERFORM sync._moves_current();
    -- a key that is not of the mapped key's type names nobody
    local_key := sync._local_customer_key(p_customer_key);
    PERFORM syncmap.lock_customers(ARRAY[local_key]);
    IF NOT sync._customer_exists(local_key) THEN
        RAISE EXCEPTION USING ERRCODE = 'SY020',
            MESSAGE = 'no local customer has this key (anonymise by number: '
                      'sync.anonymise_customer)';
    END IF;
    RETURN sync._anonymise_locally(local_key, syncmap.number_of(local_key), p_reason_code,
                                   p_actor);
EXCEPTION WHEN OTHERS THEN
    -- a shop trigger or constraint refusing the scrub may quote the row: its SQLSTATE and
    -- names go out (the engine's own refusals as they are)
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                            constraint_ = CONSTRAINT_NAME, context = PG_EXCEPTION_CONTEXT;
    PERFORM sync._raise_without_values(state, message, schema_name, table_name,
                                       constraint_, context);
    RAISE;
END
$$;

-- The back-office "Anonimiseren" button: anonymise the local customer p_customer_id now and,
-- when it has a tritonX number, queue customer.anonymize_requested in sync.outbox in the same
-- transaction. Returns {"outcome", "reason", "counts", "customer_id", "outbox_id"}.
-- p_customer_id is the mapped customer's key, for integer keys; a shop whose key is a uuid or
-- text calls sync.anonymise_from_backoffice_key (ids raise SY020 there).
-- Raises SY020 (unknown id), SY021 (already anonymised), SY022, SY023.
-- Example: SELECT sync.anonymise_from_backoffice(42, 'AVG', 'backoffice:op-17');
CREATE OR REPLACE FUNCTION sync.anonymise_from_backoffice(
    p_customer_id bigint, p_reason_code text, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM sync._checked_identifier(p_reason_code, 'reason code');
    PERFORM sync._checked_identifier(p_actor, 'actor');
    PERFORM sync._integer_keys_only('sync.anonymise_from_backoffice');
    RETURN sync.anonymise_from_backoffice_key(p_customer_id::text, p_reason_code, p_actor);
END
$$;

-- The same by customer number (the `syncctl anonymise` command).
-- Example: SELECT sync.anonymise_customer('TX00000001', 'AVG', 'ops:alice');
CREATE OR REPLACE FUNCTION sync.anonymise_customer(
    p_number text, p_reason_code text, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    local_key   text;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    context     text;
BEGIN
    PERFORM sync._checked_identifier(p_reason_code, 'reason code');
    PERFORM sync._checked_identifier(p_actor, 'actor');
    PERFORM sync._checked_length(p_number, 32, 'customer number');
    PERFORM sync._moves_current();
    local_key := syncmap.key_of(p_number);
    IF local_key IS NULL THEN
        -- merged away, tombstoned without a local row, or unknown: _anonymise says which
        RETURN sync._anonymise(p_number, false, p_reason_code, NULL, NULL, p_actor, NULL,
                               true, false);
    END IF;
    PERFORM syncmap.lock_customers(ARRAY[local_key]);
    RETURN sync._anonymise_locally(local_key, p_number, p_reason_code, p_actor);
EXCEPTION WHEN OTHERS THEN
    -- a shop trigger or constraint refusing a write may quote the row: its SQLSTATE and names
    -- go out, to the caller and the server log (the engine's own refusals as they are)
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                            constraint_ = CONSTRAINT_NAME, context = PG_EXCEPTION_CONTEXT;
    PERFORM sync._raise_without_values(state, message, schema_name, table_name, constraint_,
                                       context);
    RAISE;
END
$$;
