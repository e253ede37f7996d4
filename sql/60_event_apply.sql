-- Applying one staged merge, anonymise or delete event, and the dead-letter operations. The
-- batch apply (sql/30_sync_apply.sql) calls sync._apply_event for each such event in seq order,
-- between the set-based runs of upserts. An event is decided once (sync.audit.event_id is
-- unique); an impossible one (a class SY rejection, an integrity violation such as a unique
-- conflict no rule covers, a shop trigger that raises, a missing privilege on a linked table)
-- becomes a dead letter with a reason naming numbers, tables and constraints only, and the
-- rest of the batch goes on. A transient error (a lock time-out, a serialisation failure,
-- resources) fails the batch, which the controller retries (sync._rejection_reason).
-- Re-runnable. SQLSTATEs: SY030 no such dead letter, SY040 the event is still malformed.

-- ---------------------------------------------------------------------------------------------
-- Private
-- ---------------------------------------------------------------------------------------------

-- The dead-letter reason for an error raised while applying one event, or NULL when the error
-- is transient and the page must be retried instead (class 08 connection, 25 transaction
-- state, 40 serialisation or deadlock, 53 resources, 55 lock not available, 57 cancel or
-- shutdown, 58 and XX system errors). Every other error belongs to the event: the engine's own
-- refusals (class SY, whose messages name numbers and tables only), data exceptions, integrity
-- violations, program limits (an index row too large), missing privileges, a shop trigger's
-- RAISE. Built from the SQLSTATE and object names only, never from the message or detail,
-- which may quote values; a missing privilege names the object PostgreSQL names.
CREATE OR REPLACE FUNCTION sync._rejection_reason(
    p_sqlstate text, p_message text, p_schema text, p_table text, p_constraint text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
        WHEN p_sqlstate LIKE 'SY%' THEN p_message
        WHEN pg_catalog.left(p_sqlstate, 2) IN ('08', '25', '40', '53', '55', '57', '58', 'XX')
            THEN NULL
        ELSE pg_catalog.format(
            '%s (SQLSTATE %s)%s%s',
            CASE
                WHEN p_sqlstate = '23505' THEN 'unique violation'
                WHEN p_sqlstate = '23503' THEN 'foreign key violation'
                WHEN p_sqlstate = '23514' THEN 'check violation'
                WHEN p_sqlstate = '23502' THEN 'not-null violation'
                WHEN p_sqlstate = '23P01' THEN 'exclusion violation'
                WHEN p_sqlstate LIKE '23%' THEN 'integrity violation'
                WHEN p_sqlstate = '22001' THEN 'value too long for its column'
                WHEN p_sqlstate LIKE '22%' THEN 'a value does not fit its column'
                WHEN p_sqlstate = '54000' THEN 'a value too large (an index row, say)'
                WHEN p_sqlstate LIKE '54%' THEN 'a program limit exceeded'
                WHEN p_sqlstate = '42501' THEN 'permission denied'
                WHEN p_sqlstate = 'P0001' THEN 'raised by a trigger or function'
                ELSE 'error'
            END,
            p_sqlstate,
            CASE
                WHEN coalesce(p_table, '') <> '' THEN pg_catalog.format(
                    ' on %s', pg_catalog.concat_ws('.', NULLIF(p_schema, ''), p_table))
                -- PostgreSQL's own wording, object names only (a RAISE of this code from a
                -- trigger does not match the pattern and says nothing)
                WHEN p_sqlstate = '42501'
                     AND p_message ~ '^permission denied for [a-z ]+ [A-Za-z0-9_."]+$'
                    THEN ' for ' || pg_catalog.substring(
                        p_message, '^permission denied for ([a-z ]+ [A-Za-z0-9_."]+)$')
                ELSE ''
            END,
            CASE WHEN coalesce(p_constraint, '') <> ''
                 THEN pg_catalog.format(', constraint or index %s', p_constraint)
                 ELSE '' END)
    END
$$;

-- Decide one staged event (no duplicate check, no error handling: the callers do that, and
-- make the compiled moves current first: sync._moves_current()).
CREATE OR REPLACE FUNCTION sync._decide_event(p_event sync.inbox)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    CASE p_event.event_type
        WHEN 'customer.upserted' THEN
            PERFORM sync._apply_upserts(p_event.id, p_event.id, NULL);
        WHEN 'customer.merged' THEN
            PERFORM sync._merge(p_event.customer_number, p_event.payload ->> 'into',
                                p_event.event_id, p_event.id, p_event.source, p_event.version);
        WHEN 'customer.anonymized' THEN
            PERFORM sync._anonymise(p_event.customer_number, false,
                                    p_event.payload ->> 'reason_code', p_event.event_id,
                                    p_event.id, p_event.source, p_event.version, false);
        WHEN 'customer.deleted' THEN
            PERFORM sync._anonymise(p_event.customer_number, true,
                                    p_event.payload ->> 'reason_code', p_event.event_id,
                                    p_event.id, p_event.source, p_event.version, false);
    END CASE;
END
$$;

