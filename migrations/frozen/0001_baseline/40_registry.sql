-- The registry of customer-linked tables. A table is customer-linked when it has a foreign key
-- to the mapped customer key (sync.mapped_customer()), or the mapping declares a customer
-- reference the shop keeps without one: the engine discovers foreign keys from pg_constraint, so
-- a table a shop adds later is linked the moment its foreign key exists. What the engine may do
-- with a linked table is declared, never guessed:
--   sync.merge_rule      how a merge resolves a unique conflict (the same key on both
--                        customers); no rule and a conflict = the merge is refused
--   sync.anonymise_rule  scrub (apply the column strategies) or delete_rows; bookkeeping
--                        tables (orders) turn a tritonX delete into an anonymisation
--   sync.pii_column      a strategy for every column of the customer table, of every
--                        linked table and of every table the customer row points to (an
--                        address: sync._pointed_tables()); sync.unclassified_columns()
--                        (sql/45_coverage.sql) lists the columns without one
-- The reference shop's declarations are in sql/reference_shop/20_registry.sql. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS sync.merge_rule (
    table_schema          text NOT NULL,
    table_name            text NOT NULL,
    -- keep_survivor: the survivor's row stays, the old customer's conflicting row goes
    -- keep_newest:   the row with the later newest_column stays
    -- union:         both rows state the same fact: one (the survivor's) stays
    -- sum:           the survivor's quantity_column becomes the sum, the old row goes
    rule                  text NOT NULL
                          CHECK (rule IN ('keep_survivor', 'keep_newest', 'union', 'sum')),
    newest_column         text,
    quantity_column       text,
    PRIMARY KEY (table_schema, table_name),
    CHECK ((rule = 'keep_newest') = (newest_column IS NOT NULL)),
    CHECK ((rule = 'sum') = (quantity_column IS NOT NULL))
);

CREATE TABLE IF NOT EXISTS sync.anonymise_rule (
    table_schema          text NOT NULL,
    table_name            text NOT NULL,
    action                text NOT NULL CHECK (action IN ('scrub', 'delete_rows')),
    -- rows kept for bookkeeping (transactions): their existence makes a delete an anonymise
    bookkeeping           boolean NOT NULL DEFAULT false,
    PRIMARY KEY (table_schema, table_name),
    CHECK (NOT (bookkeeping AND action = 'delete_rows'))
);

CREATE TABLE IF NOT EXISTS sync.pii_column (
    table_schema          text NOT NULL,
    table_name            text NOT NULL,
    column_name           text NOT NULL,
    -- null | fixed (value, cast to the column's type) | placeholder (value with {id}, replaced
    -- by the row's single-column primary key, else the customer id: keeps unique constraints
    -- valid) | year (a date or timestamp becomes January 1 of its year) | keep (personal but
    -- kept on purpose) | not_personal
    strategy              text NOT NULL
                          CHECK (strategy IN ('null', 'fixed', 'placeholder', 'year', 'keep',
                                              'not_personal')),
    value                 text,
    PRIMARY KEY (table_schema, table_name, column_name),
    CHECK ((strategy IN ('fixed', 'placeholder')) = (value IS NOT NULL)),
    CHECK (strategy <> 'placeholder' OR pg_catalog.strpos(value, '{id}') > 0)
);
-- Whose personal data the column holds on a row that names two customers (a gift's buyer and
-- its recipient): the column of the same table that refers to that customer (`buyer_id`), or
-- NULL for the row's own (either customer's). An erasure of a customer scrubs the row's own
-- columns and those belonging to the column that names it, never another's; the subject access
-- export shows a customer those columns of the row only. sync.coverage_defects refuses one that
-- is not a column of the table referring to the customer table.
ALTER TABLE sync.pii_column ADD COLUMN IF NOT EXISTS belongs_to text;

-- ---------------------------------------------------------------------------------------------
-- Discovery
-- ---------------------------------------------------------------------------------------------

