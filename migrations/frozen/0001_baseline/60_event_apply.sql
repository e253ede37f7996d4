-- Applying one staged merge, anonymise or delete event, and the dead-letter operations. The
-- batch apply (sql/30_sync_apply.sql) calls sync._apply_event for each such event in seq order,
-- between the set-based runs of upserts. An event is decided once (sync.audit.event_id is
-- unique); an impossible one (a class SY rejection, an integrity violation such as a unique
-- conflict no rule covers, a shop trigger that raises, a missing privilege on a linked table)
-- becomes a dead letter with a reason naming numbers, tables and constraints only, and the
-- rest of the batch goes on. A transient error (a lock time-out, a serialisation failure,
-- resources) fails the batch, which the controller retries (sync._error_without_values).
-- Re-runnable. SQLSTATEs: SY030 no such dead letter, SY040 the event is still malformed.

-- ---------------------------------------------------------------------------------------------
-- Private
-- ---------------------------------------------------------------------------------------------

-- The dead-letter reason for an error raised while applying one event is
-- sync._error_without_values (sql/07_refusals.sql): NULL for a transient error, which fails
-- the page for the controller to retry; else the SQLSTATE and the names of existing objects,
-- never a value a shop trigger put in its message or its table, schema or constraint fields.
DROP FUNCTION IF EXISTS sync._rejection_reason(text, text, text, text, text);

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
                                    p_event.id, p_event.source, p_event.version, false, false);
        WHEN 'customer.deleted' THEN
            -- a login-time refresh's delete is tritonX's 404, "unknown or deleted": it deletes
            -- only a customer tritonX has sent (syncctl/refresh.py stages it as this source)
            PERFORM sync._anonymise(p_event.customer_number, true,
                                    p_event.payload ->> 'reason_code', p_event.event_id,
                                    p_event.id, p_event.source, p_event.version, false,
                                    p_event.source = 'tritonx-refresh');
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
    err_context text;
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
                                constraint_ = CONSTRAINT_NAME, err_context = PG_EXCEPTION_CONTEXT;
        why := sync._error_without_values(state, message, schema_name, table_name, constraint_,
                                          err_context);
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
    err_context text;
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
                                constraint_ = CONSTRAINT_NAME, err_context = PG_EXCEPTION_CONTEXT;
        why := sync._error_without_values(state, message, schema_name, table_name, constraint_,
                                          err_context);
        IF why IS NULL THEN
            RAISE;
        END IF;
        IF (state LIKE '22%' OR state IN ('23514', '23502'))
           AND staged.event_type = 'customer.upserted' THEN
            -- a value that does not fit its column (or a domain's CHECK or NOT NULL): name the
            -- column, as the feed's page does
            why := coalesce(syncmap.snapshot_defect(staged.payload -> 'customer'), why);
        END IF;
        IF state = '23505' AND staged.event_type = 'customer.upserted' THEN
            -- refused by a unique index of the shop's: adopted on arrival, as the feed's page
            -- does (sync._adopt_on_arrival), when tritonX's e-mail names one local customer
            BEGIN
                DELETE FROM sync.dead_letter AS d WHERE d.inbox_id = p_inbox_id;
                IF sync._adopt_on_arrival(p_inbox_id, p_inbox_id, p_inbox_id) THEN
                    RETURN 'applied';
                END IF;
                RAISE EXCEPTION USING ERRCODE = 'SY098', MESSAGE = 'not adopted';
            EXCEPTION WHEN SQLSTATE 'SY098' THEN
                NULL;  -- the dead letter stays
            END;
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
