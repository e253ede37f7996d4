-- Moving one local customer's rows into another (private), on the mapped customer table
-- (sync.mapped_customer(): any schema, any key type): every row of every customer-linked table
-- (sync.customer_links(): foreign keys and declared references, a partitioned table through its
-- parent) that references the old customer is re-pointed to the survivor (unique conflicts
-- resolved first by the table's declared rule; an undeclared conflict refuses, nothing is
-- deleted), the survivor's blank fields are filled from the old customer and the old customer
-- row is removed, with its sync.customer_link row and the related rows only it used. The row
-- work is compiled (syncmap.move_customer, sql/57_moves_compile.sql) from the building blocks
-- here: which related rows a merge may delete (sync._related_tables, sync._related_unused),
-- which columns it fills (sync._survivor_fill_columns). The step a merge (sql/50_merge.sql) and
-- an adoption (sql/72_link_repair.sql) share; they decide, lock and audit. SQLSTATE: SY010
-- unresolved unique conflict. Re-runnable.

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

-- The tables the customer row points to ([[related]] with via.customer_column) whose rows a
-- merge deletes with the old customer when nothing else uses them: sync._pointed_tables(). A
-- table that is customer-linked as well (an address book with a default address) is among
-- them: the merge re-points the book's rows to the survivor, so a row of the old customer's
-- book moves along and names the survivor; a row that names no customer (the feed's default
-- address, its back-pointer NULL) and that nothing else uses goes (sync._related_unused).
CREATE OR REPLACE FUNCTION sync._related_tables()
RETURNS TABLE (relation regclass, qualified_name text, key_column name, key_type regtype,
               pointer name)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 5
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.relation, p.qualified_name, p.key_column, p.key_type, p.pointer
    FROM sync._pointed_tables() AS p
$$;

-- Who else may use a row of the related table p_relation: the customer table through the
-- pointer p_pointer (foreign key or not), and every table with a foreign key to it
-- (sync._related_foreign_keys), each as (relation, its column, the related table's column it
-- refers to).
CREATE OR REPLACE FUNCTION sync._related_users(
    p_relation regclass, p_pointer name, p_key_column name)
RETURNS TABLE (relation regclass, col name, referenced name)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 5
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.relation, p_pointer, p_key_column
    FROM sync.mapped_customer() AS m
    UNION
    SELECT f.relation, f.col, f.referenced
    FROM sync._related_foreign_keys(p_relation) AS f
$$;

