-- Anonymising and deleting customers, from the feed (customer.anonymized, customer.deleted),
-- from the back office and by hand. Irreversible: personal data in shop.customer and in every
-- customer-linked table is overwritten per the PII registry (sql/40_registry.sql), the rows of
-- delete_rows tables go, transactions (orders, amounts, dates) stay; a tombstone makes every
-- later event for the number a recorded no-op; the copies the engine holds (inbox payloads of
-- the number and of the numbers merged into it, merge snapshots naming it as `into`, its dead
-- letters) are scrubbed in the same transaction. A delete with bookkeeping rows (orders) is an
-- anonymisation; without, the customer and all its linked rows are removed.
-- A local anonymisation (back office, by hand) queues a sync.outbox event for tritonX in the
-- same transaction. Audit rows carry ids, numbers, counts and reason codes, never data.
-- Re-runnable.
--
-- SQLSTATEs: SY008 number was merged away, SY020 customer unknown (not local), SY021 already
-- anonymised or deleted, SY022 PII registry incomplete (refused: fails closed), SY023 reason
-- code or actor not an identifier.

-- ---------------------------------------------------------------------------------------------
-- Building blocks (private)
-- ---------------------------------------------------------------------------------------------

-- The SET list that scrubs the given columns (all classified ones when NULL) of a table per
-- their strategies (alias `t`), and the predicate "some of them differ from their scrubbed
-- value"; both NULL when no such column changes. A placeholder's {id} is the row's
-- single-column primary key, else the customer id in p_key_column.
CREATE OR REPLACE FUNCTION sync._scrub_sql(
    p_relation regclass, p_key_column name, p_columns text[],
    OUT assignments text, OUT differs text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH target AS (
        SELECT a.attname, a.attnum,
               CASE p.strategy
                   WHEN 'null' THEN 'NULL'
                   WHEN 'fixed' THEN pg_catalog.format('%L::%s', p.value, ty.name)
                   WHEN 'placeholder' THEN pg_catalog.format(
                       'pg_catalog.replace(%L, ''{id}'', t.%I::text)::%s',
                       p.value, coalesce(pk.attname, p_key_column), ty.name)
                   WHEN 'year' THEN pg_catalog.format(
                       'pg_catalog.date_trunc(''year'', t.%I)::%s', a.attname, ty.name)
               END AS expression
        FROM pg_catalog.pg_class AS r
        JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
        JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
        JOIN sync.pii_column AS p
            ON p.table_schema = n.nspname AND p.table_name = r.relname
           AND p.column_name = a.attname
        CROSS JOIN LATERAL (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS name) AS ty
        LEFT JOIN LATERAL (
            SELECT k.attname
            FROM pg_catalog.pg_index AS x
            JOIN pg_catalog.pg_attribute AS k
                ON k.attrelid = x.indrelid AND k.attnum = x.indkey[0]
            WHERE x.indrelid = r.oid AND x.indisprimary AND x.indnkeyatts = 1
        ) AS pk ON true
        WHERE r.oid = p_relation
          AND p.strategy IN ('null', 'fixed', 'placeholder', 'year')
          AND (p_columns IS NULL OR a.attname::text = ANY (p_columns))
    )
    SELECT pg_catalog.string_agg(pg_catalog.format('%I = %s', t.attname, t.expression), ', '
                                 ORDER BY t.attnum),
           pg_catalog.string_agg(pg_catalog.format('t.%I IS DISTINCT FROM %s', t.attname,
                                                   t.expression), ' OR ' ORDER BY t.attnum)
    FROM target AS t
$$;

-- The SET list that scrubs one table per its column strategies (alias `t`), or NULL when no
-- column of it changes.
CREATE OR REPLACE FUNCTION sync._scrub_assignments(p_relation regclass, p_fk_column name)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.assignments FROM sync._scrub_sql(p_relation, p_fk_column, NULL) AS s
$$;

-- What anonymising (p_delete false) or deleting (p_delete true) the local customer p_id does
-- per table: (table, action, rows). Actions: scrub, delete_rows, delete (the customer row).
-- A delete of a customer with bookkeeping rows is planned as an anonymisation.
CREATE OR REPLACE FUNCTION sync._erasure_plan(p_id bigint, p_delete boolean)
RETURNS TABLE (table_name text, action text, rows bigint)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link   record;
    remove boolean := p_delete AND NOT sync._has_bookkeeping(p_id);
BEGIN
    FOR link IN
        SELECT l.*, coalesce(r.action, 'scrub') AS declared
        FROM sync.customer_links() AS l
        LEFT JOIN sync.anonymise_rule AS r
            ON r.table_schema = l.table_schema AND r.table_name = l.table_name
        WHERE l.relation <> 'shop.customer'::pg_catalog.regclass
    LOOP
        action := CASE WHEN remove THEN 'delete_rows' ELSE link.declared END;
        CONTINUE WHEN action = 'scrub'
                      AND sync._scrub_assignments(link.relation, link.fk_column) IS NULL;
        EXECUTE pg_catalog.format('SELECT count(*) FROM %s AS t WHERE t.%I = $1',
                                  link.relation, link.fk_column)
            INTO rows USING p_id;
        CONTINUE WHEN rows = 0;
        table_name := link.qualified_name;
        RETURN NEXT;
    END LOOP;
    table_name := 'shop.customer';
    action := CASE WHEN remove THEN 'delete' ELSE 'scrub' END;
    rows := 1;
    RETURN NEXT;
END
$$;

-- Whether the customer has rows in a bookkeeping table (orders): then a delete anonymises.
CREATE OR REPLACE FUNCTION sync._has_bookkeeping(p_id bigint)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link  record;
    found boolean;
BEGIN
    FOR link IN
        SELECT l.*
        FROM sync.customer_links() AS l
        JOIN sync.anonymise_rule AS r
            ON r.table_schema = l.table_schema AND r.table_name = l.table_name
        WHERE r.bookkeeping
    LOOP
        EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %s AS t WHERE t.%I = $1)',
                                  link.relation, link.fk_column)
            INTO found USING p_id;
        IF found THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;

