-- Erasure requests: received -> verified -> scheduled -> done | failed, or cancelled before it
-- is done (during a grace period, say). Verification captures the person's identifying values
-- as digests (gdpr._subject_digests, sql/87_gdpr_proof.sql), never the values themselves.
-- Execution anonymises the customer with sync.anonymise_from_backoffice_key (tombstone; the
-- outbound event for tritonX is queued in the same transaction), then runs the residue search
-- (gdpr.residue_search, sql/88_gdpr_residue.sql): the proof of erasure is the number of columns
-- searched and hits (zero, or counts per column), kept in the request; the digests are cleared
-- when the request is done or cancelled. A failure is recorded (attempts, last_error: an
-- SQLSTATE and a reason without data) and can be retried. Audit actor: erasure:<actor>.
-- Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Other customers with the subject's e-mail address (normalised as login compares it, in the
-- mapped e-mail column, sync._email_column()): the same person under a second customer (a
-- duplicate never merged), or a household sharing an address. Their rows are theirs; the proof
-- of erasure lists their keys (as text, in key order) so an operator can decide. Empty when the
-- mapping stores no e-mail.
DROP FUNCTION IF EXISTS gdpr._same_email_customers(bigint);
CREATE OR REPLACE FUNCTION gdpr._same_email_customers(p_customer_key text)
RETURNS text[]
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped record;
    email  name := sync._email_column();
    found  text[];
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    IF email IS NULL OR mapped.relation IS NULL THEN
        RETURN '{}';
    END IF;
    EXECUTE pg_catalog.format(
        'SELECT coalesce(pg_catalog.array_agg(o.%1$I::text ORDER BY o.%1$I), ''{}'') '
        'FROM %2$s AS c JOIN %2$s AS o '
        'ON sync.normalise_email(o.%3$I::text) = sync.normalise_email(c.%3$I::text) '
        'WHERE c.%1$I = $1::%4$s AND o.%1$I <> c.%1$I',
        mapped.key_column, mapped.relation, email, mapped.key_type)
        INTO found USING p_customer_key;
    RETURN found;
END
$$;

-- The tritonX number of the mapped customer with key p_key (as text), NULL when it has none
-- (or no mapping is installed yet: the views below are made before the first mapping is).
CREATE OR REPLACE FUNCTION gdpr._number_of(p_key text)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.to_regprocedure('syncmap.number_of(text)') IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN syncmap.number_of(p_key);
EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
    RETURN NULL;  -- a key kept from before the mapped key's type changed
END
$$;

-- Erasure requests without the digests: the customer's key (as text; only an integer or uuid
-- key, sync._shown_key: a text key may be an e-mail address) and its number.
CREATE OR REPLACE VIEW gdpr.erasure_overview AS
SELECT e.id, sync._shown_key(e.customer_key) AS customer_key,
       gdpr._number_of(e.customer_key) AS customer_number, e.state,
       e.received_at, e.verified_at, e.scheduled_for, e.finished_at, e.actor, e.attempts,
       e.last_error, e.residue_hits, e.columns_searched, e.residue
FROM gdpr.erasure_request AS e;

-- The request, locked; raises SY086 when there is none and SY087 when its state is not one
-- of p_states.
CREATE OR REPLACE FUNCTION gdpr._erasure_request(p_request_id bigint, p_states text[])
RETURNS gdpr.erasure_request
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    request gdpr.erasure_request;
BEGIN
    SELECT * INTO request FROM gdpr.erasure_request AS e WHERE e.id = p_request_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SY086',
            MESSAGE = pg_catalog.format('no erasure request %s', p_request_id);
    END IF;
    IF NOT (request.state = ANY (p_states)) THEN
        RAISE EXCEPTION USING ERRCODE = 'SY087',
            MESSAGE = pg_catalog.format('erasure request %s is %s (needs %s)', p_request_id,
                                        request.state,
                                        pg_catalog.array_to_string(p_states, ' or '));
    END IF;
    RETURN request;
END
$$;