-- Whether the customer whose key the SQL expression p_key names is erased, as a boolean SQL
-- expression: its tritonX number has a tombstone (sync.tombstone: anonymised, or deleted while
-- its bookkeeping rows are kept), or, for a customer anonymised without a number (only the shop
-- knew it: the back office, retention, an erasure request), its key is marked erased
-- (sync.erased_key). Index probes each: the number by the key (sync.customer_link, or the
-- customer table's number column), the tombstone by the number, the mark by the key.
CREATE OR REPLACE FUNCTION sync._erased_customer(p_key text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '(' || CASE WHEN v.document #>> '{customer,number,column}' IS NULL
                THEN pg_catalog.format(
                    'EXISTS (SELECT FROM sync.customer_link AS el JOIN sync.tombstone AS ez '
                    'ON ez.customer_number = el.customer_number '
                    'WHERE el.customer_key = ((%s)::%s)::text)', p_key, m.key_type)
                ELSE pg_catalog.format(
                    'EXISTS (SELECT FROM %1$s AS ec JOIN sync.tombstone AS ez '
                    'ON ez.customer_number = ec.%2$I::text WHERE ec.%3$I = (%4$s)::%5$s)',
                    m.relation, v.document #>> '{customer,number,column}', m.key_column, p_key,
                    m.key_type)
           END
           || pg_catalog.format(' OR EXISTS (SELECT FROM sync.erased_key AS ek '
                                'WHERE ek.customer_key = ((%s)::%s)::text))', p_key, m.key_type)
    FROM sync.mapped_customer() AS m
    JOIN sync.mapping_version AS v ON v.active
$$;

-- Whether the row of the related table p_relation that p_target names is in use by anything
-- but customer p_customer, as a boolean SQL expression: a row of a table with a single-column
-- foreign key to it (sync._related_users), or another customer row pointing to it (also where
-- the shop has no foreign key for the pointer). p_target and p_customer are SQL expressions of
-- type text (a parameter, a variable), cast here to the related key's and the customer key's
-- types. One decision for the merge (which related rows it deletes with the old customer) and
-- the anonymisation (which it scrubs, and which it detaches or copies). With p_count, a bigint
-- SQL expression instead: how many rows use it so (for the dry run of several anonymisations,
-- where the customers anonymised before one have let go of a row it shares with them).
-- With p_own_rows (an anonymisation or a delete), the customer's own rows of a customer-linked
-- table (a rental delivered to its address, a wish shipped there: every link of the row names
-- this customer) do not use it: only this customer does, so the row is scrubbed or deleted
-- with it, never left holding the personal data. Nor, with p_erased as well (the default), do
-- the rows an erased customer keeps (sync._erased_customer: its orders, a gift naming it and
-- this customer): every link of the row names this customer or an erased one. So the last of
-- the customers using a row to go scrubs it, whichever went first. Without p_erased, those
-- rows still use it (a removed customer's row that an erased customer's orders keep is
-- scrubbed, not deleted). A merge passes neither: the old customer's rows move to the
-- survivor and keep pointing to the row.
-- With p_gone as well (a text[] SQL expression: the customers erased before this one in the
-- same run, for its dry run), their customer rows no longer point to it (they let go of a row
-- this customer's rows use: a copy or NULL instead), their rows of delete_rows tables (a
-- wish) are gone and, with p_erased, the rows they keep are an erased customer's (the run
-- tombstones their numbers, or marks the keys of those without one).
DROP FUNCTION IF EXISTS sync._related_in_use(regclass, name, regtype, name, text, text);
DROP FUNCTION IF EXISTS sync._related_in_use(regclass, name, regtype, name, text, text, boolean);
DROP FUNCTION IF EXISTS sync._related_in_use(regclass, name, regtype, name, text, text, boolean,
                                             boolean);
DROP FUNCTION IF EXISTS sync._related_in_use(regclass, name, regtype, name, text, text, boolean,
                                             boolean, text);
CREATE OR REPLACE FUNCTION sync._related_in_use(
    p_relation regclass, p_key_column name, p_key_type regtype, p_pointer name,
    p_target text, p_customer text, p_count boolean DEFAULT false,
    p_own_rows boolean DEFAULT false, p_gone text DEFAULT NULL, p_erased boolean DEFAULT true)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_count
                THEN coalesce(pg_catalog.string_agg('(SELECT count(*) ' || u.uses || ')', ' + '
                                                    ORDER BY u.relation, u.col), '0')
                ELSE coalesce(pg_catalog.string_agg('EXISTS (SELECT ' || u.uses || ')', ' OR '
                                                    ORDER BY u.relation, u.col), 'false')
           END
    FROM (
        SELECT w.relation::text AS relation, w.col,
               pg_catalog.format(
                   'FROM %1$s AS x JOIN %2$s AS u ON u.%3$I = x.%4$I '
                   'WHERE u.%5$I = %6$s::%7$s%8$s',
                   w.relation, p_relation, w.referenced, w.col, p_key_column, p_target,
                   p_key_type,
                   CASE WHEN w.relation = m.relation
                        THEN pg_catalog.format(' AND x.%I <> %s::%s', m.key_column, p_customer,
                                               m.key_type)
                             || CASE WHEN p_gone IS NULL THEN '' ELSE pg_catalog.format(
                                    ' AND NOT x.%I = ANY ((%s)::%s[])', m.key_column, p_gone,
                                    m.key_type) END
                        WHEN p_own_rows AND own.any_link IS NOT NULL
                        THEN pg_catalog.format(' AND NOT coalesce((%s) AND %s, false)',
                                               own.any_link, own.every_link)
                        ELSE '' END) AS uses
        FROM sync._related_users(p_relation, p_pointer, p_key_column) AS w
        CROSS JOIN sync.mapped_customer() AS m
        -- the row is this customer's own: one of its links names the customer, none another
        -- (with p_gone, a row of a delete_rows table may name the customers gone before too;
        -- with p_erased, every link may name an erased customer as well)
        LEFT JOIN LATERAL (
            SELECT pg_catalog.string_agg(o.names, ' OR ' ORDER BY l.fk_column) AS any_link,
                   pg_catalog.string_agg('coalesce(' || o.names || ', true)',
                                         ' AND ' ORDER BY l.fk_column) AS every_link
            FROM sync.customer_links() AS l
            CROSS JOIN LATERAL (
                SELECT '(' || pg_catalog.format('x.%I ', l.fk_column) || CASE
                           WHEN p_gone IS NOT NULL
                                AND EXISTS (SELECT FROM sync.anonymise_rule AS r
                                            WHERE r.table_schema = l.table_schema
                                              AND r.table_name = l.table_name
                                              AND r.action = 'delete_rows')
                           THEN pg_catalog.format('= ANY ((ARRAY[%s] || (%s))::%s[])',
                                                  p_customer, p_gone, l.column_type)
                           ELSE pg_catalog.format('= %s::%s', p_customer, l.column_type)
                       END
                       || CASE WHEN NOT p_erased THEN '' ELSE
                              ' OR ' || sync._erased_customer(pg_catalog.format('x.%I',
                                                                                l.fk_column))
                              || CASE WHEN p_gone IS NULL THEN '' ELSE pg_catalog.format(
                                     ' OR x.%I = ANY ((%s)::%s[])',
                                     l.fk_column, p_gone, l.column_type) END END
                       || ')') AS o (names)
            WHERE l.relation = w.relation) AS own ON true
    ) AS u
$$;

-- Whether the row p_alias of the related table p_relation names a customer, as a boolean SQL
-- expression: one of its columns that link the table to the customer (sync.customer_links():
-- an address book's back-pointer) is not NULL; 'false' when the table is not customer-linked.
CREATE OR REPLACE FUNCTION sync._names_a_customer(p_relation regclass, p_alias text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.string_agg(pg_catalog.format('%s.%I IS NOT NULL', p_alias,
                                                            l.fk_column),
                                          ' OR ' ORDER BY l.fk_column),
                    'false')
    FROM sync.customer_links() AS l
    WHERE l.relation = p_relation
$$;

-- `<related table> AS r WHERE <the row p_pointed names> AND NOT <in use by anything but
-- customer p_old> AND NOT <it names a customer>` (sync._related_in_use,
-- sync._names_a_customer: a row of an address book that names the old customer is re-pointed
-- to the survivor, one naming another customer is that one's): after DELETE FROM it deletes
-- the row; after SELECT count(*) FROM it counts it.
CREATE OR REPLACE FUNCTION sync._related_unused(
    p_relation regclass, p_key_column name, p_key_type regtype, p_pointer name,
    p_pointed text, p_old text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format('%1$s AS r WHERE r.%2$I = %3$s::%4$s AND NOT (%5$s) AND NOT (%6$s)',
                             p_relation, p_key_column, p_pointed, p_key_type,
                             sync._related_in_use(p_relation, p_key_column, p_key_type,
                                                  p_pointer, p_pointed, p_old),
                             sync._names_a_customer(p_relation, 'r'))
$$;

-- The related rows customer p_old (key as text) points to, per table of sync._related_tables():
-- its name, the pointed row's key as text (`pointed`), and `counted`, a statement that counts
-- that row (key $1) when nothing but customer $2 uses it (sync._related_unused). For the merge's
-- plan (sync.merge_plan); the merge itself is compiled (sql/57_moves_compile.sql).
DROP FUNCTION IF EXISTS sync._related_of(text);
CREATE OR REPLACE FUNCTION sync._related_of(p_old text)
RETURNS TABLE (qualified_name text, pointed text, counted text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped  record;
    related record;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    FOR related IN SELECT * FROM sync._related_tables() LOOP
        EXECUTE pg_catalog.format('SELECT c.%I::text FROM %s AS c WHERE c.%I = $1::%s',
                                  related.pointer, mapped.relation, mapped.key_column,
                                  mapped.key_type)
            INTO pointed USING p_old;
        CONTINUE WHEN pointed IS NULL;
        qualified_name := related.qualified_name;
        counted := 'SELECT count(*) FROM ' || sync._related_unused(
            related.relation, related.key_column, related.key_type, related.pointer, '$1', '$2');
        RETURN NEXT;
    END LOOP;
END
$$;

-- The columns of the mapped customer table whose blanks (NULL) a merge fills from the old
-- customer's row (the survivor's values win): every nullable column that is not the key, an
-- identity or generated column, the mapping's number or version column, the column fed by
-- tritonX's `updated_at` (the survivor's snapshot time is its own), or a pointer to a
-- [[related]] row (the survivor keeps its own).
CREATE OR REPLACE FUNCTION sync._survivor_fill_columns()
RETURNS TABLE (column_name name, attnum smallint)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 20
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.attname, a.attnum
    FROM sync.mapped_customer() AS m
    JOIN sync.mapping_version AS v ON v.active
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = m.relation
    WHERE a.attnum > 0
      AND NOT a.attisdropped
      AND NOT a.attnotnull
      AND a.attidentity = ''
      AND a.attgenerated = ''
      AND a.attname <> m.key_column
      AND a.attname IS DISTINCT FROM (v.document #>> '{customer,number,column}')
      AND a.attname IS DISTINCT FROM (v.document #>> '{customer,version,column}')
      AND NOT EXISTS (
          SELECT FROM pg_catalog.jsonb_each(v.document #> '{customer,columns}') AS o (col, source)
          WHERE o.col = a.attname
            AND coalesce(o.source ->> 'field', o.source #>> '{}') = 'updated_at')
      AND NOT EXISTS (
          SELECT FROM pg_catalog.jsonb_array_elements(
              CASE WHEN pg_catalog.jsonb_typeof(v.document -> 'related') = 'array'
                   THEN v.document -> 'related' ELSE '[]' END) AS r (item)
          WHERE (r.item #>> '{via,customer_column}') = a.attname)
    ORDER BY a.attnum
$$;

DROP FUNCTION IF EXISTS sync._repoint(regclass, name, name, name, regtype, text, text);
DROP FUNCTION IF EXISTS sync._absorb_customer(bigint, bigint);
DROP FUNCTION IF EXISTS sync._absorb_customer(text, text);

-- Moving the rows is compiled: syncmap.move_customer (sql/57_moves_compile.sql).
DROP FUNCTION IF EXISTS sync._move_customer(bigint, bigint);
DROP FUNCTION IF EXISTS sync._move_customer(text, text);