-- Carry out sync._erasure_plan for the local customer p_id; returns {table: rows}.
CREATE OR REPLACE FUNCTION sync._erase_rows(p_id bigint, p_delete boolean)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    step    record;
    link    record;
    changed   bigint;
    rows_done bigint;
    counts    jsonb := '{}';
BEGIN
    IF EXISTS (SELECT FROM sync.unclassified_columns())
       AND NOT (p_delete AND NOT sync._has_bookkeeping(p_id)) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY022',
            MESSAGE = pg_catalog.format(
                'anonymisation refused: %s column(s) have no PII strategy',
                (SELECT count(*) FROM sync.unclassified_columns())),
            HINT = 'run the coverage check (SELECT * FROM sync.unclassified_columns())';
    END IF;
    FOR step IN SELECT * FROM sync._erasure_plan(p_id, p_delete) LOOP
        IF step.table_name = 'shop.customer' THEN
            IF step.action = 'delete' THEN
                DELETE FROM shop.customer AS c WHERE c.id = p_id;
            ELSE
                EXECUTE pg_catalog.format(
                    'UPDATE shop.customer AS t SET %s WHERE t.id = $1',
                    sync._scrub_assignments('shop.customer'::pg_catalog.regclass, 'id'))
                    USING p_id;
            END IF;
            GET DIAGNOSTICS changed = ROW_COUNT;
        ELSE
            changed := 0;
            FOR link IN SELECT * FROM sync.customer_links() AS l
                        WHERE l.qualified_name = step.table_name LOOP
                IF step.action = 'delete_rows' THEN
                    EXECUTE pg_catalog.format('DELETE FROM %s AS t WHERE t.%I = $1',
                                              link.relation, link.fk_column)
                        USING p_id;
                ELSE
                    EXECUTE pg_catalog.format(
                        'UPDATE %s AS t SET %s WHERE t.%I = $1', link.relation,
                        sync._scrub_assignments(link.relation, link.fk_column), link.fk_column)
                        USING p_id;
                END IF;
                GET DIAGNOSTICS rows_done = ROW_COUNT;
                changed := changed + rows_done;
            END LOOP;
        END IF;
        counts := counts || pg_catalog.jsonb_build_object(step.table_name, changed);
    END LOOP;
    RETURN counts;
END
$$;

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
           -- a malformed record whose own number did not parse: the snapshot still names it
           OR (i.customer_number IS NULL
               AND (i.payload -> 'customer' ->> 'customer_number') = ANY (numbers.n)))
      AND (sync.event_envelope(i.payload) <> i.payload OR i.raw IS NOT NULL)
$$;