-- The customer references the active mapping declares where the shop has no foreign key: its
-- [[reference]] entries, and the `via.column` of each [[related]] table that points to the
-- customer. Each with the document path that declares it, the names as written, and what they
-- resolve to: `problem` is NULL when the table (or partitioned table) and the column exist and
-- the column has the mapped key's type, else why not: such a declaration links nothing, and
-- sync.coverage_defects lists it (kind declared_reference), so it is never silently passed over.
CREATE OR REPLACE FUNCTION sync._declared_references()
RETURNS TABLE (
    path            text,
    table_schema    text,
    table_name      text,
    column_name     text,
    relation        regclass,
    problem         text
)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 10
SET search_path = pg_catalog, pg_temp
AS $$
    WITH declared AS (
        SELECT pg_catalog.format('reference[%s]', e.ord - 1) AS path,
               e.item ->> 'schema' AS table_schema, e.item ->> 'table' AS table_name,
               e.item ->> 'column' AS column_name
        FROM sync.mapping_version AS v
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(
            CASE WHEN pg_catalog.jsonb_typeof(v.document -> 'reference') = 'array'
                 THEN v.document -> 'reference' ELSE '[]' END) WITH ORDINALITY AS e (item, ord)
        WHERE v.active
        UNION ALL
        SELECT pg_catalog.format('related[%s].via.column', e.ord - 1),
               e.item ->> 'schema', e.item ->> 'table', e.item #>> '{via,column}'
        FROM sync.mapping_version AS v
        CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(
            CASE WHEN pg_catalog.jsonb_typeof(v.document -> 'related') = 'array'
                 THEN v.document -> 'related' ELSE '[]' END) WITH ORDINALITY AS e (item, ord)
        WHERE v.active
          AND (e.item #>> '{via,column}') IS NOT NULL
    )
    SELECT d.path, d.table_schema, d.table_name, d.column_name, r.oid::pg_catalog.regclass,
           CASE
               WHEN r.oid IS NULL THEN 'table does not exist'
               WHEN r.relkind NOT IN ('r', 'p') THEN 'is not a table'
               WHEN a.attnum IS NULL THEN 'column does not exist'
               WHEN m.key_type IS NULL THEN 'the mapped customer table or key does not exist'
               WHEN a.atttypid <> m.key_type
                   THEN pg_catalog.format('column is %s, the customer key %s.%I is %s',
                                          a.atttypid::pg_catalog.regtype, m.relation,
                                          m.key_column, m.key_type)
           END
    FROM declared AS d
    LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname = d.table_schema
    LEFT JOIN pg_catalog.pg_class AS r ON r.relnamespace = n.oid AND r.relname = d.table_name
    LEFT JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = r.oid AND a.attname = d.column_name AND a.attnum > 0
       AND NOT a.attisdropped
    LEFT JOIN sync.mapped_customer() AS m ON true
    ORDER BY d.path
$$;

-- Every customer reference to the mapped customer key (sync.mapped_customer(), the active
-- mapping's table and key, in any schema): the linked table and its customer column, and how
-- the link is known (`known_by`): a foreign key (`constraint_name` names it), declared in the
-- mapping (sync._declared_references(); `constraint_name` NULL), for references the shop keeps
-- without a foreign key, or the engine's own (`engine`: gdpr.consent and gdpr.erasure_request,
-- which hold the key as text in customer_key, whatever the mapped key's type). A declared
-- column that also has a foreign key is listed once, by the foreign key. `column_type` is the
-- customer column's type: a statement on a linked table casts the key (as text) to it, so the
-- column's index is used. Ordered, so every caller locks and changes tables in the same order. A
-- partitioned table is one table: its parent is listed, not its partitions (the foreign keys
-- PostgreSQL clones onto partitions have conparentid <> 0); statements on the parent reach every
-- partition, also later ones. A foreign key declared on one partition only is that partition's
-- own: the partition is listed.
DROP FUNCTION IF EXISTS sync.customer_links();  -- its result gains known_by, column_type
CREATE OR REPLACE FUNCTION sync.customer_links()
RETURNS TABLE (
    relation        regclass,
    table_schema    name,
    table_name      name,
    qualified_name  text,
    fk_column       name,
    constraint_name name,
    known_by        text,
    column_type     regtype
)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 20
SET search_path = pg_catalog, pg_temp
AS $$
    WITH foreign_key AS (
        SELECT c.conrelid AS relid, a.attname, c.conname
        FROM pg_catalog.pg_constraint AS c
        JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN pg_catalog.pg_attribute AS ref
            ON ref.attrelid = c.confrelid AND ref.attnum = c.confkey[1]
        JOIN sync.mapped_customer() AS m
            ON m.relation = c.confrelid AND m.key_column = ref.attname
        WHERE c.contype = 'f'
          AND c.conparentid = 0
          AND pg_catalog.cardinality(c.conkey) = 1
    ),
    link AS (
        SELECT f.relid, f.attname, f.conname, 'foreign_key' AS known_by
        FROM foreign_key AS f
        UNION ALL
        SELECT DISTINCT d.relation::pg_catalog.oid, d.column_name::name, NULL::name, 'declared'
        FROM sync._declared_references() AS d
        WHERE d.problem IS NULL
          -- a one-time test: most mappings declare nothing, and this runs in every merge
          AND EXISTS (SELECT FROM sync.mapping_version AS v
                      WHERE v.active AND (v.document ? 'reference' OR v.document ? 'related'))
          AND NOT EXISTS (SELECT FROM foreign_key AS f
                          WHERE f.relid = d.relation AND f.attname = d.column_name)
        UNION ALL
        SELECT e.relid, 'customer_key'::name, NULL::name, 'engine'
        FROM (VALUES (pg_catalog.to_regclass('gdpr.consent')),
                     (pg_catalog.to_regclass('gdpr.erasure_request'))) AS e (relid)
        WHERE e.relid IS NOT NULL
          AND EXISTS (SELECT FROM sync.mapped_customer())
    )
    SELECT l.relid::pg_catalog.regclass, n.nspname, r.relname,
           pg_catalog.concat_ws('.', n.nspname, r.relname),
           l.attname, l.conname, l.known_by, a.atttypid::pg_catalog.regtype
    FROM link AS l
    JOIN pg_catalog.pg_class AS r ON r.oid = l.relid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = l.relid AND a.attname = l.attname
    ORDER BY n.nspname, r.relname, l.attname
$$;

-- The tables the customer points to: the active mapping's [[related]] entries with
-- via.customer_column, resolved (the entry, the table, its key and the pointer column of the
-- customer table, and whether the pointer is NOT NULL), in the mapping's order. Their rows hold
-- personal data: an anonymisation scrubs, detaches or copies them (sql/52_scrub_rows.sql), so
-- their columns need a strategy like a linked table's (sync.customer_tables()).
CREATE OR REPLACE FUNCTION sync._pointed_tables()
RETURNS TABLE (
    related         jsonb,
    relation        regclass,
    table_schema    name,
    table_name      name,
    qualified_name  text,
    key_column      name,
    key_type        regtype,
    pointer         name,
    required        boolean
)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 5
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.item, r.oid::pg_catalog.regclass, n.nspname, r.relname,
           pg_catalog.concat_ws('.', n.nspname, r.relname), k.attname,
           k.atttypid::pg_catalog.regtype, p.attname, p.attnotnull
    FROM sync.mapping_version AS v
    CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(
        CASE WHEN pg_catalog.jsonb_typeof(v.document -> 'related') = 'array'
             THEN v.document -> 'related' ELSE '[]' END) WITH ORDINALITY AS e (item, ord)
    JOIN sync.mapped_customer() AS m ON true
    JOIN pg_catalog.pg_namespace AS n ON n.nspname = e.item ->> 'schema'
    JOIN pg_catalog.pg_class AS r ON r.relnamespace = n.oid AND r.relname = e.item ->> 'table'
    JOIN pg_catalog.pg_attribute AS k
        ON k.attrelid = r.oid AND k.attname = e.item ->> 'key' AND k.attnum > 0
       AND NOT k.attisdropped
    JOIN pg_catalog.pg_attribute AS p
        ON p.attrelid = m.relation AND p.attname = e.item #>> '{via,customer_column}'
       AND p.attnum > 0 AND NOT p.attisdropped
    WHERE v.active
    ORDER BY e.ord
$$;

-- The tables whose columns need a strategy, each once: the mapped customer table, every
-- customer-linked table (sync.customer_links()) and every table the customer row points to
-- (sync._pointed_tables(), `pointed_to`: an address; a table both linked and pointed to is
-- marked so too). `partition_of` names the partitioned table of a partition listed by itself
-- because it has a foreign key of its own to the customer (its parent has none: pagila's
-- payment), NULL otherwise: a foreign key on the parent would make them one table.
DROP FUNCTION IF EXISTS sync.customer_tables();  -- its result gains pointed_to, partition_of
CREATE OR REPLACE FUNCTION sync.customer_tables()
RETURNS TABLE (
    relation        regclass,
    table_schema    name,
    table_name      name,
    qualified_name  text,
    pointed_to      boolean,
    partition_of    regclass
)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 30
SET search_path = pg_catalog, pg_temp
AS $$
    WITH listed AS (
        SELECT m.relation::pg_catalog.oid AS relid, false AS pointed_to, false AS own_key
        FROM sync.mapped_customer() AS m
        UNION ALL
        SELECT l.relation::pg_catalog.oid, false, l.known_by = 'foreign_key'
        FROM sync.customer_links() AS l
        UNION ALL
        SELECT p.relation::pg_catalog.oid, true, false
        FROM sync._pointed_tables() AS p
    )
    SELECT x.relid::pg_catalog.regclass, n.nspname, r.relname,
           pg_catalog.concat_ws('.', n.nspname, r.relname), pg_catalog.bool_or(x.pointed_to),
           CASE WHEN r.relispartition AND pg_catalog.bool_or(x.own_key)
                THEN pg_catalog.pg_partition_root(x.relid)::pg_catalog.regclass END
    FROM listed AS x
    JOIN pg_catalog.pg_class AS r ON r.oid = x.relid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    GROUP BY x.relid, n.nspname, r.relname, r.relispartition
    ORDER BY 4
$$;

-- The tables one foreign key further from a customer-linked table (order lines, an order's
-- addresses via the order): per foreign key (of one column or several) from such a table to a
-- linked table, the table (a partition whose foreign key is its own, not its parent's, as its
-- partitioned parent), the linked table and its customer column, and the join of the two
-- (alias t the further table, p the linked one: `(t.a, t.b) = (p.x, p.y)`, what the index of
-- the shop's foreign key serves); `first_column` is the foreign key's first column. Neither the
-- customer table nor a linked table itself, and not through the customer table's own reference
-- to a customer (a referred_by column names other customers). The subject access export lists
-- their rows as the customer's (gdpr._subject_tables), an anonymisation or erasure scrubs them
-- per their classified columns (sql/52_scrub_rows.sql, sql/57_moves_compile.sql).
CREATE OR REPLACE FUNCTION sync._further_links()
RETURNS TABLE (
    relation        regclass,
    table_schema    name,
    table_name      name,
    qualified_name  text,
    link            regclass,
    fk_column       name,
    column_type     regtype,
    referring       text,
    referred        text,
    joined          text,
    first_column    name
)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 10
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT f.relation, n.nspname, r.relname, pg_catalog.concat_ws('.', n.nspname, r.relname),
           l.relation, l.fk_column, l.column_type, cols.referring, cols.referred,
           '(' || cols.referring || ') = (' || cols.referred || ')', cols.first_column
    FROM sync.customer_links() AS l
    JOIN pg_catalog.pg_constraint AS fk
        ON fk.confrelid = l.relation AND fk.contype = 'f' AND fk.conparentid = 0
    CROSS JOIN LATERAL (SELECT coalesce(pg_catalog.pg_partition_root(fk.conrelid),
                                        fk.conrelid)::pg_catalog.regclass) AS f (relation)
    CROSS JOIN LATERAL (
        SELECT pg_catalog.string_agg(pg_catalog.format('t.%I', a.attname), ', ' ORDER BY k.n),
               pg_catalog.string_agg(pg_catalog.format('p.%I', ref.attname), ', ' ORDER BY k.n),
               (pg_catalog.array_agg(a.attname ORDER BY k.n))[1]
        FROM ROWS FROM (pg_catalog.unnest(fk.conkey), pg_catalog.unnest(fk.confkey))
             WITH ORDINALITY AS k (att, refatt, n)
        JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = fk.conrelid AND a.attnum = k.att
        JOIN pg_catalog.pg_attribute AS ref
            ON ref.attrelid = fk.confrelid AND ref.attnum = k.refatt
    ) AS cols (referring, referred, first_column)
    JOIN pg_catalog.pg_class AS r ON r.oid = f.relation
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    WHERE f.relation NOT IN (SELECT m.relation FROM sync.mapped_customer() AS m)
      AND f.relation NOT IN (SELECT x.relation FROM sync.customer_links() AS x)
      -- the customer table's own reference to a customer (referred_by) names other customers
      AND l.relation NOT IN (SELECT m.relation FROM sync.mapped_customer() AS m)
    ORDER BY 4, l.relation::text, l.fk_column, fk.conname
$$;

-- The words that tell why a partition is a linked table by itself and how to make it one table
-- with its parent (p_parent, sync.customer_tables().partition_of), for a message about the
-- partition; p_then ends the advice (', and grant there'). NULL when p_parent is NULL.
CREATE OR REPLACE FUNCTION sync._partition_hint(p_parent regclass, p_then text)
RETURNS text
LANGUAGE sql
STABLE  -- a regclass's name is read from the catalog
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_parent IS NOT NULL THEN pg_catalog.format(
        ' (a partition of %1$s with a foreign key of its own to the customer table; or declare'
        ' the foreign key on %1$s, which takes over the partitions'' ones%2$s)',
        p_parent, p_then) END
$$;

-- The unique keys of a linked table that contain its customer column, each with the predicate
-- that matches an old-customer row `o` to a survivor row `s` with the same rest of the key.
-- Partial and expression indexes are not resolved here: should one of them conflict, the
-- re-pointing UPDATE fails (closed) and the merge is refused.
CREATE OR REPLACE FUNCTION sync._unique_keys(p_relation regclass, p_column name)
RETURNS TABLE (key_name name, same_key text)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 3
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(con.conname, ic.relname),
           coalesce(
               pg_catalog.string_agg(
                   pg_catalog.format(
                       CASE WHEN x.indnullsnotdistinct
                            THEN 'o.%1$I IS NOT DISTINCT FROM s.%1$I'
                            ELSE 'o.%1$I = s.%1$I' END,
                       a.attname),
                   ' AND ' ORDER BY k.ord) FILTER (WHERE a.attname <> p_column),
               'true')
    FROM pg_catalog.pg_index AS x
    JOIN pg_catalog.pg_class AS ic ON ic.oid = x.indexrelid
    LEFT JOIN pg_catalog.pg_constraint AS con
        ON con.conindid = x.indexrelid AND con.contype IN ('p', 'u')
    CROSS JOIN LATERAL pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY AS k (attnum, ord)
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
    WHERE x.indrelid = p_relation
      AND x.indisunique
      AND x.indpred IS NULL
      AND x.indexprs IS NULL
      AND k.ord <= x.indnkeyatts
    GROUP BY x.indexrelid, con.conname, ic.relname, x.indnullsnotdistinct
    HAVING pg_catalog.bool_or(a.attname = p_column)
    ORDER BY 1
$$;


-- A table (p_column NULL) or a column of the registry as PostgreSQL writes its name: each part
-- through quote_ident, so a name with a dot, a quote, a space or an upper-case letter reads one
-- way only ("web.shop".customer, sales."Review".body) and a plain one stays as it is
-- (public.address). How coverage, the subject access export and the policies show names, and
-- one of the two forms a policy's category is given in (gdpr.create_policy).
-- Example: SELECT sync._shown_name('web.shop', 'customer', 'e-mail');  -- "web.shop".customer."e-mail"
CREATE OR REPLACE FUNCTION sync._shown_name(p_schema text, p_table text,
                                            p_column text DEFAULT NULL)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.quote_ident(p_schema) || '.' || pg_catalog.quote_ident(p_table)
           || coalesce('.' || pg_catalog.quote_ident(p_column), '')
$$;

-- A name written as SQL writes one (parts joined by dots, each plain or double-quoted:
-- '"web.shop".customer', 'sales."Review".body'), as its parts the way the catalog holds them
-- (a plain part in lower case, a quoted one as it is: pg_catalog.parse_ident); NULL for text
-- that is no such name ('o'brien.favourite', say: a quote outside double quotes).
-- Example: SELECT sync._name_parts('sales."Review".body');  -- {sales,Review,body}
CREATE OR REPLACE FUNCTION sync._name_parts(p_name text)
RETURNS text[]
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN pg_catalog.parse_ident(p_name);
EXCEPTION
    WHEN invalid_parameter_value THEN
        RETURN NULL;
END
$$;
