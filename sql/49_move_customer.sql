-- Moving one local customer's rows into another (private): every row of every
-- customer-linked table that references the old customer is re-pointed to the survivor (unique
-- conflicts resolved first by the table's declared rule; an undeclared conflict refuses, nothing
-- is deleted), the survivor's blank fields are filled from the old customer and the old
-- customer row is removed. The step a merge (sql/50_merge.sql) and an adoption
-- (sql/72_link_repair.sql) share; they decide, lock and audit. SQLSTATE: SY010 unresolved
-- unique conflict. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Merge steps (private)
-- ---------------------------------------------------------------------------------------------

-- Re-point one linked table's rows from p_old to p_survivor. Unique conflicts are resolved
-- first, by the declared rule, set-based per unique key; then one UPDATE moves the rest.
-- `rows` counts every old row (moved or resolved), `conflicts` the clashing pairs.
CREATE OR REPLACE FUNCTION sync._repoint(
    p_relation regclass,
    p_table_schema name,
    p_table_name name,
    p_column name,
    p_old bigint,
    p_survivor bigint,
    OUT rows bigint,
    OUT conflicts bigint)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    declared sync.merge_rule;
    key      record;
    clashes  bigint;
    removed  bigint;
    moved    bigint;
BEGIN
    rows := 0;
    conflicts := 0;
    SELECT * INTO declared FROM sync.merge_rule AS m
    WHERE m.table_schema = p_table_schema AND m.table_name = p_table_name;
    FOR key IN SELECT * FROM sync._unique_keys(p_relation, p_column) LOOP
        EXECUTE pg_catalog.format(
            'SELECT count(*) FROM %1$s AS o WHERE o.%2$I = $1 '
            'AND EXISTS (SELECT FROM %1$s AS s WHERE s.%2$I = $2 AND %3$s)',
            p_relation, p_column, key.same_key)
            INTO clashes USING p_old, p_survivor;
        CONTINUE WHEN clashes = 0;
        IF declared.rule IS NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = 'SY010',
                MESSAGE = pg_catalog.format(
                    'unresolved merge conflict: %s row(s) of %s.%s clash on %s and the table '
                    'has no merge rule', clashes, p_table_schema, p_table_name, key.key_name),
                HINT = 'declare one in sync.merge_rule';
        END IF;
        IF declared.rule = 'sum' THEN
            EXECUTE pg_catalog.format(
                'UPDATE %1$s AS s SET %4$I = s.%4$I + o.%4$I FROM %1$s AS o '
                'WHERE s.%2$I = $2 AND o.%2$I = $1 AND %3$s',
                p_relation, p_column, key.same_key, declared.quantity_column)
                USING p_old, p_survivor;
        ELSIF declared.rule = 'keep_newest' THEN
            -- the survivor's row goes where the old customer's is newer; the old row then moves
            EXECUTE pg_catalog.format(
                'DELETE FROM %1$s AS s USING %1$s AS o '
                'WHERE s.%2$I = $2 AND o.%2$I = $1 AND %3$s AND o.%4$I > s.%4$I',
                p_relation, p_column, key.same_key, declared.newest_column)
                USING p_old, p_survivor;
        END IF;
        -- keep_survivor, union, sum, and keep_newest where the survivor's row is as new: the
        -- old customer's clashing row goes
        EXECUTE pg_catalog.format(
            'DELETE FROM %1$s AS o WHERE o.%2$I = $1 '
            'AND EXISTS (SELECT FROM %1$s AS s WHERE s.%2$I = $2 AND %3$s)',
            p_relation, p_column, key.same_key)
            USING p_old, p_survivor;
        GET DIAGNOSTICS removed = ROW_COUNT;
        rows := rows + removed;
        conflicts := conflicts + clashes;
    END LOOP;
    EXECUTE pg_catalog.format('UPDATE %1$s SET %2$I = $2 WHERE %2$I = $1', p_relation, p_column)
        USING p_old, p_survivor;
    GET DIAGNOSTICS moved = ROW_COUNT;
    rows := rows + moved;
END
$$;

-- Remove the old customer row and fill the survivor's blank (NULL) fields from it: the
-- survivor's values win. The version guard and the number stay the survivor's.
CREATE OR REPLACE FUNCTION sync._absorb_customer(p_old bigint, p_survivor bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_row jsonb;
    fill    text;
BEGIN
    SELECT pg_catalog.to_jsonb(c) INTO old_row FROM shop.customer AS c WHERE c.id = p_old;
    DELETE FROM shop.customer AS c WHERE c.id = p_old;
    SELECT pg_catalog.string_agg(pg_catalog.format('%1$I = coalesce(s.%1$I, o.%1$I)', a.attname),
                                 ', ' ORDER BY a.attnum)
    INTO fill
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = 'shop.customer'::pg_catalog.regclass
      AND a.attnum > 0
      AND NOT a.attisdropped
      AND NOT a.attnotnull
      AND a.attidentity = ''
      AND a.attgenerated = ''
      AND a.attname NOT IN ('customer_number', 'tritonx_version', 'tritonx_updated_at');
    IF fill IS NOT NULL THEN
        EXECUTE pg_catalog.format(
            'UPDATE shop.customer AS s SET %s '
            'FROM pg_catalog.jsonb_populate_record(NULL::shop.customer, $1) AS o WHERE s.id = $2',
            fill)
            USING old_row, p_survivor;
    END IF;
END
$$;

-- Move everything of local customer p_old to p_survivor: every customer-linked table
-- re-pointed (unique conflicts by the table's rule), blanks of the survivor filled from the old
-- row, the old row removed. The callers lock both rows (id order) first. Returns the rows moved
-- per table and a reason ('merged', with the conflicts a rule resolved).
CREATE OR REPLACE FUNCTION sync._move_customer(
    p_old bigint, p_survivor bigint, OUT counts jsonb, OUT reason text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link     record;
    moved    record;
    resolved text[] := '{}';
BEGIN
    counts := '{}';
    FOR link IN SELECT * FROM sync.customer_links() LOOP
        SELECT * INTO moved FROM sync._repoint(
            link.relation, link.table_schema, link.table_name, link.fk_column,
            p_old, p_survivor);
        IF moved.rows > 0 THEN
            counts := counts || pg_catalog.jsonb_build_object(
                link.qualified_name,
                coalesce((counts ->> link.qualified_name)::bigint, 0) + moved.rows);
        END IF;
        IF moved.conflicts > 0 THEN
            resolved := resolved
                || pg_catalog.format('%s %s', link.qualified_name, moved.conflicts);
        END IF;
    END LOOP;
    PERFORM sync._absorb_customer(p_old, p_survivor);
    counts := counts || '{"shop.customer": 1}'::jsonb;
    reason := 'merged';
    IF pg_catalog.cardinality(resolved) > 0 THEN
        reason := reason || '; conflicts resolved by rule: '
            || pg_catalog.array_to_string(resolved, ', ');
    END IF;
END
$$;
