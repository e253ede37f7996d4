-- Merging customers (old -> survivor), from the feed (customer.merged) or by hand, on the mapped
-- customer table whatever its schema and key type (numbers resolved by syncmap.key_of). In one
-- transaction: every row of every customer-linked table that references the old customer is
-- re-pointed to the survivor (unique conflicts resolved first by the table's declared rule; an
-- undeclared conflict refuses the merge, nothing is deleted), the survivor's blank fields are
-- filled from the old customer, the old customer row is removed (sql/49_move_customer.sql),
-- and a permanent redirect old -> survivor is recorded, kept flat so every lookup is one step
-- (sql/48_redirect.sql). Impossible merges raise a class SY error
-- (docs/merge-and-anonymise.md); the feed turns them into dead letters.
--
-- Lock order: both customer rows, in key order (syncmap.lock_customers), before anything else
-- is touched; then the linked tables in sync.customer_links() order. Re-runnable.
--
-- SQLSTATEs: SY001 merge into self, SY002 cycle, SY003 survivor was merged away,
-- SY004 survivor anonymised or deleted, SY005 survivor unknown, SY006 old anonymised or
-- deleted, SY007 old already merged into another customer, SY010 unresolved unique conflict,
-- SY011 a clashing row the merge rule would delete is referenced (sql/57_moves_compile.sql).

-- ---------------------------------------------------------------------------------------------
-- Checks and plans
-- ---------------------------------------------------------------------------------------------

