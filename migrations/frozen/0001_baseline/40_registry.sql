-- The registry of customer-linked tables. A table is customer-linked when it has a foreign key
-- to shop.customer(id): the engine discovers these from pg_constraint, so a table a shop adds
-- later is linked the moment its foreign key exists. What the engine may do with a linked table
-- is declared, never guessed:
--   sync.merge_rule      how a merge resolves a unique conflict (the same key on both
--                        customers); no rule and a conflict = the merge is refused
--   sync.anonymise_rule  scrub (apply the column strategies) or delete_rows; bookkeeping
--                        tables (orders) turn a tritonX delete into an anonymisation
--   sync.pii_column      a strategy for every column of shop.customer and of every linked
--                        table; sync.unclassified_columns() lists the columns without one
-- Seeded for the reference shop tables (ON CONFLICT DO NOTHING: an operator's declaration is
-- never overwritten). Re-runnable.

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

-- ---------------------------------------------------------------------------------------------
-- Discovery
-- ---------------------------------------------------------------------------------------------

-- Every foreign key to the mapped customer key (sync.mapped_customer(), the active mapping's
-- table and key, in any schema): the linked table and its customer column. Ordered,
-- so every caller locks and changes tables in the same order. A partitioned table is one table:
-- its parent is listed, not its partitions (the foreign keys PostgreSQL clones onto partitions
-- have conparentid <> 0); statements on the parent reach every partition, also later ones. A
-- foreign key declared on one partition only is that partition's own: the partition is listed.
CREATE OR REPLACE FUNCTION sync.customer_links()
RETURNS TABLE (
    relation        regclass,
    table_schema    name,
    table_name      name,
    qualified_name  text,
    fk_column       name,
    constraint_name name
)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.conrelid::pg_catalog.regclass, n.nspname, r.relname,
           pg_catalog.concat_ws('.', n.nspname, r.relname),
           a.attname, c.conname
    FROM pg_catalog.pg_constraint AS c
    JOIN pg_catalog.pg_class AS r ON r.oid = c.conrelid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
    JOIN pg_catalog.pg_attribute AS ref ON ref.attrelid = c.confrelid AND ref.attnum = c.confkey[1]
    JOIN sync.mapped_customer() AS m ON m.relation = c.confrelid AND m.key_column = ref.attname
    WHERE c.contype = 'f'
      AND c.conparentid = 0
      AND pg_catalog.cardinality(c.conkey) = 1
    ORDER BY n.nspname, r.relname, a.attname
$$;

