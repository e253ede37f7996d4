-- Moving one local customer's rows into another (private), on the mapped customer table
-- (sync.mapped_customer(): any schema, any key type): every row of every customer-linked table
-- (sync.customer_links(): foreign keys and declared references, a partitioned table through its
-- parent) that references the old customer is re-pointed to the survivor (unique conflicts
-- resolved first by the table's declared rule; an undeclared conflict refuses, nothing is
-- deleted), the survivor's blank fields are filled from the old customer and the old customer
-- row is removed, with its sync.customer_link row and the related rows only it used. A customer
-- is named by its key as text (the key's own text form, syncmap.key_of); every statement casts
-- it back to the key's type, so the key's index is used. The step a merge (sql/50_merge.sql) and an adoption
-- (sql/72_link_repair.sql) share; they decide, lock and audit. SQLSTATE: SY010 unresolved
-- unique conflict. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Merge steps (private)
-- ---------------------------------------------------------------------------------------------

-- The mapped customer table's name as counts and plans give it: schema.table, unquoted, as
-- sync.customer_links() names the linked tables.
CREATE OR REPLACE FUNCTION sync._customer_table_name()
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.concat_ws('.', n.nspname, r.relname)
    FROM sync.mapped_customer() AS m
    JOIN pg_catalog.pg_class AS r ON r.oid = m.relation
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
$$;

-- Re-point one linked table's rows from customer p_old to p_survivor (keys as text, cast to
-- p_key_type). Unique conflicts are resolved first, by the declared rule, set-based per unique
-- key; then one UPDATE moves the rest. `rows` counts every old row (moved or resolved),
-- `conflicts` the clashing pairs.
DROP FUNCTION IF EXISTS sync._repoint(regclass, name, name, name, bigint, bigint);
CREATE OR REPLACE FUNCTION sync._repoint(
    p_relation regclass,
    p_table_schema name,
    p_table_name name,
    p_column name,
    p_key_type regtype,
    p_old text,
    p_survivor text,
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
            'SELECT count(*) FROM %1$s AS o WHERE o.%2$I = $1::%4$s '
            'AND EXISTS (SELECT FROM %1$s AS s WHERE s.%2$I = $2::%4$s AND %3$s)',
            p_relation, p_column, key.same_key, p_key_type)
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
                'WHERE s.%2$I = $2::%5$s AND o.%2$I = $1::%5$s AND %3$s',
                p_relation, p_column, key.same_key, declared.quantity_column, p_key_type)
                USING p_old, p_survivor;
        ELSIF declared.rule = 'keep_newest' THEN
            -- the survivor's row goes where the old customer's is newer; the old row then moves
            EXECUTE pg_catalog.format(
                'DELETE FROM %1$s AS s USING %1$s AS o '
                'WHERE s.%2$I = $2::%5$s AND o.%2$I = $1::%5$s AND %3$s AND o.%4$I > s.%4$I',
                p_relation, p_column, key.same_key, declared.newest_column, p_key_type)
                USING p_old, p_survivor;
        END IF;
        -- keep_survivor, union, sum, and keep_newest where the survivor's row is as new: the
        -- old customer's clashing row goes
        EXECUTE pg_catalog.format(
            'DELETE FROM %1$s AS o WHERE o.%2$I = $1::%4$s '
            'AND EXISTS (SELECT FROM %1$s AS s WHERE s.%2$I = $2::%4$s AND %3$s)',
            p_relation, p_column, key.same_key, p_key_type)
            USING p_old, p_survivor;
        GET DIAGNOSTICS removed = ROW_COUNT;
        rows := rows + removed;
        conflicts := conflicts + clashes;
    END LOOP;
    EXECUTE pg_catalog.format('UPDATE %1$s SET %2$I = $2::%3$s WHERE %2$I = $1::%3$s',
                              p_relation, p_column, p_key_type)
        USING p_old, p_survivor;
    GET DIAGNOSTICS moved = ROW_COUNT;
    rows := rows + moved;
END
$$;