-- The dead letters of a customer number and of the numbers merged into it (a malformed
-- record's by the number its snapshot names): what anonymising it decides as skipped.
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
    WHERE coalesce(i.customer_number, i.payload -> 'customer' ->> 'customer_number') IN (
              SELECT p_number
              UNION ALL
              SELECT r.old_number FROM sync.redirect AS r WHERE r.survivor_number = p_number)
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
    UPDATE sync.inbox AS i
    SET payload = sync.event_envelope(i.payload), raw = NULL
    WHERE i.id IN (SELECT c.inbox_id FROM sync._inbox_copies(p_number) AS c);
    GET DIAGNOSTICS scrubbed = ROW_COUNT;

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
           CASE WHEN g.event_id ~ '^[A-Za-z0-9._:-]{1,100}$' THEN g.event_id END,
           g.inbox_id, g.customer_number, g.version, 'tombstone'
    FROM gone AS g;
    GET DIAGNOSTICS decided = ROW_COUNT;

    RETURN pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'sync.inbox', NULLIF(scrubbed, 0), 'sync.dead_letter', NULLIF(decided, 0)));
END
$$;

-- Why the customer number cannot be anonymised by hand, as (SQLSTATE, reason), or NULLs.
-- The feed turns the first three into recorded no-ops (see sync._anonymise).
CREATE OR REPLACE FUNCTION sync.anonymise_refusal(p_number text, OUT code text, OUT reason text)
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
    ELSIF NOT EXISTS (SELECT FROM shop.customer AS c WHERE c.customer_number = p_number) THEN
        code := 'SY020';
        reason := pg_catalog.format('customer %s is not a local customer', p_number);
    ELSE
        SELECT count(*) INTO missing FROM sync.unclassified_columns();
        IF missing > 0 THEN
            code := 'SY022';
            reason := pg_catalog.format(
                'anonymisation refused: %s column(s) have no PII strategy', missing);
        END IF;
    END IF;
END
$$;

-- Anonymise (p_delete false) or delete (p_delete true) a customer number: the feed's and the
-- by-hand path. p_strict raises what sync.anonymise_refusal names; the feed instead records a
-- no-op skip for a tombstoned number and for a merged-away one (the event is about a number
-- that is only an alias now; following the redirect would erase the survivor on the strength
-- of an event about another identity: tritonX sends the survivor's own event when it means
-- it), and tombstones a number that is not local (scrubbing the copies the engine holds).
CREATE OR REPLACE FUNCTION sync._anonymise(
    p_number text,
    p_delete boolean,
    p_reason_code text,
    p_event_id text,
    p_inbox_id bigint,
    p_actor text,
    p_version integer,
    p_strict boolean)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started   timestamptz := pg_catalog.clock_timestamp();
    verb      text := CASE WHEN p_delete THEN 'customer.deleted' ELSE 'customer.anonymized' END;
    local_id  bigint;
    refused   record;
    kind      text;
    outcome   text := 'applied';
    why       text;
    counts    jsonb := '{}';
BEGIN
    SELECT c.id INTO local_id FROM shop.customer AS c
    WHERE c.customer_number = p_number FOR UPDATE;
    SELECT * INTO refused FROM sync.anonymise_refusal(p_number);
    IF p_strict AND refused.code IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = refused.code, MESSAGE = refused.reason;
    END IF;
    IF refused.code = 'SY021' THEN
        outcome := 'skipped';
        why := 'tombstone';
    ELSIF refused.code = 'SY008' THEN
        outcome := 'skipped';
        why := 'merged_away';
    ELSE
        IF local_id IS NULL THEN
            kind := CASE WHEN p_delete THEN 'deleted' ELSE 'anonymised' END;
            why := 'not_local';
        ELSE
            IF p_delete AND NOT sync._has_bookkeeping(local_id) THEN
                kind := 'deleted';
                why := 'deleted';
            ELSE
                kind := 'anonymised';
                why := CASE WHEN p_delete THEN 'anonymised: bookkeeping rows kept'
                            ELSE 'anonymised' END;
            END IF;
            -- refuses (SY022) an anonymisation while a column is unclassified
            counts := sync._erase_rows(local_id, p_delete);
        END IF;
        INSERT INTO sync.tombstone (customer_number, kind, event_id)
        VALUES (p_number, kind, p_event_id);
        counts := counts || sync._scrub_copies(p_number, p_actor);
        IF sync.is_identifier(p_reason_code) THEN
            why := why || pg_catalog.format(' (reason code %s)', p_reason_code);
        END IF;
    END IF;
    INSERT INTO sync.audit (actor, action, outcome, event_id, inbox_id, customer_number,
                            customer_id, version, counts, reason, duration_ms)
    VALUES (p_actor, verb, outcome, p_event_id, p_inbox_id, p_number, local_id, p_version,
            counts, why, EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000);
    RETURN pg_catalog.jsonb_build_object('outcome', outcome, 'reason', why, 'counts', counts,
                                         'customer_id', local_id);