CREATE OR REPLACE FUNCTION gdpr._erasure_actor(p_actor text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.left('erasure:' || gdpr._checked_actor(p_actor), 100)
$$;

-- Receive a request of the mapped customer p_customer_key (the key as text). Returns the
-- request id; SY020 for a key of nobody (never echoed), SY087 when the customer has an open
-- request already. The shop's erasure functions check the actor (SY023) and p_now (SY026: at
-- most sync._clock_skew() ahead of the database's clock) first.
-- Example: SELECT gdpr.receive_erasure('42', 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.receive_erasure(
    p_customer_key text, p_actor text, p_now timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    subject text;
    open_id bigint;
    new_id  bigint;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_time(p_now, 'p_now');
    PERFORM sync._checked_length(p_customer_key, sync._key_limit(), 'customer key');
    subject := gdpr._customer_key(p_customer_key);
    PERFORM syncmap.lock_customers(ARRAY[subject]);
    SELECT e.id INTO open_id FROM gdpr.erasure_request AS e
    WHERE e.customer_key = subject
      AND e.state IN ('received', 'verified', 'scheduled', 'failed');
    IF open_id IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SY087',
            MESSAGE = pg_catalog.format('the customer has open erasure request %s', open_id);
    END IF;
    INSERT INTO gdpr.erasure_request (customer_key, received_at, actor)
    VALUES (subject, p_now, p_actor)
    RETURNING id INTO new_id;
    PERFORM gdpr._audit(gdpr._erasure_actor(p_actor), 'erasure.received', subject, NULL,
                        pg_catalog.format('request %s', new_id));
    RETURN new_id;
END
$$;

-- The same for an integer key.
-- Example: SELECT gdpr.receive_erasure(42, 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.receive_erasure(
    p_customer_id bigint, p_actor text, p_now timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT gdpr.receive_erasure(p_customer_id::text, p_actor, p_now)
$$;

-- The person's identity was checked: capture the digests of their values.
-- Example: SELECT gdpr.verify_erasure(7, 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.verify_erasure(
    p_request_id bigint, p_actor text, p_now timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    request gdpr.erasure_request;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_time(p_now, 'p_now');
    request := gdpr._erasure_request(p_request_id, ARRAY['received']);
    UPDATE gdpr.erasure_request AS e
    SET state = 'verified', verified_at = p_now,
        digests = gdpr._subject_digests(request.customer_key)
    WHERE e.id = p_request_id;
    PERFORM gdpr._audit(gdpr._erasure_actor(p_actor), 'erasure.verified', request.customer_key,
                        NULL, pg_catalog.format('request %s', p_request_id));
END
$$;

-- Schedule a verified request for p_now + p_grace (a cancellation window; SY087 when negative).
-- Example: SELECT gdpr.schedule_erasure(7, 'backoffice:op-17', '14 days');
CREATE OR REPLACE FUNCTION gdpr.schedule_erasure(
    p_request_id bigint, p_actor text, p_grace interval DEFAULT '0',
    p_now timestamptz DEFAULT now())
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    request gdpr.erasure_request;
    due     timestamptz := p_now + coalesce(p_grace, '0');
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_time(p_now, 'p_now');
    request := gdpr._erasure_request(p_request_id, ARRAY['verified']);
    -- a request is never due before it was scheduled
    IF due < p_now THEN
        RAISE EXCEPTION USING ERRCODE = 'SY087',
            MESSAGE = pg_catalog.format('erasure request %s: a grace period cannot be negative',
                                        p_request_id);
    END IF;
    UPDATE gdpr.erasure_request AS e SET state = 'scheduled', scheduled_for = due
    WHERE e.id = p_request_id;
    PERFORM gdpr._audit(gdpr._erasure_actor(p_actor), 'erasure.scheduled', request.customer_key,
                        NULL, pg_catalog.format('request %s due %s', p_request_id, due));
    RETURN due;
END
$$;

-- Cancel a request that is not done; its digests go.
-- Example: SELECT gdpr.cancel_erasure(7, 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.cancel_erasure(
    p_request_id bigint, p_actor text, p_now timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    request gdpr.erasure_request;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_time(p_now, 'p_now');
    request := gdpr._erasure_request(
        p_request_id, ARRAY['received', 'verified', 'scheduled', 'failed']);
    UPDATE gdpr.erasure_request AS e
    SET state = 'cancelled', finished_at = p_now, digests = NULL
    WHERE e.id = p_request_id;
    PERFORM gdpr._audit(gdpr._erasure_actor(p_actor), 'erasure.cancelled', request.customer_key,
                        NULL, pg_catalog.format('request %s', p_request_id));
END
$$;

-- Raise SY020 when the erasure request's customer key p_key names no customer: the engine's
-- merges and deletes carry a request along or remove it, so its row was deleted or its key
-- changed outside syncctl, and nothing proves the person gone.
CREATE OR REPLACE FUNCTION gdpr._checked_erasure_subject(p_key text)
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT sync._customer_exists(p_key) THEN
        RAISE EXCEPTION USING ERRCODE = 'SY020',
            MESSAGE = 'the request''s customer key names no customer: its row was deleted '
                      'or its key changed outside syncctl; receive a new request for the '
                      'person''s current key';
    END IF;
END
$$;

-- Whether the erasure of customer p_key (its key as text) still has to anonymise it: false when
-- it is anonymised already (an earlier attempt, tritonX, the back office: no column the
-- registry scrubs differs from its erased form, or a tombstone holds its number); then an
-- execution only searches for residue. With no column the registry scrubs, the tombstone
-- decides.
CREATE OR REPLACE FUNCTION gdpr._erasure_pending(p_key text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped   record;
    scrubbed record;
    pending  boolean;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    scrubbed := sync._scrub_sql(mapped.relation, mapped.key_column, NULL);
    EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %s AS t WHERE t.%I = $1::%s AND (%s))',
                              mapped.relation, mapped.key_column, mapped.key_type,
                              coalesce(scrubbed.differs, 'true'))
        INTO pending USING p_key;
    RETURN pending AND NOT EXISTS (SELECT FROM sync.tombstone AS t
                                   WHERE t.customer_number = syncmap.number_of(p_key));
END
$$;

-- What executing erasure request p_request_id would change, per table (table, action, rows),
-- the counts the execution then reports: the anonymisation of its customer, by its key, with or
-- without a tritonX number (sync._anonymisations_plan; actions as in sync.anonymise_plan); no
-- rows when the customer is anonymised already (the execution only searches for residue). A
-- row the customer shares with another table or customer (an address of staff, a store, a
-- household) is listed as `scrubbed copy` or `detach`: that row stays as it is, and the residue
-- search finds the person's values in it. For a request that is not done or cancelled; SY086
-- (no such request), SY087 (done or cancelled), SY020 (its key names no customer). It locks
-- the request row, as the execution does, and changes nothing.
-- Example: SELECT * FROM gdpr.erasure_plan(7);
CREATE OR REPLACE FUNCTION gdpr.erasure_plan(p_request_id bigint)
RETURNS TABLE (table_name text, action text, rows bigint)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    request gdpr.erasure_request := gdpr._erasure_request(
        p_request_id, ARRAY['received', 'verified', 'scheduled', 'failed']);
BEGIN
    PERFORM gdpr._checked_erasure_subject(request.customer_key);
    IF gdpr._erasure_pending(request.customer_key) THEN
        RETURN QUERY
        SELECT a.table_name, a.action, a.rows
        FROM sync._anonymisations_plan(ARRAY[request.customer_key]) AS a;
    END IF;
END
$$;

-- Execute a scheduled request that is due (or retry a failed one): anonymise, then search for
-- residue in the rows that may hold the subject's data (gdpr._residue_scopes). Returns the
-- proof: {"request", "state", "residue_hits", "columns_searched", "residue": {column: rows},
-- "counts", "outbox_id", "same_email_customers": [keys of other customers with the same e-mail,
-- found before anonymising: numbers for an integer key, else texts], "tables_not_searched": [tables this role could not search],
-- "error"}. A failure is recorded, not raised.
-- Example: SELECT gdpr.execute_erasure(7, 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.execute_erasure(
    p_request_id bigint, p_actor text, p_now timestamptz DEFAULT now())
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    request  gdpr.erasure_request := gdpr._erasure_request(
        p_request_id, ARRAY['scheduled', 'failed']);
    actor    text := gdpr._erasure_actor(p_actor);
    number   text;
    result   jsonb := '{}';
    leftover jsonb;
    hits     bigint;
    searched integer;
    problem  text;
    context  text;
    schema_  text;
    table_   text;
    constraint_ text;
    sharing  text[] := '{}';
    skipped  text[] := gdpr.unsearched_tables();
BEGIN
    -- the compiled moves, current before any customer is locked (sql/57_moves_compile.sql)
    PERFORM sync._moves_current();
    IF request.scheduled_for > p_now THEN
        RAISE EXCEPTION USING ERRCODE = 'SY087',
            MESSAGE = pg_catalog.format('erasure request %s is not due before %s',
                                        p_request_id, request.scheduled_for);
    END IF;
    BEGIN
        PERFORM syncmap.lock_customers(ARRAY[request.customer_key]);
        PERFORM gdpr._checked_erasure_subject(request.customer_key);
        number := syncmap.number_of(request.customer_key);
        IF gdpr._erasure_pending(request.customer_key) THEN
            sharing := gdpr._same_email_customers(request.customer_key);
            PERFORM gdpr._set_consent_source('erasure');
            result := sync.anonymise_from_backoffice_key(request.customer_key, 'ERASURE', actor);
            PERFORM gdpr._set_consent_source(NULL);
        END IF;
        SELECT coalesce(pg_catalog.jsonb_object_agg(r.column_name, r.hits), '{}'),
               coalesce(sum(r.hits), 0)
        INTO leftover, hits
        FROM gdpr.residue_search(request.digests, request.customer_key) AS r;
        searched := gdpr._searchable_columns();
        IF hits > 0 THEN
            problem := pg_catalog.format('residue found in %s column(s): %s',
                (SELECT count(*) FROM pg_catalog.jsonb_object_keys(leftover)),
                (SELECT pg_catalog.string_agg(k, ', ' ORDER BY k)
                 FROM pg_catalog.jsonb_object_keys(leftover) AS k));
        END IF;
    EXCEPTION WHEN OTHERS THEN
        -- the engine's own refusals hold ids and codes only, and so does a refusal of the
        -- shop's tables the anonymisation raised again (sync._raise_without_values: what and
        -- where, by names); any other message (a shop trigger's, even of class SY) may quote
        -- values: it is said by its SQLSTATE and the objects it names (sync._shop_refusal)
        GET STACKED DIAGNOSTICS context = PG_EXCEPTION_CONTEXT, schema_ = SCHEMA_NAME,
                                table_ = TABLE_NAME, constraint_ = CONSTRAINT_NAME;
        problem := coalesce(
            SQLSTATE || ': ' || sync._own_refusal(SQLSTATE, SQLERRM, context),
            CASE WHEN pg_catalog.split_part(context, E'\n', 1)
                      LIKE 'PL/pgSQL function sync.\_raise\_without\_values(%'
                 THEN SQLERRM END,
            sync._shop_refusal(SQLSTATE, SQLERRM, schema_, table_, constraint_, context),
            'SQLSTATE ' || SQLSTATE);
        leftover := NULL;
        hits := NULL;
        searched := NULL;
        result := '{}';
    END;
    UPDATE gdpr.erasure_request AS e
    SET state = CASE WHEN problem IS NULL THEN 'done' ELSE 'failed' END,
        attempts = e.attempts + 1,
        last_error = pg_catalog.left(problem, 500),
        finished_at = CASE WHEN problem IS NULL THEN p_now END,
        digests = CASE WHEN problem IS NULL THEN NULL ELSE e.digests END,
        residue_hits = hits,
        residue = leftover,
        columns_searched = searched,
        outbox_id = coalesce((result ->> 'outbox_id')::bigint, e.outbox_id)
    WHERE e.id = p_request_id;
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts, reason,
                            customer_key)
    VALUES (actor, 'erasure.executed', CASE WHEN problem IS NULL THEN 'applied' ELSE 'failed' END,
            number, (sync._key_ids(ARRAY[request.customer_key]))[1],
            pg_catalog.jsonb_build_object('residue_hits', hits, 'columns_searched', searched,
                                          'same_email_customers',
                                          pg_catalog.cardinality(sharing)),
            coalesce(pg_catalog.left(problem, 500), pg_catalog.format('request %s', p_request_id)),
            sync._shown_key(request.customer_key));
    RETURN pg_catalog.jsonb_build_object(
        'request', p_request_id,
        'state', CASE WHEN problem IS NULL THEN 'done' ELSE 'failed' END,
        'residue_hits', hits, 'columns_searched', searched, 'residue', leftover,
        'counts', coalesce(result -> 'counts', '{}'), 'outbox_id', result -> 'outbox_id',
        'same_email_customers',
        coalesce(pg_catalog.to_jsonb(sync._key_ids(sharing)), pg_catalog.to_jsonb(sharing)),
        'tables_not_searched', pg_catalog.to_jsonb(skipped), 'error', problem);
END
$$;

-- Execute every scheduled request that is due at p_now (the daily job). Returns how many were
-- done and failed: {"done": n, "failed": n}.
-- Example: SELECT gdpr.execute_due_erasures('retention', now());
CREATE OR REPLACE FUNCTION gdpr.execute_due_erasures(
    p_actor text DEFAULT 'scheduler', p_now timestamptz DEFAULT now())
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    due     bigint;
    outcome jsonb;
    done    integer := 0;
    failed  integer := 0;
BEGIN
    PERFORM sync._checked_job_time(p_now);
    FOR due IN
        SELECT e.id FROM gdpr.erasure_request AS e
        WHERE e.state = 'scheduled' AND e.scheduled_for <= p_now
        ORDER BY e.scheduled_for, e.id
    LOOP
        outcome := gdpr.execute_erasure(due, p_actor, p_now);
        IF outcome ->> 'state' = 'done' THEN
            done := done + 1;
        ELSE
            failed := failed + 1;
        END IF;
    END LOOP;
    RETURN pg_catalog.jsonb_build_object('done', done, 'failed', failed);
END
$$;