-- Why old -> survivor cannot be merged, as (SQLSTATE, reason), or NULLs when it can. A merge
-- that is already in place (old redirects to survivor) is not refused: it is a no-op.
CREATE OR REPLACE FUNCTION sync.merge_refusal(
    p_old text, p_survivor text, OUT code text, OUT reason text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_target      text;
    survivor_target text;
    survivor_kind   text;
    old_kind        text;
BEGIN
    SELECT r.survivor_number INTO survivor_target
    FROM sync.redirect AS r WHERE r.old_number = p_survivor;
    SELECT r.survivor_number INTO old_target FROM sync.redirect AS r WHERE r.old_number = p_old;
    SELECT t.kind INTO survivor_kind FROM sync.tombstone AS t WHERE t.customer_number = p_survivor;
    SELECT t.kind INTO old_kind FROM sync.tombstone AS t WHERE t.customer_number = p_old;
    IF p_old = p_survivor THEN
        code := 'SY001';
        reason := pg_catalog.format('merge of %s into itself', p_old);
    ELSIF survivor_target = p_old THEN
        code := 'SY002';
        reason := pg_catalog.format('merge of %s into %s would make a cycle: %s was merged into %s',
                                    p_old, p_survivor, p_survivor, p_old);
    ELSIF survivor_target IS NOT NULL THEN
        code := 'SY003';
        reason := pg_catalog.format('survivor %s was itself merged into %s',
                                    p_survivor, survivor_target);
    ELSIF survivor_kind IS NOT NULL THEN
        code := 'SY004';
        reason := pg_catalog.format('survivor %s is %s', p_survivor, survivor_kind);
    ELSIF old_kind IS NOT NULL THEN
        code := 'SY006';
        reason := pg_catalog.format('old customer %s is %s', p_old, old_kind);
    ELSIF old_target IS NOT NULL AND old_target <> p_survivor THEN
        code := 'SY007';
        reason := pg_catalog.format('old customer %s was already merged into %s', p_old, old_target);
    ELSIF syncmap.key_of(p_old) IS NOT NULL AND syncmap.key_of(p_survivor) IS NULL THEN
        code := 'SY005';
        reason := pg_catalog.format('survivor %s is not a local customer', p_survivor);
    END IF;
END
$$;

-- Rows of the old customer per linked table that a merge would move: re-pointed, or resolved
-- by the table's rule (`conflicts` of them clash with a survivor row on a unique key; `rule`
-- NULL with conflicts > 0 means the merge would be refused). Includes the customer table (the
-- old row, removed) and the related rows removed with it (an address only it used, or its
-- default address that names no customer in an address book: sync._related_unused), each row
-- once (two pointers to one row), added to the table's moved rows when the table is linked too
-- (one count a table, as the merge reports). Empty when the old customer is not local (the
-- merge only records a redirect).
CREATE OR REPLACE FUNCTION sync.merge_plan(p_old text, p_survivor text)
RETURNS TABLE (table_name text, rows bigint, conflicts bigint, rule text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_key      text := syncmap.key_of(p_old);
    survivor_key text := syncmap.key_of(p_survivor);
    mapped       record;
    link         record;
    key          record;
    related      record;
    clashes      bigint;
    removed      bigint;
    -- the related rows deleted with the old customer, per table, and which rows (once each)
    absorbed     jsonb := '{}';
    seen         text[] := '{}';
BEGIN
    IF old_key IS NULL THEN
        RETURN;
    END IF;
    SELECT m.key_type, sync._customer_table_name() AS qualified_name INTO mapped
    FROM sync.mapped_customer() AS m;
    FOR related IN SELECT * FROM sync._related_of(old_key) LOOP
        CONTINUE WHEN related.qualified_name || ':' || related.pointed = ANY (seen);
        seen := seen || (related.qualified_name || ':' || related.pointed);
        EXECUTE related.counted INTO removed USING related.pointed, old_key;
        CONTINUE WHEN removed = 0;
        absorbed := sync._add_count(absorbed, related.qualified_name, removed);
    END LOOP;
    FOR link IN SELECT * FROM sync.customer_links() LOOP
        EXECUTE pg_catalog.format('SELECT count(*) FROM %s AS o WHERE o.%I = $1::%s',
                                  link.relation, link.fk_column, link.column_type)
            INTO rows USING old_key;
        rows := rows + coalesce((absorbed ->> link.qualified_name)::bigint, 0);
        absorbed := absorbed - link.qualified_name;
        CONTINUE WHEN rows = 0;
        conflicts := 0;
        FOR key IN SELECT * FROM sync._unique_keys(link.relation, link.fk_column) LOOP
            EXECUTE pg_catalog.format(
                'SELECT count(*) FROM %1$s AS o WHERE o.%2$I = $1::%4$s '
                'AND EXISTS (SELECT FROM %1$s AS s WHERE s.%2$I = $2::%4$s AND %3$s)',
                link.relation, link.fk_column, key.same_key, link.column_type)
                INTO clashes USING old_key, survivor_key;
            conflicts := conflicts + clashes;
        END LOOP;
        table_name := link.qualified_name;
        rule := (SELECT m.rule FROM sync.merge_rule AS m
                 WHERE m.table_schema = link.table_schema AND m.table_name = link.table_name);
        RETURN NEXT;
    END LOOP;
    table_name := mapped.qualified_name;
    rows := 1;
    conflicts := 0;
    rule := NULL;
    RETURN NEXT;
    -- the related rows only the old customer uses, deleted with it
    FOR related IN SELECT DISTINCT ON (r.qualified_name) r.qualified_name
                   FROM sync._related_tables() AS r
                   ORDER BY r.qualified_name LOOP
        CONTINUE WHEN NOT absorbed ? related.qualified_name;
        table_name := related.qualified_name;
        rows := (absorbed ->> related.qualified_name)::bigint;
        RETURN NEXT;
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The merge (private)
-- ---------------------------------------------------------------------------------------------

-- The merge itself, for the feed and for callers by hand, who make the compiled moves current
-- first (sync._moves_current()). Raises a class SY error when the merge is impossible; returns
-- {"outcome", "reason", "counts"} and writes one audit row (customer_id: the survivor's key when
-- the key is an integer, else NULL).
CREATE OR REPLACE FUNCTION sync._merge(
    p_old text,
    p_survivor text,
    p_event_id text,
    p_inbox_id bigint,
    p_actor text,
    p_version integer)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started      timestamptz := pg_catalog.clock_timestamp();
    old_key      text;
    survivor_key text;
    survivor_id  bigint;
    refused      record;
    counts      jsonb := '{}';
    outcome     text := 'applied';
    why         text;
BEGIN
    -- the lock order every merge, anonymisation and concurrent shop write agrees on
    PERFORM syncmap.lock_customers(ARRAY[syncmap.key_of(p_old), syncmap.key_of(p_survivor)]);
    old_key := syncmap.key_of(p_old);
    survivor_key := syncmap.key_of(p_survivor);
    SELECT m.customer_id INTO survivor_id
    FROM syncmap.customer_map AS m WHERE m.customer_number = p_survivor;

    IF EXISTS (SELECT FROM sync.redirect AS r
               WHERE r.old_number = p_old AND r.survivor_number = p_survivor) THEN
        outcome := 'skipped';
        why := 'already_merged';
    ELSE
        SELECT * INTO refused FROM sync.merge_refusal(p_old, p_survivor);
        IF refused.code IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = refused.code, MESSAGE = refused.reason;
        END IF;
        IF old_key IS NULL THEN
            why := 'redirect_only';
        ELSE
            SELECT m.counts, m.reason INTO counts, why
            FROM syncmap.move_customer(old_key, survivor_key) AS m;
        END IF;
        INSERT INTO sync.redirect (old_number, survivor_number, event_id)
        VALUES (p_old, p_survivor, p_event_id);
        -- keep redirects flat: whatever pointed at the old number now points at the survivor
        UPDATE sync.redirect AS r SET survivor_number = p_survivor
        WHERE r.survivor_number = p_old;
    END IF;

    INSERT INTO sync.audit (actor, action, outcome, event_id, inbox_id, customer_number,
                            customer_id, version, counts, reason, duration_ms, related_number,
                            customer_key)
    VALUES (p_actor, 'customer.merged', outcome, p_event_id, p_inbox_id, p_old, survivor_id,
            p_version, counts, why,
            EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000, p_survivor,
            sync._shown_key(survivor_key));
    RETURN pg_catalog.jsonb_build_object('outcome', outcome, 'reason', why, 'counts', counts);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Merge customer p_old into p_survivor by hand. Returns {"outcome", "reason", "counts"};
-- raises SY001..SY011 when the merge is impossible. With p_event_id, a second call with the
-- same id is a no-op that returns {"outcome": "duplicate"}.
-- Example: SELECT sync.merge_customer('TX00000001', 'TX00000002', NULL, 'ops:alice');
CREATE OR REPLACE FUNCTION sync.merge_customer(
    p_old text,
    p_survivor text,
    p_event_id text DEFAULT NULL,
    p_actor text DEFAULT CURRENT_USER)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    context     text;
BEGIN
    PERFORM sync._checked_identifier(p_actor, 'actor');
    PERFORM sync._moves_current();
    IF p_event_id IS NOT NULL
       AND EXISTS (SELECT FROM sync.audit AS a WHERE a.event_id = p_event_id) THEN
        RETURN '{"outcome": "duplicate"}'::jsonb;
    END IF;
    RETURN sync._merge(p_old, p_survivor, p_event_id, NULL, p_actor, NULL);
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

-- Merge several customers into one survivor in one transaction (an N-way merge). All customer
-- rows are locked in key order first. Returns {"merged": n, "counts": {table: rows}}; any
-- impossible pair raises and nothing is merged.
CREATE OR REPLACE FUNCTION sync.merge_customers(
    p_olds text[],
    p_survivor text,
    p_actor text DEFAULT CURRENT_USER)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old    text;
    result jsonb;
    merged integer := 0;
    totals jsonb := '{}';
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    context     text;
BEGIN
    PERFORM sync._checked_identifier(p_actor, 'actor');
    PERFORM sync._moves_current();
    PERFORM syncmap.lock_customers(ARRAY(
        SELECT m.customer_key::text FROM syncmap.customer_map AS m
        WHERE m.customer_number = ANY (p_olds || p_survivor)));
    FOR old IN SELECT DISTINCT o FROM pg_catalog.unnest(p_olds) AS o ORDER BY o LOOP
        result := sync._merge(old, p_survivor, NULL, NULL, p_actor, NULL);
        IF result ->> 'outcome' = 'applied' THEN
            merged := merged + 1;
        END IF;
        SELECT coalesce(pg_catalog.jsonb_object_agg(k, n), '{}') INTO totals
        FROM (
            SELECT e.key AS k, sum(e.value::bigint) AS n
            FROM (SELECT * FROM pg_catalog.jsonb_each_text(totals)
                  UNION ALL
                  SELECT * FROM pg_catalog.jsonb_each_text(result -> 'counts')) AS e
            GROUP BY e.key
        ) AS s;
    END LOOP;
    RETURN pg_catalog.jsonb_build_object('merged', merged, 'counts', totals);
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