END
$$;

-- A local anonymisation of a locked customer row, with the outbound event for tritonX when
-- the customer has a number. Shared by the back-office button and the by-hand command.
CREATE OR REPLACE FUNCTION sync._anonymise_locally(
    p_id bigint, p_number text, p_reason_code text, p_actor text)
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
BEGIN
    IF p_number IS NULL THEN
        -- not linked to tritonX: nothing to tell anyone, no number to tombstone
        counts := sync._erase_rows(p_id, false);
        INSERT INTO sync.audit (actor, action, outcome, customer_id, counts, reason, duration_ms)
        VALUES (p_actor, 'customer.anonymized', 'applied', p_id, counts,
                pg_catalog.format('anonymised locally, no tritonX number (reason code %s)',
                                  p_reason_code),
                EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000);
        RETURN pg_catalog.jsonb_build_object('outcome', 'applied', 'counts', counts,
                                             'customer_id', p_id);
    END IF;
    result := sync._anonymise(p_number, false, p_reason_code, NULL, NULL, p_actor, NULL, true);
    INSERT INTO sync.outbox (customer_number, event_type, payload)
    VALUES (p_number, 'customer.anonymize_requested',
            pg_catalog.jsonb_build_object('reason_code', p_reason_code, 'requested_by', p_actor))
    RETURNING id INTO queued;
    RETURN result || pg_catalog.jsonb_build_object('outbox_id', queued);
END
$$;

-- What anonymising (p_delete false) or deleting (p_delete true) a customer number changes, per
-- table: the local customer's rows (sync._erasure_plan) and the engine's copies the same run
-- scrubs (inbox payloads) and decides (dead letters). One plan for every dry run, so that
-- what a dry run counts is what the run does.
CREATE OR REPLACE FUNCTION sync._number_erasure_plan(p_number text, p_delete boolean)
RETURNS TABLE (table_name text, action text, rows bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.table_name, p.action, p.rows
    FROM shop.customer AS c
    CROSS JOIN LATERAL sync._erasure_plan(c.id, p_delete) AS p
    WHERE c.customer_number = p_number
    UNION ALL
    SELECT 'sync.inbox', 'scrub', count(*)
    FROM sync._inbox_copies(p_number)
    HAVING count(*) > 0
    UNION ALL
    SELECT 'sync.dead_letter', 'decide as skipped', count(*)
    FROM sync._dead_letter_copies(p_number)
    HAVING count(*) > 0
$$;

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- What anonymising the customer with this number would change, per table: (table, action,
-- rows), rows > 0 only: shop.customer and its linked tables when it is local, the inbox
-- payloads scrubbed and the dead letters decided. Empty when there is nothing to change.
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
-- removed (action delete_rows / delete).
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

-- The back-office "Anonimiseren" button: anonymise the local customer p_customer_id now and,
-- when it has a tritonX number, queue customer.anonymize_requested in sync.outbox in the same
-- transaction. Returns {"outcome", "reason", "counts", "customer_id", "outbox_id"}.
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
DECLARE
    tx_number text;
BEGIN
    PERFORM sync._checked_identifier(p_reason_code, 'reason code');
    PERFORM sync._checked_identifier(p_actor, 'actor');
    SELECT c.customer_number INTO tx_number FROM shop.customer AS c
    WHERE c.id = p_customer_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SY020',
            MESSAGE = pg_catalog.format('customer id %s does not exist', p_customer_id);
    END IF;
    RETURN sync._anonymise_locally(p_customer_id, tx_number, p_reason_code, p_actor);
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
    local_id bigint;
BEGIN
    PERFORM sync._checked_identifier(p_reason_code, 'reason code');
    PERFORM sync._checked_identifier(p_actor, 'actor');
    PERFORM sync._checked_length(p_number, 32, 'customer number');
    SELECT c.id INTO local_id FROM shop.customer AS c
    WHERE c.customer_number = p_number FOR UPDATE;
    IF NOT FOUND THEN
        -- merged away, tombstoned without a local row, or unknown: _anonymise says which
        RETURN sync._anonymise(p_number, false, p_reason_code, NULL, NULL, p_actor, NULL, true);
    END IF;
    RETURN sync._anonymise_locally(local_id, p_number, p_reason_code, p_actor);
END
$$;
