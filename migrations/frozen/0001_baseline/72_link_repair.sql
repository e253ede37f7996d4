-- Adoption and link repair: moving an unlinked local customer into the linked one tritonX's own
-- e-mail names (at login, `syncctl links repair` and bootstrap, all deciding by
-- sync._adoption_match in sql/70_login.sql), repairing a link to a merged-away number, and the
-- views `syncctl links check` reports from. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Functions
-- ---------------------------------------------------------------------------------------------

-- Adopt an unlinked local customer (a row of the mapped customer table that is not in
-- syncmap.customer_map; keys as text): it becomes the linked customer and keeps the shop's key.
-- The customer row tritonX's number arrived on (a login's stub, or the feed's copy) is absorbed
-- into it as a merge absorbs an old customer: its rows (a consent given at that login, say) move
-- over, then the number, the version and the columns tritonX owns (the active mapping's
-- customer.columns) move onto the local row, and so does its sync.customer_link row (number
-- and/or version kept there); a local customer that points to no [[related]] row (its address)
-- takes the absorbed row's; one that points to its own keeps it, and that row takes tritonX's
-- values of the columns tritonX owns there (the [[related]] entry's columns) from the absorbed
-- row's; a row it shares with another customer (or that another table references) stays as it
-- is for them, and the local customer takes the absorbed row instead. Columns tritonX does not
-- own keep the local customer's values. Used by login, link repair and bootstrap; only for the pair
-- sync._adoption_match names (tritonX's own e-mail matches exactly this local customer).
-- Returns the rows moved per table.
-- Example: SELECT sync.adopt_local_customer_key('42', '4711', 'ops:links-repair');
CREATE OR REPLACE FUNCTION sync.adopt_local_customer_key(
    p_local_key text, p_linked_key text, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started  timestamptz := pg_catalog.clock_timestamp();
    number   text;
    present  boolean;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    context     text;
BEGIN
    PERFORM sync._checked_identifier(p_actor, 'actor');
    PERFORM sync._checked_length(p_local_key, sync._key_limit(), 'local customer key');
    -- the compiled moves, current before any customer is locked (sql/57_moves_compile.sql)
    PERFORM sync._moves_current();
    PERFORM sync._checked_length(p_linked_key, sync._key_limit(), 'linked customer key');
    -- the keys in their own text form ('042' is '42'), as every engine table holds them: a
    -- customer's consents, requests and link rows move with it only under that form
    p_local_key := sync._local_customer_key(p_local_key);
    p_linked_key := sync._local_customer_key(p_linked_key);
    PERFORM syncmap.lock_customers(ARRAY[p_local_key, p_linked_key]);
    present := sync._customer_exists(p_local_key);
    -- the keys are never echoed: a text key may be anything, an e-mail address too
    IF NOT present OR syncmap.number_of(p_local_key) IS NOT NULL THEN
        RAISE EXCEPTION 'the local customer key names no unlinked local customer'
            USING ERRCODE = 'SY050';
    END IF;
    number := syncmap.number_of(p_linked_key);
    IF number IS NULL THEN
        RAISE EXCEPTION 'the linked customer key names no customer linked to tritonX'
            USING ERRCODE = 'SY051';
    END IF;
    -- only the pair tritonX's own e-mail names: nobody moves a stranger's orders by keys alone
    IF NOT EXISTS (SELECT FROM sync._adoption_match(p_linked_key) AS m
                   WHERE m.local_keys = ARRAY[p_local_key] AND NOT m.shared) THEN
        RAISE EXCEPTION 'the local customer is not the one local customer tritonX''s e-mail of %'
                        ' matches', number
            USING ERRCODE = 'SY052';
    END IF;
    RETURN sync._absorb_into_local(
        p_local_key, p_linked_key, number, p_actor,
        'local customer adopted; the customer the number had arrived on absorbed into it',
        started);
EXCEPTION WHEN OTHERS THEN
    -- a shop trigger or constraint refusing the adoption may quote the row: its SQLSTATE and
    -- names go out (the engine's own refusals as they are)
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                            constraint_ = CONSTRAINT_NAME, context = PG_EXCEPTION_CONTEXT;
    PERFORM sync._raise_without_values(state, message, schema_name, table_name, constraint_,
                                       context);
    RAISE;
END
$$;

-- The adoption itself, for callers that checked the pair and locked both customers (keys as
-- text, in their own text form): the linked customer p_linked_key (tritonX's number p_number)
-- is absorbed into the unlinked local customer p_local_key, as sync.adopt_local_customer_key
-- says; one customer.adopted audit row with p_reason. Returns the rows moved per table.
CREATE OR REPLACE FUNCTION sync._absorb_into_local(
    p_local_key text, p_linked_key text, p_number text, p_actor text, p_reason text,
    p_started timestamptz)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped   record;
    linked   jsonb;
    link     record;
    owned    text;
    pointers text;
    moved    record;
    related  record;
    new_row  text;
    columns  text;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    EXECUTE pg_catalog.format('SELECT pg_catalog.to_jsonb(c) FROM %s AS c WHERE c.%I = $1::%s',
                              mapped.relation, mapped.key_column, mapped.key_type)
        INTO linked USING p_linked_key;
    SELECT l.customer_number, l.version INTO link
    FROM sync.customer_link AS l WHERE l.customer_key = p_linked_key;
    -- a local customer pointing to a related row of its own: that row takes tritonX's values
    -- (the absorbed row's) when only this customer uses it, else the customer takes the
    -- absorbed row (the shared row stays as it is for the others)
    FOR related IN SELECT * FROM sync._pointed_rows(p_local_key) LOOP
        new_row := linked ->> related.pointer::text;
        CONTINUE WHEN new_row IS NULL OR related.target = new_row;
        SELECT pg_catalog.string_agg(pg_catalog.format('%1$I = o.%1$I', c.key), ', ')
        INTO columns
        FROM pg_catalog.jsonb_object_keys(coalesce(related.related -> 'columns', '{}'))
             AS c (key);
        IF related.shared THEN
            EXECUTE pg_catalog.format('UPDATE %s AS s SET %I = $1::%s WHERE s.%I = $2::%s',
                                      mapped.relation, related.pointer, related.key_type,
                                      mapped.key_column, mapped.key_type)
                USING new_row, p_local_key;
        ELSIF columns IS NOT NULL THEN
            EXECUTE pg_catalog.format(
                'UPDATE %1$s AS r SET %2$s FROM %1$s AS o '
                'WHERE r.%3$I = $1::%4$s AND o.%3$I = $2::%4$s',
                related.relation, columns, related.key_column, related.key_type)
                USING related.target, new_row;
        END IF;
    END LOOP;
    -- a local customer pointing to no related row takes the absorbed row's (kept: in use)
    SELECT pg_catalog.string_agg(pg_catalog.format('%1$I = coalesce(s.%1$I, o.%1$I)', r.col),
                                 ', ')
    INTO pointers
    FROM sync.mapping_version AS v
    CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(
        CASE WHEN pg_catalog.jsonb_typeof(v.document -> 'related') = 'array'
             THEN v.document -> 'related' ELSE '[]' END) AS x (item)
    CROSS JOIN LATERAL (SELECT x.item #>> '{via,customer_column}') AS r (col)
    WHERE v.active AND r.col IS NOT NULL;
    IF pointers IS NOT NULL THEN
        EXECUTE pg_catalog.format(
            'UPDATE %1$s AS s SET %2$s FROM pg_catalog.jsonb_populate_record(NULL::%1$s, $1) AS o '
            'WHERE s.%3$I = $2::%4$s',
            mapped.relation, pointers, mapped.key_column, mapped.key_type)
            USING linked, p_local_key;
    END IF;
    -- the absorbed row (and its link row) go before its number moves: it stays unique throughout
    SELECT * INTO moved FROM syncmap.move_customer(p_linked_key, p_local_key);
    SELECT pg_catalog.string_agg(pg_catalog.format('%1$I = o.%1$I', o.column_name), ', ')
    INTO owned
    FROM sync.mapping_version AS v
    CROSS JOIN LATERAL (
        SELECT pg_catalog.jsonb_object_keys(v.document #> '{customer,columns}')
        UNION ALL SELECT v.document #>> '{customer,number,column}'
        UNION ALL SELECT v.document #>> '{customer,version,column}') AS o (column_name)
    WHERE v.active AND o.column_name IS NOT NULL;
    IF owned IS NOT NULL THEN
        -- tritonX's values, its consent field among them: not a local consent decision (the
        -- merge of the absorbed customer's consents above decided it)
        PERFORM gdpr._set_consent_source('tritonx');
        EXECUTE pg_catalog.format(
            'UPDATE %1$s AS s SET %2$s FROM pg_catalog.jsonb_populate_record(NULL::%1$s, $1) AS o '
            'WHERE s.%3$I = $2::%4$s',
            mapped.relation, owned, mapped.key_column, mapped.key_type)
            USING linked, p_local_key;
        PERFORM gdpr._set_consent_source(NULL);
    END IF;
    IF link.customer_number IS NOT NULL OR link.version IS NOT NULL THEN
        INSERT INTO sync.customer_link (customer_key, customer_number, version)
        VALUES (p_local_key, link.customer_number, link.version);
    END IF;
    UPDATE sync.link_conflict AS l SET resolved_at = pg_catalog.now()
    WHERE p_local_key = ANY (l.candidate_keys) AND l.resolved_at IS NULL;
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts,
                            reason, duration_ms, customer_key)
    VALUES (p_actor, 'customer.adopted', 'applied', p_number,
            (sync._key_ids(ARRAY[p_local_key]))[1], moved.counts, p_reason,
            EXTRACT(epoch FROM pg_catalog.clock_timestamp() - p_started) * 1000,
            sync._shown_key(p_local_key));
    RETURN moved.counts;
END
$$;

-- Adoption on arrival: the upsert in inbox row p_inbox_id (of the batch p_first..p_last) that
-- a unique index of the shop's refused (on the e-mail, say): tritonX's customer cannot get the
-- e-mail of an unlinked local customer next to it, so there would never be a row holding
-- tritonX's e-mail for login or `links repair` to adopt. When tritonX's own e-mail in the
-- snapshot (the field the mapped e-mail column takes, sync._email_column) names exactly one
-- unlinked local customer and no linked one (the rule of sync._adoption_match), that customer
-- is adopted now: for a new number it is linked to it; for a number that has a customer
-- already (an earlier snapshot had another e-mail), that customer is absorbed into it as
-- sync.adopt_local_customer_key does. Either way the local customer keeps its key and the
-- columns tritonX does not own, and the event is then applied to it by the feed's own write;
-- audited customer.adopted. Returns whether it was; false leaves nothing changed (the caller
-- makes the event a dead letter). A transient error raises.
CREATE OR REPLACE FUNCTION sync._adopt_on_arrival(
    p_first bigint, p_last bigint, p_inbox_id bigint)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started     timestamptz := pg_catalog.clock_timestamp();
    mapped      record;
    email       name := sync._email_column();
    staged      record;
    wanted      text;
    locals      text[];
    shared      boolean;
    existing    text;
    number_col  text;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    err_context text;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    IF email IS NULL OR mapped.relation IS NULL THEN
        RETURN false;
    END IF;
    PERFORM sync.open_page();
    SELECT i.source, i.event_id, i.customer_number,
           r.payload -> 'customer' ->> 'email' AS email
    INTO staged
    FROM sync.inbox AS i
    CROSS JOIN LATERAL (
        SELECT coalesce(i.payload, (SELECT p.payload FROM pg_temp.syncctl_page AS p
                                    WHERE p.id = i.id)) AS payload) AS r
    WHERE i.id = p_inbox_id AND i.event_type = 'customer.upserted';
    wanted := sync.normalise_email(staged.email);
    IF coalesce(wanted, '') = '' THEN
        RETURN false;
    END IF;
    existing := syncmap.key_of(staged.customer_number);
    EXECUTE pg_catalog.format(
        'SELECT ARRAY(SELECT l.%2$I::text FROM %1$s AS l '
        '             WHERE sync.normalise_email(l.%3$I::text) = $1 '
        '               AND NOT EXISTS (SELECT FROM syncmap.customer_map AS m '
        '                               WHERE m.customer_key = l.%2$I) '
        '             ORDER BY l.%2$I LIMIT 2), '
        '       EXISTS (SELECT FROM %1$s AS o JOIN syncmap.customer_map AS m '
        '                 ON m.customer_key = o.%2$I '
        '               WHERE sync.normalise_email(o.%3$I::text) = $1)',
        mapped.relation, mapped.key_column, email)
        INTO locals, shared USING wanted;
    IF pg_catalog.cardinality(locals) IS DISTINCT FROM 1 OR shared THEN
        RETURN false;
    END IF;
    SELECT v.document #>> '{customer,number,column}' INTO number_col
    FROM sync.mapping_version AS v WHERE v.active;
    BEGIN
        -- the compiled moves, current before any customer is locked (a page of upserts
        -- alone has not made them current)
        PERFORM sync._moves_current();
        PERFORM syncmap.lock_customers(locals || existing);
        IF existing IS NOT NULL THEN
            PERFORM sync._absorb_into_local(
                locals[1], existing, staged.customer_number, staged.source,
                'local customer adopted: tritonX gave its e-mail to the customer of this '
                'number, and a unique index of the shop''s refused two rows with it', started);
        -- linked: the number on its row (or its link row), no version yet (any is newer)
        ELSIF number_col IS NULL THEN
            INSERT INTO sync.customer_link (customer_key, customer_number)
            VALUES (locals[1], staged.customer_number)
            ON CONFLICT (customer_key) DO UPDATE SET customer_number = excluded.customer_number;
        ELSE
            EXECUTE pg_catalog.format('UPDATE %1$s AS c SET %2$I = $1 WHERE c.%3$I = $2::%4$s',
                                      mapped.relation, number_col, mapped.key_column,
                                      mapped.key_type)
                USING staged.customer_number, locals[1];
        END IF;
        PERFORM sync._apply_upserts(p_first, p_last, ARRAY[p_inbox_id]);
        IF NOT EXISTS (SELECT FROM sync.audit AS a
                       WHERE a.event_id = staged.event_id AND a.outcome = 'applied') THEN
            RAISE EXCEPTION USING ERRCODE = 'SY098', MESSAGE = 'not adopted';
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                                constraint_ = CONSTRAINT_NAME, err_context = PG_EXCEPTION_CONTEXT;
        IF sync._error_without_values(state, message, schema_name, table_name, constraint_,
                                      err_context) IS NULL THEN
            RAISE;
        END IF;
        RETURN false;
    END;
    IF existing IS NOT NULL THEN
        RETURN true;  -- audited by sync._absorb_into_local
    END IF;
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, reason,
                            duration_ms, customer_key)
    VALUES (staged.source, 'customer.adopted', 'applied', staged.customer_number,
            (sync._key_ids(locals))[1],
            'local customer adopted on arrival: a unique index of the shop''s refused a second '
            'row for tritonX''s e-mail',
            EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000,
            sync._shown_key(locals[1]));
    RETURN true;
END
$$;

-- sync.adopt_local_customer_key for a mapped key of an integer type (ids as bigint).
-- Example: SELECT sync.adopt_local_customer(42, 4711, 'ops:links-repair');
CREATE OR REPLACE FUNCTION sync.adopt_local_customer(
    p_local_id bigint, p_linked_id bigint, p_actor text)
RETURNS jsonb
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync.adopt_local_customer_key(p_local_id::text, p_linked_id::text, p_actor)
$$;

-- Repair a local customer still linked to a merged-away number (the shop linked it before
-- syncctl knew of the merge): its rows move into the survivor's local customer as a merge moves
-- them, or, when the survivor has no local customer yet, the link moves to the survivor's number
-- (its tritonX version is forgotten so the survivor's next snapshot applies, and a refresh is
-- requested). A survivor that was anonymised or deleted is left alone: outcome 'skipped', as a
-- merge into an erased customer is refused. Audited as 'customer.relinked' (customer_number the
-- old number, related_number the survivor). Returns {"outcome", "reason", "counts"}.
-- Example: SELECT sync.repair_redirected_link('TX00000001', 'ops:alice');
CREATE OR REPLACE FUNCTION sync.repair_redirected_link(p_customer_number text, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started      timestamptz := pg_catalog.clock_timestamp();
    survivor     text := sync.resolve_customer_number(
                             sync._checked_length(p_customer_number, 32, 'customer number'));
    mapped       record;
    document     jsonb;
    old_key      text;
    survivor_key text;
    erased_as    text;
    cleared      text;
    counts       jsonb := '{}';
    outcome      text := 'applied';
    why          text;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    context     text;
BEGIN
    PERFORM sync._checked_identifier(p_actor, 'actor');
    -- the compiled moves, current before any customer is locked (sql/57_moves_compile.sql)
    PERFORM sync._moves_current();
    SELECT * INTO mapped FROM sync.mapped_customer();
    SELECT v.document INTO document FROM sync.mapping_version AS v WHERE v.active;
    -- the lock order every merge, anonymisation and concurrent shop write agrees on
    PERFORM syncmap.lock_customers(ARRAY[syncmap.key_of(p_customer_number),
                                         syncmap.key_of(survivor)]);
    old_key := syncmap.key_of(p_customer_number);
    survivor_key := syncmap.key_of(survivor);
    SELECT t.kind INTO erased_as FROM sync.tombstone AS t WHERE t.customer_number = survivor;
    IF old_key IS NULL OR survivor = p_customer_number THEN
        outcome := 'skipped';
        why := 'not linked to a merged-away number';
    ELSIF erased_as IS NOT NULL THEN
        outcome := 'skipped';
        why := pg_catalog.format('survivor %s is %s', survivor, erased_as);
    ELSIF survivor_key IS NULL THEN
        -- the number (in its column or the link row) becomes the survivor's; the version and
        -- the column fed by tritonX's updated_at are forgotten, so the survivor's next
        -- snapshot applies
        SELECT pg_catalog.string_agg(pg_catalog.format('%I = NULL', o.key), ', ')
        INTO cleared
        FROM pg_catalog.jsonb_each(document #> '{customer,columns}') AS o
        WHERE coalesce(o.value ->> 'field', o.value #>> '{}') = 'updated_at'
          AND pg_catalog.jsonb_typeof(o.value) IN ('string', 'object');
        cleared := pg_catalog.concat_ws(', ',
            CASE WHEN document #>> '{customer,number,column}' IS NOT NULL
                 THEN pg_catalog.format('%I = $2', document #>> '{customer,number,column}') END,
            CASE WHEN document #>> '{customer,version,column}' IS NOT NULL
                 THEN pg_catalog.format('%I = NULL', document #>> '{customer,version,column}')
            END,
            cleared);
        IF cleared <> '' THEN
            EXECUTE pg_catalog.format('UPDATE %1$s AS c SET %2$s WHERE c.%3$I = $1::%4$s',
                                      mapped.relation, cleared, mapped.key_column,
                                      mapped.key_type)
                USING old_key, survivor;
        END IF;
        UPDATE sync.customer_link AS l
        SET customer_number = CASE WHEN l.customer_number IS NOT NULL THEN survivor END,
            version = NULL
        WHERE l.customer_key = old_key;
        survivor_key := old_key;
        counts := pg_catalog.jsonb_build_object(sync._customer_table_name(), 1);
        why := 'link moved to the survivor';
        PERFORM sync.request_refresh(survivor);
    ELSE
        SELECT m.counts, m.reason INTO counts, why
        FROM syncmap.move_customer(old_key, survivor_key) AS m;
    END IF;
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts,
                            reason, duration_ms, related_number, customer_key)
    VALUES (p_actor, 'customer.relinked', outcome, p_customer_number,
            (sync._key_ids(ARRAY[coalesce(survivor_key, old_key)]))[1], counts, why,
            EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000, survivor,
            sync._shown_key(coalesce(survivor_key, old_key)));
    RETURN pg_catalog.jsonb_build_object('outcome', outcome, 'reason', why, 'counts', counts);
EXCEPTION WHEN OTHERS THEN
    -- a shop trigger or constraint refusing the repair may quote the row: its SQLSTATE and
    -- names go out (the engine's own refusals as they are)
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                            constraint_ = CONSTRAINT_NAME, context = PG_EXCEPTION_CONTEXT;
    PERFORM sync._raise_without_values(state, message, schema_name, table_name, constraint_,
                                       context);
    RAISE;
END
$$;

-- What `syncctl links repair` moves: the customers of the mapped table still linked to a
-- merged-away number, with the survivor's number (numbers only), oldest link first.
-- Example: SELECT * FROM sync.misdirected_links();
CREATE OR REPLACE FUNCTION sync.misdirected_links()
RETURNS TABLE (customer_number text, survivor_number text)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT m.customer_number, r.survivor_number
    FROM syncmap.customer_map AS m
    JOIN sync.redirect AS r ON r.old_number = m.customer_number
    ORDER BY m.customer_key;
END
$$;

-- A random sample of up to p_limit linked tritonX numbers of the mapped table (what
-- `syncctl links check --probe N` asks tritonX about).
-- Example: SELECT * FROM sync.sample_linked_numbers(100);
CREATE OR REPLACE FUNCTION sync.sample_linked_numbers(p_limit integer)
RETURNS TABLE (customer_number text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT m.customer_number FROM syncmap.customer_map AS m
    ORDER BY pg_catalog.random()
    LIMIT LEAST(GREATEST(p_limit, 0), 100000);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------

-- The counts `syncctl status`, `links check` and bootstrap's report give, on the mapped customer
-- table (any schema, any key type): customers linked to a tritonX number (in
-- syncmap.customer_map), local customers without one (the table's other rows), groups of
-- customers sharing one normalised e-mail (on the mapped e-mail column, sync._email_column; 0
-- when the mapping has none), customers linked to a merged-away number, and open link
-- conflicts. Counts only, no personal data.
-- Example: SELECT * FROM sync.link_counts();
CREATE OR REPLACE FUNCTION sync.link_counts()
RETURNS TABLE (linked bigint, unlinked bigint, shared_emails bigint, merged_away bigint,
               open_conflicts bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped record;
    email  name := sync._email_column();
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    open_conflicts := (SELECT count(*) FROM sync.link_conflict AS l WHERE l.resolved_at IS NULL);
    merged_away := (SELECT count(*) FROM syncmap.customer_map AS m
                    JOIN sync.redirect AS r ON r.old_number = m.customer_number);
    linked := (SELECT count(*) FROM syncmap.customer_map);
    EXECUTE pg_catalog.format('SELECT count(*) FROM %s', mapped.relation) INTO unlinked;
    unlinked := unlinked - linked;
    shared_emails := 0;
    IF email IS NOT NULL THEN
        EXECUTE pg_catalog.format(
            'SELECT count(*) FROM (SELECT FROM %s AS c WHERE c.%2$I IS NOT NULL '
            'GROUP BY sync.normalise_email(c.%2$I::text) HAVING count(*) > 1) AS g',
            mapped.relation, email)
            INTO shared_emails;
    END IF;
    RETURN NEXT;
END
$$;

-- What `syncctl links check` reports: one row an anomaly kind, with a count.
CREATE OR REPLACE VIEW sync.link_anomaly AS
SELECT a.anomaly, a.customers
FROM sync.link_counts() AS c
CROSS JOIN LATERAL (VALUES ('several local customers with one email', c.shared_emails),
                           ('linked to a merged-away number', c.merged_away),
                           ('local customer without a tritonX number', c.unlinked),
                           ('open link conflicts', c.open_conflicts)) AS a (anomaly, customers);

-- Linked customers whose tritonX e-mail (from a snapshot) matches unlinked local customers, as
-- sync._adoption_match decides it: keys as text (linked_key, local_keys), and as bigint ids
-- (linked_id, local_ids) when the mapped key is an integer. Runs as the owner: the controller
-- plans `links repair` and bootstrap with it and reads no shop table itself.
DROP VIEW IF EXISTS sync.adoptable_customer;
DROP VIEW IF EXISTS sync.adoption_match;
CREATE OR REPLACE FUNCTION sync.adoption_matches()
RETURNS TABLE (linked_id bigint, customer_number text, local_ids bigint[], shared boolean,
               linked_key text, local_keys text[])
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
        SELECT (sync._key_ids(ARRAY[m.linked_key]))[1], m.customer_number,
               sync._key_ids(m.local_keys), m.shared, m.linked_key, m.local_keys
        FROM sync._adoption_match(NULL::text) AS m;
END
$$;

CREATE VIEW sync.adoption_match AS
SELECT m.linked_id, m.customer_number, m.local_ids, m.shared, m.linked_key, m.local_keys
FROM sync.adoption_matches() AS m;

-- What `syncctl links repair` (and bootstrap) adopt: the unlinked local customer that is the
-- only one with a linked customer's tritonX e-mail, when no other linked customer has it.
-- Two unlinked local customers with one e-mail adopt neither (a link conflict, as at login).
-- The controller plans with it: the keys as sync.shown_key shows them (NULL for a text key,
-- which may be an e-mail address), and adopts by number (sync.adopt_for_number). Computed as
-- the owner (sync.adoptable_customers), whose sync.adoption_matches() the controller may not
-- call: its keys are raw.
CREATE OR REPLACE FUNCTION sync.adoptable_customers()
RETURNS TABLE (local_id bigint, linked_id bigint, customer_number text, local_key text,
               linked_key text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.local_ids[1], m.linked_id, m.customer_number, sync._shown_key(m.local_keys[1]),
           sync._shown_key(m.linked_key)
    FROM sync.adoption_matches() AS m
    WHERE pg_catalog.cardinality(m.local_keys) = 1 AND NOT m.shared
$$;

CREATE VIEW sync.adoptable_customer AS
SELECT a.local_id, a.linked_id, a.customer_number, a.local_key, a.linked_key
FROM sync.adoptable_customers() AS a;

-- Adopt the local customer sync.adoptable_customer names for a tritonX number into the customer
-- linked to it (sync.adopt_local_customer_key): what `links repair` and bootstrap do, by
-- number, so the controller never handles a key. SY052 when no single local customer is
-- adoptable for the number (none, several, or another linked customer has the e-mail too).
-- Example: SELECT sync.adopt_for_number('TX00000007', 'ops:links-repair');
CREATE OR REPLACE FUNCTION sync.adopt_for_number(p_number text, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    linked text;
    match  record;
BEGIN
    IF NOT coalesce(sync.is_customer_number(p_number), false) THEN
        RAISE EXCEPTION 'not a tritonX customer number' USING ERRCODE = 'SY052';
    END IF;
    linked := syncmap.key_of(p_number);
    SELECT m.local_keys, m.shared INTO match
    FROM sync._adoption_match(linked) AS m
    WHERE linked IS NOT NULL AND m.linked_key = linked;
    IF NOT FOUND OR pg_catalog.cardinality(match.local_keys) <> 1 OR match.shared THEN
        RAISE EXCEPTION 'no single local customer to adopt into %', p_number
            USING ERRCODE = 'SY052';
    END IF;
    -- a shop's refusal of the adoption comes out of it by SQLSTATE and names only
    RETURN sync.adopt_local_customer_key(match.local_keys[1], linked, p_actor);
END
$$;

-- Record a link conflict for every linked customer whose tritonX e-mail matches several
-- unlinked local customers (or another linked customer as well), one open conflict a
-- customer (what `links repair` and bootstrap do before they adopt). Returns how many were
-- recorded now.
-- Example: SELECT sync.record_adoption_conflicts();
CREATE OR REPLACE FUNCTION sync.record_adoption_conflicts()
RETURNS integer
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FILTER (WHERE sync._record_ambiguous_adoption(m.customer_number, m.linked_key,
                                                                  m.local_keys))::integer
    FROM sync.adoption_match AS m
    WHERE pg_catalog.cardinality(m.local_keys) > 1 OR m.shared
$$;