-- Apply the merge, anonymise or delete event in inbox row p_inbox_id, unless its event id is
-- decided or dead-lettered already (a duplicate). A rejection becomes a dead letter.
CREATE OR REPLACE FUNCTION sync._apply_event(p_inbox_id bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    staged      sync.inbox;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    why         text;
BEGIN
    SELECT * INTO staged FROM sync.inbox AS i WHERE i.id = p_inbox_id;
    IF staged.event_id IS NULL
       OR EXISTS (SELECT FROM sync.audit AS a WHERE a.event_id = staged.event_id)
       OR EXISTS (SELECT FROM sync.dead_letter AS d WHERE d.event_id = staged.event_id) THEN
        RETURN;
    END IF;
    BEGIN
        PERFORM sync._decide_event(staged);
        PERFORM sync._check_deferred_constraints();
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                                constraint_ = CONSTRAINT_NAME;
        why := sync._rejection_reason(state, message, schema_name, table_name, constraint_);
        IF why IS NULL THEN
            RAISE;
        END IF;
        INSERT INTO sync.dead_letter (inbox_id, event_id, reason)
        VALUES (p_inbox_id, staged.event_id, why);
        IF state IN ('SY004', 'SY006') THEN
            -- a merge naming an anonymised or deleted customer: keep no snapshot of it
            UPDATE sync.inbox AS i SET payload = sync.event_envelope(i.payload)
            WHERE i.id = p_inbox_id;
        END IF;
    END;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Public API: dead letters
-- ---------------------------------------------------------------------------------------------

-- Apply a dead-lettered inbox row again (after the cause was fixed: a merge rule declared, the
-- survivor arrived, ...). On success the dead letter is removed and the audit outcome returned
-- ('applied' or 'skipped'); on another rejection its attempts grow, its reason is updated and
-- 'dead_letter' is returned. Raises SY030 when the row has no dead letter.
-- Example: SELECT sync.retry_dead_letter(1234);
CREATE OR REPLACE FUNCTION sync.retry_dead_letter(p_inbox_id bigint)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    staged      sync.inbox;
    defect      text;
    result      text;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    why         text;
BEGIN
    PERFORM FROM sync.dead_letter AS d WHERE d.inbox_id = p_inbox_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SY030',
            MESSAGE = pg_catalog.format('inbox row %s has no dead letter', p_inbox_id);
    END IF;
    SELECT * INTO staged FROM sync.inbox AS i WHERE i.id = p_inbox_id;
    PERFORM sync._moves_current();
    BEGIN
        DELETE FROM sync.dead_letter AS d WHERE d.inbox_id = p_inbox_id;
        defect := CASE WHEN staged.raw IS NOT NULL AND staged.payload IS NULL
                       THEN sync.raw_defect(staged.raw)
                       ELSE sync.event_defect(staged.event_id, staged.event_type,
                                              staged.customer_number, staged.version,
                                              staged.occurred_at, staged.payload) END;
        IF defect IS NULL AND staged.event_type = 'customer.upserted' THEN
            defect := sync.snapshot_defect(staged.payload -> 'customer');
        END IF;
        IF defect IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'SY040', MESSAGE = defect;
        END IF;
        PERFORM sync._decide_event(staged);
        SELECT a.outcome INTO result FROM sync.audit AS a WHERE a.event_id = staged.event_id;
        IF result IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'SY040',
                MESSAGE = 'the event was not decided on retry';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                                constraint_ = CONSTRAINT_NAME;
        why := sync._rejection_reason(state, message, schema_name, table_name, constraint_);
        IF why IS NULL THEN
            RAISE;
        END IF;
        UPDATE sync.dead_letter AS d
        SET attempts = d.attempts + 1, reason = why, last_attempt_at = pg_catalog.now()
        WHERE d.inbox_id = p_inbox_id;
        RETURN 'dead_letter';
    END;
    RETURN result;
END
$$;

-- Give up on a dead letter: it is removed and the event decided as 'discarded' (an audit row
-- naming p_actor), so a re-delivery of the event is a duplicate. Raises SY030 when the row
-- has no dead letter.
-- Example: SELECT sync.discard_dead_letter(1234, 'ops:alice');
CREATE OR REPLACE FUNCTION sync.discard_dead_letter(p_inbox_id bigint, p_actor text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone   sync.dead_letter;
    staged sync.inbox;
BEGIN
    PERFORM sync._checked_identifier(p_actor, 'actor');
    DELETE FROM sync.dead_letter AS d WHERE d.inbox_id = p_inbox_id RETURNING * INTO gone;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SY030',
            MESSAGE = pg_catalog.format('inbox row %s has no dead letter', p_inbox_id);
    END IF;
    SELECT * INTO staged FROM sync.inbox AS i WHERE i.id = p_inbox_id;
    -- a malformed record's id, type and number may be anything: keep only well-formed ones
    INSERT INTO sync.audit (actor, action, outcome, event_id, inbox_id, customer_number,
                            version, reason)
    VALUES (p_actor,
            CASE WHEN staged.event_type IN ('customer.upserted', 'customer.merged',
                                            'customer.anonymized', 'customer.deleted')
                 THEN staged.event_type ELSE 'unknown' END,
            'discarded',
            CASE WHEN sync.is_event_id(staged.event_id) THEN staged.event_id END,
            p_inbox_id,
            CASE WHEN sync.is_customer_number(staged.customer_number)
                 THEN staged.customer_number END,
            staged.version,
            gone.reason);
END
$$;