-- shop.customer and every customer-linked table: the tables whose columns need a strategy.
CREATE OR REPLACE FUNCTION sync.customer_tables()
RETURNS TABLE (relation regclass, table_schema name, table_name name, qualified_name text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT m.relation, n.nspname, r.relname, pg_catalog.concat_ws('.', n.nspname, r.relname)
    FROM sync.mapped_customer() AS m
    JOIN pg_catalog.pg_class AS r ON r.oid = m.relation
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    UNION
    SELECT l.relation, l.table_schema, l.table_name, l.qualified_name
    FROM sync.customer_links() AS l
    ORDER BY 4
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

-- ---------------------------------------------------------------------------------------------
-- Coverage
-- ---------------------------------------------------------------------------------------------

-- Columns of shop.customer and of every customer-linked table without a PII strategy. Empty
-- is the only acceptable answer: anonymisation refuses to run otherwise.
CREATE OR REPLACE FUNCTION sync.unclassified_columns()
RETURNS TABLE (table_name text, column_name name)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.qualified_name, a.attname
    FROM sync.customer_tables() AS t
    JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = t.relation AND a.attnum > 0 AND NOT a.attisdropped
    WHERE NOT EXISTS (
        SELECT FROM sync.pii_column AS p
        WHERE p.table_schema = t.table_schema
          AND p.table_name = t.table_name
          AND p.column_name = a.attname)
    ORDER BY t.qualified_name, a.attnum
$$;

-- Everything that keeps merge or anonymisation from being safe, one row per defect:
-- unclassified columns, strategies the column cannot take, merge rules naming missing
-- columns, customer columns without an index (a merge or delete would scan the table).
CREATE OR REPLACE FUNCTION sync.coverage_defects()
RETURNS TABLE (table_name text, column_name name, defect text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.table_name, u.column_name, 'column has no PII strategy'
    FROM sync.unclassified_columns() AS u
    UNION ALL
    SELECT t.qualified_name, a.attname,
           CASE
               WHEN p.strategy = 'null' AND a.attnotnull
                   THEN 'strategy null on a NOT NULL column'
               ELSE 'strategy year on a column that is not a date or timestamp'
           END
    FROM sync.customer_tables() AS t
    JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = t.relation AND a.attnum > 0 AND NOT a.attisdropped
    JOIN sync.pii_column AS p
        ON p.table_schema = t.table_schema AND p.table_name = t.table_name
       AND p.column_name = a.attname
    LEFT JOIN sync.anonymise_rule AS r
        ON r.table_schema = t.table_schema AND r.table_name = t.table_name
    WHERE coalesce(r.action, 'scrub') = 'scrub'
      AND ((p.strategy = 'null' AND a.attnotnull)
           OR (p.strategy = 'year'
               AND a.atttypid NOT IN ('date'::pg_catalog.regtype, 'timestamp'::pg_catalog.regtype,
                                      'timestamptz'::pg_catalog.regtype)))
    UNION ALL
    SELECT l.qualified_name, m.col::name, 'merge rule names a column the table does not have'
    FROM sync.customer_links() AS l
    JOIN sync.merge_rule AS mr ON mr.table_schema = l.table_schema AND mr.table_name = l.table_name
    CROSS JOIN LATERAL (SELECT coalesce(mr.newest_column, mr.quantity_column) AS col) AS m
    WHERE m.col IS NOT NULL
      AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                      WHERE a.attrelid = l.relation AND a.attname = m.col AND NOT a.attisdropped)
    UNION ALL
    SELECT l.qualified_name, l.fk_column, 'customer column has no index leading with it'
    FROM sync.customer_links() AS l
    WHERE NOT EXISTS (
        SELECT FROM pg_catalog.pg_index AS x
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
        WHERE x.indrelid = l.relation AND a.attname = l.fk_column)
    ORDER BY 1, 2, 3
$$;

-- ---------------------------------------------------------------------------------------------
-- Seeds for the reference shop tables
-- ---------------------------------------------------------------------------------------------
INSERT INTO sync.merge_rule (table_schema, table_name, rule, newest_column, quantity_column)
VALUES ('shop', 'favourite', 'union', NULL, NULL),
       ('shop', 'wishlist', 'keep_newest', 'added_at', NULL),
       ('shop', 'cart', 'keep_newest', 'updated_at', NULL),
       ('shop', 'newsletter_subscription', 'keep_survivor', NULL, NULL)
ON CONFLICT DO NOTHING;

INSERT INTO sync.anonymise_rule (table_schema, table_name, action, bookkeeping)
VALUES ('shop', 'address', 'scrub', false),
       ('shop', 'orders', 'scrub', true),
       ('shop', 'favourite', 'scrub', false),
       ('shop', 'wishlist', 'delete_rows', false),
       ('shop', 'cart', 'delete_rows', false),
       ('shop', 'newsletter_subscription', 'delete_rows', false),
       ('shop', 'login_identity', 'delete_rows', false)
ON CONFLICT DO NOTHING;

INSERT INTO sync.pii_column (table_schema, table_name, column_name, strategy, value)
VALUES
    ('shop', 'customer', 'id', 'not_personal', NULL),
    ('shop', 'customer', 'customer_number', 'not_personal', NULL),
    ('shop', 'customer', 'email', 'placeholder', 'anon-{id}@invalid'),
    ('shop', 'customer', 'first_name', 'null', NULL),
    ('shop', 'customer', 'infix', 'null', NULL),
    ('shop', 'customer', 'last_name', 'null', NULL),
    ('shop', 'customer', 'gender', 'null', NULL),
    ('shop', 'customer', 'birth_date', 'year', NULL),
    ('shop', 'customer', 'phone', 'null', NULL),
    ('shop', 'customer', 'mobile', 'null', NULL),
    ('shop', 'customer', 'street', 'null', NULL),
    ('shop', 'customer', 'house_number', 'null', NULL),
    ('shop', 'customer', 'house_number_addition', 'null', NULL),
    ('shop', 'customer', 'postcode', 'null', NULL),
    ('shop', 'customer', 'city', 'null', NULL),
    ('shop', 'customer', 'country_code', 'keep', NULL),
    ('shop', 'customer', 'loyalty_card', 'null', NULL),
    ('shop', 'customer', 'home_store', 'keep', NULL),
    ('shop', 'customer', 'customer_group', 'keep', NULL),
    ('shop', 'customer', 'newsletter_opt_in', 'fixed', 'false'),
    ('shop', 'customer', 'blocked', 'keep', NULL),
    ('shop', 'customer', 'tritonx_updated_at', 'not_personal', NULL),
    ('shop', 'customer', 'tritonx_version', 'not_personal', NULL),
    ('shop', 'customer', 'created_at', 'not_personal', NULL),
    ('shop', 'customer', 'last_login_at', 'null', NULL),
    ('shop', 'customer', 'preferred_language', 'null', NULL),

    ('shop', 'address', 'id', 'not_personal', NULL),
    ('shop', 'address', 'customer_id', 'not_personal', NULL),
    ('shop', 'address', 'kind', 'not_personal', NULL),
    ('shop', 'address', 'recipient_name', 'null', NULL),
    ('shop', 'address', 'street', 'null', NULL),
    ('shop', 'address', 'house_number', 'null', NULL),
    ('shop', 'address', 'house_number_addition', 'null', NULL),
    ('shop', 'address', 'postcode', 'null', NULL),
    ('shop', 'address', 'city', 'null', NULL),
    ('shop', 'address', 'country_code', 'keep', NULL),
    ('shop', 'address', 'created_at', 'not_personal', NULL),

    ('shop', 'orders', 'id', 'not_personal', NULL),
    ('shop', 'orders', 'customer_id', 'not_personal', NULL),
    ('shop', 'orders', 'order_number', 'not_personal', NULL),
    ('shop', 'orders', 'placed_at', 'not_personal', NULL),
    ('shop', 'orders', 'status', 'not_personal', NULL),
    ('shop', 'orders', 'total_amount', 'not_personal', NULL),
    ('shop', 'orders', 'currency', 'not_personal', NULL),
    ('shop', 'orders', 'delivery_name', 'null', NULL),
    ('shop', 'orders', 'delivery_street', 'null', NULL),
    ('shop', 'orders', 'delivery_postcode', 'null', NULL),
    ('shop', 'orders', 'delivery_city', 'null', NULL),
    ('shop', 'orders', 'contact_email', 'null', NULL),
    ('shop', 'orders', 'contact_phone', 'null', NULL),

    ('shop', 'favourite', 'customer_id', 'not_personal', NULL),
    ('shop', 'favourite', 'sku', 'not_personal', NULL),
    ('shop', 'favourite', 'added_at', 'not_personal', NULL),

    ('shop', 'wishlist', 'id', 'not_personal', NULL),
    ('shop', 'wishlist', 'customer_id', 'not_personal', NULL),
    ('shop', 'wishlist', 'sku', 'not_personal', NULL),
    ('shop', 'wishlist', 'note', 'null', NULL),
    ('shop', 'wishlist', 'added_at', 'not_personal', NULL),

    ('shop', 'cart', 'id', 'not_personal', NULL),
    ('shop', 'cart', 'customer_id', 'not_personal', NULL),
    ('shop', 'cart', 'items', 'fixed', '[]'),
    ('shop', 'cart', 'updated_at', 'not_personal', NULL),

    ('shop', 'newsletter_subscription', 'customer_id', 'not_personal', NULL),
    ('shop', 'newsletter_subscription', 'list_name', 'not_personal', NULL),
    ('shop', 'newsletter_subscription', 'email', 'null', NULL),
    ('shop', 'newsletter_subscription', 'subscribed_at', 'not_personal', NULL),

    ('shop', 'login_identity', 'id', 'not_personal', NULL),
    ('shop', 'login_identity', 'customer_id', 'not_personal', NULL),
    ('shop', 'login_identity', 'provider', 'not_personal', NULL),
    ('shop', 'login_identity', 'login_name', 'placeholder', 'anon-{id}@invalid'),
    ('shop', 'login_identity', 'password_hash', 'null', NULL),
    ('shop', 'login_identity', 'last_login_at', 'null', NULL)
ON CONFLICT DO NOTHING;
