-- The residue search (the proof of erasure): every text and JSON column of every table of the
-- database searched for the digests of a person's identifying values (sql/87_gdpr_proof.sql),
-- in every row but those of other customers (gdpr._residue_scopes). Returns counts per column,
-- never values. Tables it cannot read are named (gdpr.unsearched_tables), not skipped silently.
-- Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Where the residue search looks, a row per table with text or JSON columns: the columns, and a
-- statement selecting them from the rows that may hold the subject's data. A row that belongs
-- to another customer is that customer's data, whatever it shares with the subject (people
-- share names, a household shares an address): the other rows of the mapped customer table,
-- rows of a customer-linked table (foreign key, declared reference, the engine's gdpr tables)
-- whose customer columns point at other customers, rows of a table the customer row points to
-- (an address) that another customer points to, and rows of a table with a customer_number
-- column naming another customer or a number merged into one. Searched are the subject's rows,
-- rows of no customer (a guest order, an address nobody points to, a dead letter whose number
-- did not parse, an unknown number) and every row of any other table. p_customer_key is the
-- mapped key as text; with NULL, every row of every table. Example:
-- SELECT qualified_name, rows_sql FROM gdpr._residue_scopes('42');
DROP FUNCTION IF EXISTS gdpr._residue_scopes(bigint);
CREATE OR REPLACE FUNCTION gdpr._residue_scopes(p_customer_key text)
RETURNS TABLE (qualified_name text, columns name[], is_json boolean[], rows_sql text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    own_numbers text[];
    own_number  text;
    mapped      record;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    IF p_customer_key IS NOT NULL THEN
        own_number := syncmap.number_of(p_customer_key);
    END IF;
    -- the subject's number and the numbers merged into it
    own_numbers := ARRAY(
        SELECT own_number WHERE own_number IS NOT NULL
        UNION
        SELECT r.old_number FROM sync.redirect AS r WHERE r.survivor_number = own_number);
    RETURN QUERY
    WITH searched AS (
        SELECT r.oid AS relid,
               pg_catalog.concat_ws('.', n.nspname, r.relname) AS table_name,
               pg_catalog.array_agg(a.attname ORDER BY a.attnum) AS names,
               pg_catalog.array_agg(ty.base IN ('json'::pg_catalog.regtype,
                                                'jsonb'::pg_catalog.regtype)
                                    ORDER BY a.attnum) AS json_flags
        FROM pg_catalog.pg_class AS r
        JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
        JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
        -- a column of a domain over text or JSON (an e-mail domain with a CHECK) is searched
        -- as its base type
        CROSS JOIN LATERAL (SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype
                                        ELSE a.atttypid END AS base
                            FROM pg_catalog.pg_type AS t WHERE t.oid = a.atttypid) AS ty
        WHERE r.relkind IN ('r', 'p', 'm')
          AND NOT r.relispartition  -- read through its partitioned parent, each row once
          -- a materialized view made WITH NO DATA cannot be read (55000) until refreshed
          AND r.relispopulated
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_(toast|temp)'
          -- what this role may read; and never a table of another owner under row-level
          -- security (its policies would run with this role's rights) but the customer table
          -- and the tables linked to it or it points to, whose policies the engine's writes
          -- run anyway (coverage names a policy calling another role's function there)
          AND pg_catalog.has_table_privilege(r.oid, 'SELECT')
          AND NOT (r.relrowsecurity AND r.relowner <> (SELECT u.oid FROM pg_catalog.pg_roles AS u
                                                        WHERE u.rolname = current_user)
                   AND r.oid NOT IN (SELECT t.relation FROM sync.customer_tables() AS t))
          AND ty.base IN ('text'::pg_catalog.regtype, 'varchar'::pg_catalog.regtype,
                          'bpchar'::pg_catalog.regtype, 'json'::pg_catalog.regtype,
                          'jsonb'::pg_catalog.regtype)
        GROUP BY r.oid, n.nspname, r.relname
    ),
    linked AS (
        SELECT l.relation::pg_catalog.oid AS relid,
               pg_catalog.string_agg(pg_catalog.format('t.%I = %L::%s', l.fk_column,
                                                       p_customer_key, l.column_type),
                                     ' OR ' ORDER BY l.fk_column) AS theirs_or_subjects,
               pg_catalog.string_agg(pg_catalog.format('t.%I IS NULL', l.fk_column),
                                     ' AND ' ORDER BY l.fk_column) AS nobodys
        FROM sync.customer_links() AS l
        GROUP BY l.relation
    ),
    pointed AS (
        -- the rows the subject points to, and rows nobody points to
        SELECT p.relation::pg_catalog.oid AS relid,
               pg_catalog.format('NOT EXISTS (SELECT FROM %s AS o WHERE o.%I = t.%I'
                                 ' AND o.%I <> %L::%s)', mapped.relation, p.pointer,
                                 p.key_column, mapped.key_column, p_customer_key,
                                 mapped.key_type) AS not_others
        FROM sync._pointed_tables() AS p
    ),
    numbered AS (
        SELECT a.attrelid AS relid FROM pg_catalog.pg_attribute AS a
        WHERE a.attname = 'customer_number' AND a.attnum > 0 AND NOT a.attisdropped
          AND a.atttypid IN ('text'::pg_catalog.regtype, 'varchar'::pg_catalog.regtype)
    )
    SELECT s.table_name, s.names, s.json_flags,
           CASE
               WHEN p_customer_key IS NULL THEN pick.cols
               WHEN s.relid = mapped.relation
                   THEN pg_catalog.format('%s WHERE t.%I = %L::%s', pick.cols,
                                          mapped.key_column, p_customer_key, mapped.key_type)
               WHEN l.relid IS NOT NULL
                   THEN pg_catalog.format('%s WHERE %s OR (%s)', pick.cols,
                                          l.theirs_or_subjects, l.nobodys)
               WHEN o.relid IS NOT NULL
                   THEN pg_catalog.format('%s WHERE %s', pick.cols, o.not_others)
               -- no number, the subject's numbers, numbers of nobody here (each part can take
               -- an index on customer_number; the last reads only the distinct numbers)
               WHEN u.relid IS NOT NULL
                   THEN pg_catalog.format(
                       '%1$s WHERE t.customer_number IS NULL'
                       ' UNION ALL %1$s WHERE t.customer_number = ANY (%3$L::text[])'
                       ' UNION ALL %1$s WHERE t.customer_number IN ('
                       '  SELECT d.n FROM (SELECT DISTINCT u.customer_number AS n FROM %2$s AS u) AS d'
                       '  WHERE d.n <> ALL (%3$L::text[])'
                       '  AND NOT EXISTS (SELECT FROM syncmap.customer_map AS o'
                       '                  WHERE o.customer_number = d.n)'
                       '  AND NOT EXISTS (SELECT FROM sync.redirect AS r WHERE r.old_number = d.n))',
                       pick.cols, s.relid::pg_catalog.regclass, own_numbers)
               ELSE pick.cols
           END
    FROM searched AS s
    LEFT JOIN linked AS l ON l.relid = s.relid
    LEFT JOIN pointed AS o ON o.relid = s.relid
    LEFT JOIN numbered AS u ON u.relid = s.relid
    CROSS JOIN LATERAL (
        SELECT pg_catalog.format('SELECT %s FROM %s AS t',
                                 pg_catalog.string_agg(pg_catalog.format('t.%I', x.c), ', '
                                                       ORDER BY x.k),
                                 s.relid::pg_catalog.regclass)
        FROM pg_catalog.unnest(s.names) WITH ORDINALITY AS x (c, k)) AS pick (cols)
    ORDER BY s.table_name;
END
$$;

-- Every text and JSON column of every table in the database searched for the digests, in the
-- rows gdpr._residue_scopes(p_customer_key) names (all rows with p_customer_key NULL): (column,
-- rows with a hit), hits only. One scan a table. The digests must be made with the install's
-- key (gdpr._digest, as verification makes them). Example:
-- SELECT * FROM gdpr.residue_search(ARRAY[gdpr._digest('anna@example.nl')], '42');
DROP FUNCTION IF EXISTS gdpr.residue_search(text[]);  -- before it took the customer
-- before the key was text (the bigint form below has no default: one call, one function)
DROP FUNCTION IF EXISTS gdpr.residue_search(text[], bigint);
CREATE OR REPLACE FUNCTION gdpr.residue_search(p_digests text[], p_customer_key text DEFAULT NULL)
RETURNS TABLE (column_name text, hits bigint)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- whether the text $v reveals one of the digests; a text without separators is one word,
    -- whose own digest is all gdpr._text_digests would give (the cheap test most values take)
    reveals text := 'pg_catalog.length($v) >= 6 AND CASE'
        ' WHEN $v OPERATOR(pg_catalog.~) ''[[:space:],;:/|()<>"]'''
        ' THEN EXISTS (SELECT FROM gdpr._text_digests($v, $2, $3) AS d (digest)'
        ' WHERE d.digest = ANY ($1))'
        ' ELSE gdpr._hmac($2, $3, gdpr._normalised($v)) = ANY ($1) END';
    scope  record;
    tests  text;
    counts bigint[];
    pads   record;
BEGIN
    IF p_digests IS NULL OR pg_catalog.cardinality(p_digests) = 0 THEN
        RETURN;
    END IF;
    pads := gdpr._proof_pads();
    FOR scope IN SELECT * FROM gdpr._residue_scopes(p_customer_key) LOOP
        SELECT pg_catalog.string_agg(CASE
            WHEN x.j THEN pg_catalog.format(
                'count(*) FILTER (WHERE EXISTS ('
                ' SELECT FROM pg_catalog.jsonb_path_query(t.%I::jsonb,'
                '   ''strict $.** ? (@.type() == "string")'') AS s (v) WHERE %s))',
                x.c, pg_catalog.replace(reveals, '$v', '(s.v #>> ''{}'')'))
            ELSE pg_catalog.format(
                'count(*) FILTER (WHERE %s)',
                pg_catalog.replace(reveals, '$v', pg_catalog.format('t.%I::text', x.c)))
            END, ', ' ORDER BY x.k)
        INTO tests
        FROM ROWS FROM (pg_catalog.unnest(scope.columns), pg_catalog.unnest(scope.is_json))
            WITH ORDINALITY AS x (c, j, k);
        EXECUTE pg_catalog.format('SELECT ARRAY[%s] FROM (%s) AS t', tests, scope.rows_sql)
            INTO counts USING p_digests, pads.inner_pad, pads.outer_pad;
        RETURN QUERY
            SELECT scope.qualified_name || '.' || x.c, x.n
            FROM ROWS FROM (pg_catalog.unnest(scope.columns), pg_catalog.unnest(counts)) AS x (c, n)
            WHERE x.n > 0;
    END LOOP;
END
$$;

-- The same for an integer key.
-- Example: SELECT * FROM gdpr.residue_search(ARRAY[gdpr._digest('anna@example.nl')], 42);
CREATE OR REPLACE FUNCTION gdpr.residue_search(p_digests text[], p_customer_id bigint)
RETURNS TABLE (column_name text, hits bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.column_name, r.hits FROM gdpr.residue_search(p_digests, p_customer_id::text) AS r
$$;

-- The number of columns gdpr.residue_search looks at.
CREATE OR REPLACE FUNCTION gdpr._searchable_columns()
RETURNS integer
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(sum(pg_catalog.cardinality(s.columns)), 0)::integer
    FROM gdpr._residue_scopes(NULL) AS s
$$;

-- Tables holding text or JSON columns that the residue search leaves out, as schema.table: the
-- ones the searching role may not read, materialized views not populated (made WITH NO DATA,
-- never refreshed: unreadable), and tables of another owner under row-level security
-- (their policies would run with the searching role's rights) other than the mapping's
-- customer tables (sync.customer_tables(): the engine's writes run their policies anyway). The proof names them, so a DBA
-- can grant SELECT to the owner role or search them by hand.
CREATE OR REPLACE FUNCTION gdpr.unsearched_tables()
RETURNS text[]
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.array_agg(DISTINCT pg_catalog.concat_ws('.', n.nspname, r.relname)
                                         ORDER BY pg_catalog.concat_ws('.', n.nspname, r.relname)),
                    '{}')
    FROM pg_catalog.pg_class AS r
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    WHERE r.relkind IN ('r', 'p', 'm')
      AND NOT r.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname !~ '^pg_(toast|temp)'
      -- a domain as its base type, as the search reads it (gdpr._residue_scopes)
      AND CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END
          IN ('text'::pg_catalog.regtype, 'varchar'::pg_catalog.regtype,
              'bpchar'::pg_catalog.regtype, 'json'::pg_catalog.regtype,
              'jsonb'::pg_catalog.regtype)
      AND (NOT pg_catalog.has_table_privilege(r.oid, 'SELECT')
           OR NOT r.relispopulated
           OR (r.relrowsecurity AND r.relowner <> (SELECT u.oid FROM pg_catalog.pg_roles AS u
                                                   WHERE u.rolname = current_user)
               AND r.oid NOT IN (SELECT t.relation FROM sync.customer_tables() AS t)))
$$;