-- The related rows customer p_old (key as text) points to ([[related]] with
-- via.customer_column): per related table its name, the pointed row's key as text (`pointed`),
-- and `deletable`, a statement that deletes that row (key $1) when nothing but customer $2 uses
-- it: no row of a table with a single-column foreign key to it, and no other customer row
-- pointing to it (also where the shop has no foreign key for the pointer). `counted` is the same
-- as a count. A related table that is customer-linked itself is left out: a merge re-points its
-- rows to the survivor. Read before the old customer row goes; the merge and its plan share it.
CREATE OR REPLACE FUNCTION sync._related_of(p_old text)
RETURNS TABLE (qualified_name text, pointed text, deletable text, counted text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped  record;
    related record;
    unused  text;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    FOR related IN SELECT * FROM sync._pointed_tables() LOOP
        -- a related table whose rows also reference the customer (an address book with a
        -- default address) is re-pointed with the customer's other rows: the row moves along
        CONTINUE WHEN EXISTS (SELECT FROM sync.customer_links() AS l
                              WHERE l.relation = related.relation);
        EXECUTE pg_catalog.format('SELECT c.%I::text FROM %s AS c WHERE c.%I = $1::%s',
                                  related.pointer, mapped.relation, mapped.key_column,
                                  mapped.key_type)
            INTO pointed USING p_old;
        CONTINUE WHEN pointed IS NULL;
        SELECT pg_catalog.string_agg(
                   pg_catalog.format(
                       ' AND NOT EXISTS (SELECT FROM %s AS x WHERE x.%I = r.%I%s)',
                       u.relation, u.column_name, related.key_column,
                       CASE WHEN u.relation = mapped.relation
                            THEN pg_catalog.format(' AND x.%I <> $2::%s', mapped.key_column,
                                                   mapped.key_type)
                            ELSE '' END),
                   '' ORDER BY u.relation::text, u.column_name)
        INTO unused
        FROM (
            SELECT f.conrelid::pg_catalog.regclass AS relation, a.attname AS column_name
            FROM pg_catalog.pg_constraint AS f
            JOIN pg_catalog.pg_attribute AS a
              ON a.attrelid = f.conrelid AND a.attnum = f.conkey[1]
            WHERE f.contype = 'f' AND f.confrelid = related.relation AND f.conparentid = 0
              AND pg_catalog.cardinality(f.conkey) = 1
            UNION
            SELECT mapped.relation, related.pointer
        ) AS u;
        qualified_name := related.qualified_name;
        unused := pg_catalog.format(
            '%1$s AS r WHERE r.%2$I = $1::%3$s%4$s',
            related.relation, related.key_column, related.key_type, unused);
        counted := 'SELECT count(*) FROM ' || unused;
        deletable := 'DELETE FROM ' || unused;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Remove the old customer row (key p_old as text) from the mapped customer table and fill the
-- survivor's blank (NULL) fields from it: the survivor's values win. Not filled: the key, the
-- mapping's number and version columns, the column fed by tritonX's `updated_at` (the
-- survivor's snapshot time is its own), and the pointers to [[related]] rows (the survivor
-- keeps its own). Then the old customer's sync.customer_link row goes (the old number lives on
-- as a redirect only), and each related row the old customer pointed to is deleted when nothing
-- else uses it (sync._related_of), else left as it is. Returns the related rows deleted per
-- table.
DROP FUNCTION IF EXISTS sync._absorb_customer(bigint, bigint);
DROP FUNCTION IF EXISTS sync._absorb_customer(text, text);
CREATE OR REPLACE FUNCTION sync._absorb_customer(p_old text, p_survivor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped   record;
    document jsonb;
    related  record;
    pointed  jsonb;
    old_row  jsonb;
    fill     text;
    removed  bigint;
    counts   jsonb := '{}';
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    SELECT v.document INTO document FROM sync.mapping_version AS v WHERE v.active;
    SELECT coalesce(pg_catalog.jsonb_agg(r), '[]') INTO pointed FROM sync._related_of(p_old) AS r;
    EXECUTE pg_catalog.format(
        'DELETE FROM %1$s AS c WHERE c.%2$I = $1::%3$s RETURNING pg_catalog.to_jsonb(c)',
        mapped.relation, mapped.key_column, mapped.key_type)
        INTO old_row USING p_old;
    IF old_row IS NULL THEN
        RETURN counts;
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.format('%1$I = coalesce(s.%1$I, o.%1$I)', a.attname),
                                 ', ' ORDER BY a.attnum)
    INTO fill
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = mapped.relation
      AND a.attnum > 0
      AND NOT a.attisdropped
      AND NOT a.attnotnull
      AND a.attidentity = ''
      AND a.attgenerated = ''
      AND a.attname <> mapped.key_column
      AND a.attname IS DISTINCT FROM (document #>> '{customer,number,column}')
      AND a.attname IS DISTINCT FROM (document #>> '{customer,version,column}')
      AND NOT EXISTS (
          SELECT FROM pg_catalog.jsonb_each(document #> '{customer,columns}') AS o (col, source)
          WHERE o.col = a.attname
            AND coalesce(o.source ->> 'field', o.source #>> '{}') = 'updated_at')
      AND NOT EXISTS (
          SELECT FROM pg_catalog.jsonb_array_elements(
              CASE WHEN pg_catalog.jsonb_typeof(document -> 'related') = 'array'
                   THEN document -> 'related' ELSE '[]' END) AS r (item)
          WHERE (r.item #>> '{via,customer_column}') = a.attname);
    IF fill IS NOT NULL THEN
        EXECUTE pg_catalog.format(
            'UPDATE %1$s AS s SET %2$s FROM pg_catalog.jsonb_populate_record(NULL::%1$s, $1) AS o '
            'WHERE s.%3$I = $2::%4$s',
            mapped.relation, fill, mapped.key_column, mapped.key_type)
            USING old_row, p_survivor;
    END IF;
    DELETE FROM sync.customer_link AS l WHERE l.customer_key = p_old;
    FOR related IN
        SELECT * FROM pg_catalog.jsonb_to_recordset(pointed)
            AS r (qualified_name text, pointed text, deletable text)
    LOOP
        EXECUTE related.deletable USING related.pointed, p_old;
        GET DIAGNOSTICS removed = ROW_COUNT;
        IF removed > 0 THEN
            counts := counts || pg_catalog.jsonb_build_object(
                related.qualified_name,
                coalesce((counts ->> related.qualified_name)::bigint, 0) + removed);
        END IF;
    END LOOP;
    RETURN counts;
END
$$;

-- Move everything of customer p_old (key as text) to p_survivor: every customer-linked table
-- re-pointed (unique conflicts by the table's rule), blanks of the survivor filled from the old
-- row, the old row removed (sync._absorb_customer). The callers lock both customers
-- (syncmap.lock_customers) first. Returns the rows moved per table (the customer table's own
-- entry: the old row) and a reason ('merged', with the conflicts a rule resolved).
DROP FUNCTION IF EXISTS sync._move_customer(bigint, bigint);
CREATE OR REPLACE FUNCTION sync._move_customer(
    p_old text, p_survivor text, OUT counts jsonb, OUT reason text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped   record;
    link     record;
    moved    record;
    resolved text[] := '{}';
BEGIN
    SELECT m.key_type, sync._customer_table_name() AS qualified_name INTO mapped
    FROM sync.mapped_customer() AS m;
    counts := '{}';
    FOR link IN SELECT * FROM sync.customer_links() LOOP
        SELECT * INTO moved FROM sync._repoint(
            link.relation, link.table_schema, link.table_name, link.fk_column, link.column_type,
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
    counts := counts || pg_catalog.jsonb_build_object(mapped.qualified_name, 1)
              || sync._absorb_customer(p_old, p_survivor);
    reason := 'merged';
    IF pg_catalog.cardinality(resolved) > 0 THEN
        reason := reason || '; conflicts resolved by rule: '
            || pg_catalog.array_to_string(resolved, ', ');
    END IF;
END
$$;
