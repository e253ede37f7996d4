-- Coverage: everything that keeps merge or anonymisation from being safe on the shop's schema as
-- it is, one row per defect, each of a kind (docs/merge-and-anonymise.md, "Coverage"):
--   mapping             no active mapping, or its customer table or key is gone
--   unclassified        a column of the customer table, a linked table or a table the
--                       customer row points to (an address) without a PII strategy
--   unclassified_further  a column of a table one foreign key further from a linked table
--                       (order lines, an order's addresses) without a PII strategy
--   strategy            a strategy the column cannot take
--   merge_rule          a merge rule naming a column the table does not have
--   unindexed           a customer column no index leads with (a merge or delete scans)
--   declared_reference  a reference the mapping declares that does not resolve
--   privilege           the owner role lacks what the engine needs on a customer table, or
--                       SELECT on a table referring to one the customer points to (GRANT given;
--                       sync._owner_needs, which the mapping's check asks too)
--   look_alike          a column that looks like a customer reference, neither linked nor
--                       declared, and not recorded in sync.not_a_reference
--   trigger             a trigger on a customer table whose function another role controls, run
--                       inside the engine's writes
-- Each kind is one catalog query over every table at once (no loop per table), so coverage stays
-- fast on a database with thousands of tables. Messages name tables, columns, roles and types,
-- never data; a partition listed by itself (a foreign key of its own to the customer) says that
-- a foreign key on its parent makes them one table. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------

-- Columns a DBA has looked at and found not to be customer references although their names
-- say so (a supplier's client_id, a help desk's klant_nr from another system): coverage no
-- longer lists them as look-alikes. Names exactly as in the catalog.
CREATE TABLE IF NOT EXISTS sync.not_a_reference (
    table_schema          text NOT NULL,
    table_name            text NOT NULL,
    column_name           text NOT NULL,
    PRIMARY KEY (table_schema, table_name, column_name)
);

-- ---------------------------------------------------------------------------------------------
-- Defects by kind (private)
-- ---------------------------------------------------------------------------------------------

-- Columns of the customer table, of every customer-linked table and of every table the
-- customer row points to (sync.customer_tables()) without a PII strategy. Empty is the only
-- acceptable answer: anonymisation refuses to run otherwise (SY022, the same list).
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

-- Columns of the tables one foreign key further from a customer-linked table
-- (sync._further_links(): order lines, an order's addresses) without a PII strategy, each
-- once, with what coverage says of it. An anonymisation scrubs such a table's classified
-- columns and leaves these as they are: coverage lists them (kind unclassified_further), but
-- they do not make an anonymisation refuse (sync.unclassified_columns() is that list).
CREATE OR REPLACE FUNCTION sync._unclassified_further_columns()
RETURNS TABLE (table_name text, column_name name, defect text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT f.qualified_name, a.attname,
           pg_catalog.format('column has no PII strategy (the table references %s, one'
                             ' foreign key further from the customer: an anonymisation scrubs'
                             ' its classified columns only)',
                             pg_catalog.string_agg(DISTINCT f.link::text, ', '))
    FROM sync._further_links() AS f
    JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = f.relation AND a.attnum > 0 AND NOT a.attisdropped
    WHERE NOT EXISTS (
        SELECT FROM sync.pii_column AS p
        WHERE p.table_schema = f.table_schema
          AND p.table_name = f.table_name
          AND p.column_name = a.attname)
    GROUP BY f.qualified_name, a.attname, a.attnum
    ORDER BY 1, a.attnum
$$;

-- What the owner role needs on the shop's tables for a mapping document (the engine's functions
-- run as it), one row per table and privilege, computed once for both askers: the check of a
-- document before it is installed (sync.mapping_defects, sql/14_mapping_defects.sql, which
-- reports at `path`) and coverage of the active one (sync._privilege_defects below). On the
-- customer table SELECT, INSERT, UPDATE and DELETE (tritonX creates, updates and deletes
-- customers); TRIGGER too when the document stores a consent field as is in a boolean column
-- (sync._mapping_consent_columns: installing puts the consent triggers there). On each table
-- linked by a foreign key to the key (one per partitioned table; a partition with a foreign key
-- of its own is a table of its own) and each declared reference's table SELECT and UPDATE
-- (merges re-point, anonymisation scrubs) and DELETE unless the table is kept for bookkeeping
-- and has no merge rule (delete_rows, a tritonX delete, a merge conflict's losing row). On each
-- [[related]] table all four (the feed inserts and updates its rows, anonymisation scrubs or
-- copies them, a delete removes them). SELECT on every other table with a foreign key to a
-- related table the customer row points to: the write reads it to tell whether a row is shared
-- (sql/52_scrub_rows.sql). SELECT on every table one foreign key further from a linked table
-- (order lines): the subject access export reads it. A table and privilege asked for twice is
-- listed once, by the entry that asks the most, first in the document. `why` says why a table
-- is asked for where its name does not (`self_evident` when only the check, which reports at
-- the document's paths, needs it said); `privilege_ord` orders a table's privileges as a GRANT
-- lists them (SELECT, INSERT, UPDATE, DELETE, TRIGGER). Tables that do not exist are left out
-- (the check reports them).
CREATE OR REPLACE FUNCTION sync._owner_needs(p_document jsonb)
RETURNS TABLE (ord integer, path text, relation regclass, privilege text, privilege_ord integer,
               why text, self_evident boolean)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH customer AS (
        SELECT c.oid, k.attnum AS key_attnum, k.atttypid AS key_type
        FROM (SELECT sync._mapping_table(p_document #>> '{customer,schema}',
                                         p_document #>> '{customer,table}') AS oid) AS c
        LEFT JOIN pg_catalog.pg_attribute AS k
            ON k.attrelid = c.oid AND k.attname = p_document #>> '{customer,key}'
           AND k.attnum > 0 AND NOT k.attisdropped
        WHERE c.oid IS NOT NULL
    ),
    related AS (
        SELECT e.ord::integer AS ord, pg_catalog.format('related[%s].table', e.ord - 1) AS path,
               sync._mapping_table(e.item ->> 'schema', e.item ->> 'table') AS oid,
               pg_catalog.jsonb_typeof(e.item #> '{via,customer_column}') = 'string' AS pointed
        FROM pg_catalog.jsonb_array_elements(
                 CASE WHEN pg_catalog.jsonb_typeof(p_document -> 'related') = 'array'
                      THEN p_document -> 'related' ELSE '[]' END) WITH ORDINALITY AS e (item, ord)
        WHERE pg_catalog.jsonb_typeof(e.item) = 'object'
    ),
    referenced AS (
        SELECT 1000 + e.ord::integer AS ord,
               pg_catalog.format('reference[%s].table', e.ord - 1) AS path, t.oid
        FROM pg_catalog.jsonb_array_elements(
                 CASE WHEN pg_catalog.jsonb_typeof(p_document -> 'reference') = 'array'
                      THEN p_document -> 'reference' ELSE '[]' END) WITH ORDINALITY AS e (item, ord)
        CROSS JOIN LATERAL (SELECT sync._mapping_table(e.item ->> 'schema',
                                                       e.item ->> 'table') AS oid) AS t
        JOIN customer AS c ON true
        JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = t.oid AND a.attname = e.item ->> 'column' AND a.attnum > 0
           AND NOT a.attisdropped AND a.atttypid = c.key_type
        WHERE pg_catalog.jsonb_typeof(e.item) = 'object'
    ),
    -- linked: SELECT, UPDATE, DELETE unless kept for bookkeeping without a merge rule
    linked AS (
        SELECT l.ord, l.path, l.oid, l.why, l.self_evident,
               ARRAY['SELECT', 'UPDATE']
               || CASE WHEN coalesce(ar.bookkeeping, false) AND mr.rule IS NULL
                       THEN '{}'::text[] ELSE ARRAY['DELETE'] END AS privileges
        FROM (
            SELECT 0 AS ord, 'customer.table' AS path, k.conrelid AS oid,
                   coalesce(sync._partition_hint(
                                CASE WHEN r.relispartition
                                     THEN pg_catalog.pg_partition_root(k.conrelid) END,
                                ', and grant there'),
                            ' (it references the customer table)') AS why,
                   NOT r.relispartition AS self_evident
            FROM customer AS c
            JOIN pg_catalog.pg_constraint AS k
                ON k.contype = 'f' AND k.conparentid = 0 AND k.confrelid = c.oid
               AND k.confkey = ARRAY[c.key_attnum] AND pg_catalog.cardinality(k.conkey) = 1
               AND k.conrelid <> c.oid
            JOIN pg_catalog.pg_class AS r ON r.oid = k.conrelid
            UNION ALL
            SELECT f.ord, f.path, f.oid, '', true FROM referenced AS f
        ) AS l
        JOIN pg_catalog.pg_class AS r ON r.oid = l.oid
        JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
        LEFT JOIN sync.anonymise_rule AS ar
            ON ar.table_schema = n.nspname AND ar.table_name = r.relname
        LEFT JOIN sync.merge_rule AS mr
            ON mr.table_schema = n.nspname AND mr.table_name = r.relname
    ),
    asked AS (
        SELECT 0 AS ord, 'customer.table' AS path, c.oid,
               ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'] AS privileges, '' AS why,
               true AS self_evident
        FROM customer AS c
        UNION ALL
        SELECT l.ord, l.path, l.oid, l.privileges, l.why, l.self_evident FROM linked AS l
        UNION ALL
        SELECT 0, 'customer.columns.' || s.column_name, c.oid, ARRAY['TRIGGER'],
               pg_catalog.format(' (%I holds %s as is: local changes of it are consent'
                                 ' decisions)', s.column_name, s.field),
               false
        FROM customer AS c
        CROSS JOIN LATERAL sync._mapping_consent_columns(p_document, c.oid) AS s
        WHERE s.as_is
        UNION ALL
        SELECT r.ord, r.path, r.oid, ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'], '', true
        FROM related AS r
        WHERE r.oid IS NOT NULL
        UNION ALL
        -- readers of a table the customer points to (a single-column foreign key to it)
        SELECT r.ord, r.path, k.conrelid, ARRAY['SELECT'],
               pg_catalog.format(' (it references the related table %s)',
                                 r.oid::pg_catalog.regclass),
               false
        FROM related AS r
        JOIN pg_catalog.pg_constraint AS k
            ON k.contype = 'f' AND k.conparentid = 0 AND k.confrelid = r.oid
           AND pg_catalog.cardinality(k.conkey) = 1 AND k.conrelid <> r.oid
        WHERE r.pointed
          AND k.conrelid IS DISTINCT FROM (SELECT c.oid FROM customer AS c)
        UNION ALL
        -- one foreign key further (of one column or several): the subject access export reads
        -- the rows hanging off a customer's linked rows (order lines), a partition's through
        -- its partitioned parent (gdpr._subject_tables); an anonymisation scrubs them when
        -- they have classified columns to scrub (sync._further_links)
        SELECT l.ord, l.path, f.relation,
               ARRAY['SELECT'] || CASE WHEN f.scrubbed THEN ARRAY['UPDATE'] ELSE '{}' END,
               pg_catalog.format(' (it references %s: the subject access export reads it%s)',
                                 l.oid::pg_catalog.regclass,
                                 CASE WHEN f.scrubbed
                                      THEN ', an anonymisation scrubs its classified columns'
                                      ELSE '' END),
               false
        FROM linked AS l
        JOIN pg_catalog.pg_constraint AS k
            ON k.contype = 'f' AND k.conparentid = 0 AND k.confrelid = l.oid
        CROSS JOIN LATERAL (SELECT coalesce(pg_catalog.pg_partition_root(k.conrelid),
                                            k.conrelid) AS relation) AS r
        CROSS JOIN LATERAL (
            SELECT r.relation, EXISTS (
                       SELECT FROM sync.pii_column AS p
                       JOIN pg_catalog.pg_class AS fr ON fr.oid = r.relation
                       JOIN pg_catalog.pg_namespace AS fn ON fn.oid = fr.relnamespace
                       WHERE p.table_schema = fn.nspname AND p.table_name = fr.relname
                         AND p.strategy IN ('null', 'fixed', 'placeholder', 'year'))
        ) AS f (relation, scrubbed)
        WHERE f.relation IS DISTINCT FROM (SELECT c.oid FROM customer AS c)
          AND f.relation NOT IN (SELECT x.oid FROM linked AS x)
    )
    SELECT DISTINCT ON (a.oid, p.privilege)
           a.ord, a.path, a.oid::pg_catalog.regclass, p.privilege,
           pg_catalog.array_position(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRIGGER'],
                                     p.privilege),
           a.why, a.self_evident
    FROM asked AS a
    CROSS JOIN LATERAL pg_catalog.unnest(a.privileges) AS p (privilege)
    ORDER BY a.oid, p.privilege, pg_catalog.cardinality(a.privileges) DESC, a.ord
$$;

-- The tables of a mapping document (sync._owner_needs) whose row-level security keeps the owner
-- role p_owner from rows it needs: security enabled and applying to the role (another role owns
-- the table, or it is forced on its owner too), and for a command the role needs (SELECT,
-- INSERT, UPDATE, DELETE) no permissive policy of that command or of ALL names the role or
-- PUBLIC. PostgreSQL then shows the role no row and refuses its inserts: every event of the
-- feed becomes a dead letter reading `permission denied`, a merge re-points nothing and the old
-- customer's delete takes the rows an ON DELETE CASCADE follows. One row per table: the
-- commands lacking a policy (in GRANT order), the first path and reason that asked for the
-- table, and the statement that makes a policy for all of them. (A restrictive policy, or a
-- permissive one whose USING is not always true, is the DBA's to read: the catalog cannot tell
-- which rows it lets through.)
CREATE OR REPLACE FUNCTION sync._owner_policy_gaps(p_document jsonb, p_owner name)
RETURNS TABLE (ord integer, path text, relation regclass, why text, self_evident boolean,
               commands text, statement text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (pg_catalog.array_agg(n.ord ORDER BY n.ord, n.path))[1],
           (pg_catalog.array_agg(n.path ORDER BY n.ord, n.path))[1],
           n.relation,
           (pg_catalog.array_agg(n.why ORDER BY n.ord, n.path))[1],
           (pg_catalog.array_agg(n.self_evident ORDER BY n.ord, n.path))[1],
           -- sync._owner_needs lists a table's privilege once
           pg_catalog.string_agg(n.privilege, ', ' ORDER BY n.privilege_ord),
           pg_catalog.format('CREATE POLICY %I ON %s AS PERMISSIVE FOR ALL TO %I'
                             ' USING (true) WITH CHECK (true);', p_owner, n.relation, p_owner)
    FROM sync._owner_needs(p_document) AS n
    JOIN pg_catalog.pg_class AS r ON r.oid = n.relation
    JOIN pg_catalog.pg_roles AS o ON o.rolname = p_owner
    WHERE n.privilege IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
      AND r.relrowsecurity
      AND (r.relowner <> o.oid OR r.relforcerowsecurity)
      AND NOT EXISTS (
          SELECT FROM pg_catalog.pg_policy AS p
          WHERE p.polrelid = r.oid AND p.polpermissive
            AND p.polcmd IN ('*', CASE n.privilege WHEN 'SELECT' THEN 'r' WHEN 'INSERT' THEN 'a'
                                                   WHEN 'UPDATE' THEN 'w' ELSE 'd' END)
            AND (0::pg_catalog.oid = ANY (p.polroles) OR o.oid = ANY (p.polroles)))
    GROUP BY n.relation
$$;

-- What the owner role p_owner lacks on the active mapping's tables (sync._owner_needs), one row
-- per table (and reason), with the statements that grant it: USAGE on the schema, then the table
-- privileges in the order SELECT, INSERT, UPDATE, DELETE, TRIGGER.
CREATE OR REPLACE FUNCTION sync._privilege_defects(p_owner name)
RETURNS TABLE (table_name text, defect text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH needed AS MATERIALIZED (
        SELECT n.relation, n.privilege, n.privilege_ord, n.ord,
               CASE WHEN n.self_evident THEN '' ELSE n.why END AS why
        FROM sync.mapping_version AS v
        CROSS JOIN LATERAL sync._owner_needs(v.document) AS n
        WHERE v.active
    ),
    lacking AS (
        SELECT d.relation, d.why,
               pg_catalog.concat_ws('.', s.nspname, r.relname) AS qualified_name, s.nspname,
               -- the schema once per table, with its first reason
               pg_catalog.row_number() OVER (PARTITION BY d.relation ORDER BY d.ord, d.why) = 1
               AND NOT pg_catalog.has_schema_privilege(o.oid, s.oid, 'USAGE') AS lacks_usage,
               pg_catalog.array_to_string(ARRAY(
                   SELECT x.privilege
                   FROM needed AS x
                   WHERE x.relation = d.relation AND x.why = d.why
                     AND NOT pg_catalog.has_table_privilege(o.oid, x.relation, x.privilege)
                   ORDER BY x.privilege_ord), ', ') AS privileges
        FROM (SELECT x.relation, x.why, pg_catalog.min(x.ord) AS ord
              FROM needed AS x GROUP BY x.relation, x.why) AS d
        JOIN pg_catalog.pg_roles AS o ON o.rolname = p_owner
        JOIN pg_catalog.pg_class AS r ON r.oid = d.relation
        JOIN pg_catalog.pg_namespace AS s ON s.oid = r.relnamespace
    )
    SELECT l.qualified_name,
           pg_catalog.format(
               'the owner role %s lacks %s: %s', p_owner,
               pg_catalog.concat_ws(
                   ' and ',
                   CASE WHEN l.lacks_usage
                        THEN pg_catalog.format('USAGE on schema %I', l.nspname) END,
                   NULLIF(l.privileges, '') || ' on the table' || l.why),
               pg_catalog.concat_ws(
                   ' ',
                   CASE WHEN l.lacks_usage
                        THEN pg_catalog.format('GRANT USAGE ON SCHEMA %I TO %I;',
                                               l.nspname, p_owner) END,
                   CASE WHEN l.privileges <> ''
                        THEN pg_catalog.format('GRANT %s ON TABLE %s TO %I;',
                                               l.privileges, l.relation, p_owner) END))
    FROM lacking AS l
    WHERE l.lacks_usage OR l.privileges <> ''
$$;

-- Columns outside syncctl's own schemas (and outside the customer table) that look like a
-- reference to the customer but are neither linked nor declared: there a merge would leave the
-- old customer's rows behind and anonymisation would pass them over. A column looks like one
-- when its name (lower case) ends in customer|klant|client|cust, an optional _ or space, then
-- id|key|ref|uuid|number|nr|no|num|nummer; or it bears the customer key's own name (unless that
-- is a bare generic one such as id); or it has the key's type and is named after the customer
-- table and its key (member_id for member.id, also billing_member_id). A column with any foreign
-- key references what that names; a column of another type than the key that is unique on its
-- own identifies its own table's rows (another customer table's customer_number);
-- sync.not_a_reference silences the others.
CREATE OR REPLACE FUNCTION sync._look_alike_columns()
RETURNS TABLE (relation regclass, table_name text, column_name name, defect text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH customer_key AS (
        SELECT m.relation, m.key_type, pg_catalog.lower(m.key_column) AS key_name,
               -- the table's name and key as a regular expression: any character literal
               '(^|_)' || pg_catalog.regexp_replace(
                   pg_catalog.regexp_replace(pg_catalog.lower(r.relname), 's$', ''),
                   '([^a-z0-9_])', '\\\1', 'g')
               || 's?_?' || pg_catalog.regexp_replace(
                   pg_catalog.lower(m.key_column), '([^a-z0-9_])', '\\\1', 'g')
               || '$' AS named_after,
               pg_catalog.format('%s.%I', m.relation, m.key_column) AS target
        FROM sync.mapped_customer() AS m
        JOIN pg_catalog.pg_class AS r ON r.oid = m.relation
    ),
    -- declared (resolving or not) or recorded as no reference: by names, read once
    settled AS MATERIALIZED (
        SELECT d.table_schema, d.table_name, d.column_name FROM sync._declared_references() AS d
        UNION
        SELECT x.table_schema, x.table_name, x.column_name FROM sync.not_a_reference AS x
    ),
    -- every column with a foreign key of its own
    constrained AS MATERIALIZED (
        SELECT fk.conrelid, k.attnum
        FROM pg_catalog.pg_constraint AS fk
        CROSS JOIN LATERAL pg_catalog.unnest(fk.conkey) AS k (attnum)
        WHERE fk.contype = 'f'
    ),
    -- every column unique on its own (no predicate, no expression)
    unique_alone AS MATERIALIZED (
        SELECT x.indrelid, x.indkey[0] AS attnum
        FROM pg_catalog.pg_index AS x
        WHERE x.indisunique AND x.indnkeyatts = 1 AND x.indpred IS NULL AND x.indkey[0] <> 0
    ),
    candidate AS MATERIALIZED (
        SELECT a.attrelid, a.attnum, a.attname, n.nspname, r.relname,
               a.atttypid IS DISTINCT FROM k.key_type AS other_type
        FROM pg_catalog.pg_attribute AS a
        JOIN pg_catalog.pg_class AS r ON r.oid = a.attrelid
        JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
        LEFT JOIN customer_key AS k ON true
        WHERE r.relkind IN ('r', 'p')
          AND NOT r.relispartition
          AND a.attnum > 0
          AND NOT a.attisdropped
          AND n.nspname NOT IN ('sync', 'gdpr', 'report', 'syncctl', 'syncmap', 'pg_catalog',
                                'information_schema')
          AND n.nspname !~ '^pg_(toast|temp)'
          AND r.oid IS DISTINCT FROM k.relation
          AND (pg_catalog.lower(a.attname)
                   ~ '(customer|klant|client|cust)[_ ]?(id|key|ref|uuid|number|nr|no|num|nummer)$'
               OR (pg_catalog.lower(a.attname) = k.key_name
                   AND k.key_name NOT IN ('id', 'key', 'pk', 'uuid', 'guid', 'oid', 'nr', 'no',
                                          'num', 'number', 'code', 'ref'))
               OR (a.atttypid = k.key_type AND pg_catalog.lower(a.attname) ~ k.named_after))
    )
    SELECT c.attrelid::pg_catalog.regclass, pg_catalog.concat_ws('.', c.nspname, c.relname),
           c.attname,
           pg_catalog.format(
               'looks like a customer reference but has no foreign key to %s and is not'
               ' declared: declare it ([[reference]] in the mapping) or record it in'
               ' sync.not_a_reference',
               coalesce((SELECT k.target FROM customer_key AS k), 'the customer key'))
    FROM candidate AS c
    WHERE NOT EXISTS (SELECT FROM constrained AS f
                      WHERE f.conrelid = c.attrelid AND f.attnum = c.attnum)
      AND NOT (c.other_type AND EXISTS (SELECT FROM unique_alone AS u
                                        WHERE u.indrelid = c.attrelid
                                          AND u.attnum = c.attnum))
      AND NOT EXISTS (SELECT FROM settled AS x
                      WHERE x.table_schema = c.nspname AND x.table_name = c.relname
                        AND x.column_name = c.attname)
$$;

-- The tables the engine's writes reach: sync.customer_tables() (`further` false) and the tables
-- one foreign key further (sync._further_links(): an order's addresses) that an anonymisation
-- or erasure updates, those with a column classified to be scrubbed (`further` true; the
-- engine only updates them). Code on them runs inside the engine's writes as the owner role
-- (sync._trigger_defects, sync._expression_defects).
CREATE OR REPLACE FUNCTION sync._written_tables()
RETURNS TABLE (relation regclass, pointed_to boolean, further boolean)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 30
SET search_path = pg_catalog, pg_temp
AS $$
    WITH listed AS MATERIALIZED (
        SELECT t.relation, t.pointed_to FROM sync.customer_tables() AS t
    )
    SELECT l.relation, l.pointed_to, false
    FROM listed AS l
    UNION
    SELECT f.relation, false, true
    FROM sync._further_links() AS f
    WHERE f.relation NOT IN (SELECT l.relation FROM listed AS l)
      AND EXISTS (SELECT FROM sync.pii_column AS p
                  WHERE p.table_schema = f.table_schema AND p.table_name = f.table_name
                    AND p.strategy IN ('null', 'fixed', 'placeholder', 'year'))
$$;

-- Foreign keys to the customer table that reference another of its unique columns than the
-- mapped key (a newsletter table by the shop's customer_number): the engine links tables by the
-- key alone, so merges, anonymisations, deletes, the export and erasure pass such a table by.
-- One row per foreign key, named by its first column; sync.not_a_reference silences it (the DBA
-- decided the shop keeps those rows itself).
CREATE OR REPLACE FUNCTION sync._other_key_references()
RETURNS TABLE (table_name text, column_name name, defect text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.concat_ws('.', n.nspname, r.relname), a.attname,
           pg_catalog.format(
               'refers to %s by %s, a unique column that is not the mapped key (%I): merges,'
               ' anonymisations, deletes, the export and erasure do not follow it (a merge or'
               ' delete of a customer with rows here is refused by the foreign key, an'
               ' anonymisation leaves them as they are): refer to the key instead, or record it'
               ' in sync.not_a_reference',
               m.relation,
               (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(t.attname), ', '
                                             ORDER BY k.i)
                FROM pg_catalog.unnest(fk.confkey) WITH ORDINALITY AS k (attnum, i)
                JOIN pg_catalog.pg_attribute AS t
                  ON t.attrelid = fk.confrelid AND t.attnum = k.attnum),
               m.key_column)
    FROM sync.mapped_customer() AS m
    JOIN pg_catalog.pg_attribute AS key
      ON key.attrelid = m.relation AND key.attname = m.key_column
    JOIN pg_catalog.pg_constraint AS fk
      ON fk.contype = 'f' AND fk.confrelid = m.relation AND fk.confkey <> ARRAY[key.attnum]
    JOIN pg_catalog.pg_class AS r ON r.oid = fk.conrelid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    JOIN pg_catalog.pg_attribute AS a
      ON a.attrelid = fk.conrelid AND a.attnum = fk.conkey[1]
    WHERE NOT r.relispartition
      AND fk.conparentid = 0
      AND NOT EXISTS (SELECT FROM sync.not_a_reference AS x
                      WHERE x.table_schema = n.nspname AND x.table_name = r.relname
                        AND x.column_name = a.attname)
$$;

-- Triggers on the customer table, the linked tables, the tables the customer points to and the
-- tables one foreign key further the engine scrubs (sync._written_tables(); their partitions
-- included) that fire on the engine's writes (UPDATE and DELETE; INSERT too on the customer
-- table and the tables it points to; UPDATE only on a table one foreign key further) and run a
-- function another role owns: that role controls code running inside the engine's
-- transactions, with the owner role's rights unless the function is SECURITY DEFINER.
-- PostgreSQL's own trigger functions (pg_catalog) and disabled triggers are not listed; a
-- trigger on a partitioned table is listed once, by the parent.
CREATE OR REPLACE FUNCTION sync._trigger_defects(p_owner name)
RETURNS TABLE (table_name text, defect text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.concat_ws('.', tn.nspname, tr.relname),
           pg_catalog.format(
               'trigger %I runs %s, owned by role %s, on %s: it runs inside the engine''s'
               ' writes with %s rights', g.tgname, f.oid::pg_catalog.regprocedure,
               pg_catalog.pg_get_userbyid(f.proowner), e.events,
               CASE WHEN f.prosecdef THEN 'its owner''s' ELSE 'the owner role''s' END)
    FROM sync._written_tables() AS t
    LEFT JOIN sync.mapped_customer() AS m ON m.relation = t.relation
    CROSS JOIN LATERAL (
        SELECT t.relation::pg_catalog.oid AS relid
        UNION
        SELECT p.relid FROM pg_catalog.pg_partition_tree(t.relation) AS p
    ) AS part
    JOIN pg_catalog.pg_trigger AS g ON g.tgrelid = part.relid
    JOIN pg_catalog.pg_class AS tr ON tr.oid = g.tgrelid
    JOIN pg_catalog.pg_namespace AS tn ON tn.oid = tr.relnamespace
    JOIN pg_catalog.pg_proc AS f ON f.oid = g.tgfoid
    JOIN pg_catalog.pg_namespace AS fn ON fn.oid = f.pronamespace
    CROSS JOIN LATERAL (
        SELECT pg_catalog.concat_ws(
                   ', ',
                   CASE WHEN (m.relation IS NOT NULL OR t.pointed_to)
                             AND g.tgtype::integer & 4 <> 0
                        THEN 'INSERT' END,
                   CASE WHEN g.tgtype::integer & 16 <> 0 THEN 'UPDATE' END,
                   CASE WHEN g.tgtype::integer & 8 <> 0 AND NOT t.further
                        THEN 'DELETE' END) AS events
    ) AS e
    WHERE NOT g.tgisinternal
      AND g.tgenabled IN ('O', 'A')  -- fires in ordinary sessions: not disabled, not replica-only
      AND g.tgparentid = 0
      AND e.events <> ''
      AND fn.nspname <> 'pg_catalog'
      AND f.proowner IS DISTINCT FROM (SELECT o.oid FROM pg_catalog.pg_roles AS o
                                       WHERE o.rolname = p_owner)
$$;

-- Code the engine's writes evaluate on the same tables besides triggers: a CHECK or exclusion
-- constraint, an index's expression or predicate, a column's default or generation expression,
-- a row-level security policy (also on a table one foreign key further that the subject access
-- export only reads), a rule, and the CHECK of a domain a column is of, that calls a
-- function (directly or as an operator's) owned by another role than the owner and not by a
-- superuser (an extension's functions are a superuser's). Whoever owns the function may
-- replace it, and it runs inside the engine's writes with the owner role's rights (its
-- owner's when SECURITY DEFINER). One row per object and function; an index, constraint or
-- column a partition has from its parent is listed by the parent.
CREATE OR REPLACE FUNCTION sync._expression_defects(p_owner name)
RETURNS TABLE (table_name text, defect text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH listed AS (
        SELECT t.relation, true AS written FROM sync._written_tables() AS t
        UNION
        -- the tables one foreign key further the engine only reads (the subject access
        -- export, as the owner role): their policies run too
        SELECT f.relation, false FROM sync._further_links() AS f
    ),
    tables AS (
        SELECT part.relid, pg_catalog.bool_or(l.written) AS written
        FROM listed AS l
        CROSS JOIN LATERAL (
            SELECT l.relation::pg_catalog.oid AS relid
            UNION
            SELECT p.relid FROM pg_catalog.pg_partition_tree(l.relation) AS p
        ) AS part
        GROUP BY part.relid
    ),
    attached AS (  -- (table, catalog, object, what it is)
        SELECT x.indrelid AS relid, 'pg_catalog.pg_class'::pg_catalog.regclass AS classid,
               x.indexrelid AS objid,
               pg_catalog.format('index %I', i.relname) AS what
        FROM pg_catalog.pg_index AS x
        JOIN pg_catalog.pg_class AS i ON i.oid = x.indexrelid
        WHERE x.indrelid IN (SELECT relid FROM tables WHERE written)
          AND (x.indexprs IS NOT NULL OR x.indpred IS NOT NULL)
          -- a partition's index made from its parent's is listed by the parent
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits AS h
                          WHERE h.inhrelid = x.indexrelid)
        UNION ALL
        SELECT c.conrelid, 'pg_catalog.pg_constraint'::pg_catalog.regclass, c.oid,
               pg_catalog.format('%s constraint %I',
                                 CASE c.contype WHEN 'c' THEN 'CHECK' WHEN 'x' THEN 'exclusion'
                                                ELSE 'a' END, c.conname)
        FROM pg_catalog.pg_constraint AS c
        WHERE c.conrelid IN (SELECT relid FROM tables WHERE written) AND c.contype IN ('c', 'x')
          AND NOT c.coninhcount > 0
        UNION ALL
        SELECT d.adrelid, 'pg_catalog.pg_attrdef'::pg_catalog.regclass, d.oid,
               pg_catalog.format('%s of column %I',
                                 CASE WHEN a.attgenerated <> '' THEN 'generation expression'
                                      ELSE 'default' END, a.attname)
        FROM pg_catalog.pg_attrdef AS d
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
        WHERE d.adrelid IN (SELECT relid FROM tables WHERE written)
        UNION ALL
        SELECT y.polrelid, 'pg_catalog.pg_policy'::pg_catalog.regclass, y.oid,
               pg_catalog.format('policy %I', y.polname)
        FROM pg_catalog.pg_policy AS y
        WHERE y.polrelid IN (SELECT relid FROM tables)
        UNION ALL
        SELECT w.ev_class, 'pg_catalog.pg_rewrite'::pg_catalog.regclass, w.oid,
               pg_catalog.format('rule %I', w.rulename)
        FROM pg_catalog.pg_rewrite AS w
        WHERE w.ev_class IN (SELECT relid FROM tables WHERE written)
        UNION ALL
        SELECT a.attrelid, 'pg_catalog.pg_constraint'::pg_catalog.regclass, dc.oid,
               pg_catalog.format('domain %s of column %I', a.atttypid::pg_catalog.regtype,
                                 a.attname)
        FROM pg_catalog.pg_attribute AS a
        JOIN pg_catalog.pg_type AS ty ON ty.oid = a.atttypid AND ty.typtype = 'd'
        JOIN pg_catalog.pg_constraint AS dc ON dc.contypid = ty.oid
        WHERE a.attrelid IN (SELECT relid FROM tables WHERE written)
          AND a.attnum > 0 AND NOT a.attisdropped
          AND a.attinhcount = 0  -- a partition's column is of its parent's type
    ),
    called AS (  -- each function an object calls, directly or through an operator
        SELECT DISTINCT o.relid, o.what, f.oid AS funcid
        FROM attached AS o
        JOIN pg_catalog.pg_depend AS dep ON dep.classid = o.classid AND dep.objid = o.objid
        LEFT JOIN pg_catalog.pg_operator AS op
            ON dep.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass
           AND op.oid = dep.refobjid
        JOIN pg_catalog.pg_proc AS f
            ON f.oid = CASE WHEN dep.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                            THEN dep.refobjid ELSE op.oprcode::pg_catalog.oid END
    )
    SELECT pg_catalog.concat_ws('.', tn.nspname, tr.relname),
           pg_catalog.format(
               '%s calls %s, owned by role %s: it runs inside the engine''s writes with %s'
               ' rights', c.what, f.oid::pg_catalog.regprocedure,
               pg_catalog.pg_get_userbyid(f.proowner),
               CASE WHEN f.prosecdef THEN 'its owner''s' ELSE 'the owner role''s' END)
    FROM called AS c
    JOIN pg_catalog.pg_proc AS f ON f.oid = c.funcid
    JOIN pg_catalog.pg_namespace AS fn ON fn.oid = f.pronamespace
    JOIN pg_catalog.pg_roles AS fo ON fo.oid = f.proowner
    JOIN pg_catalog.pg_class AS tr ON tr.oid = c.relid
    JOIN pg_catalog.pg_namespace AS tn ON tn.oid = tr.relnamespace
    WHERE fn.nspname <> 'pg_catalog'
      AND NOT fo.rolsuper
      AND fo.rolname <> p_owner
$$;

-- Whether a valid index of p_relation leads with its column p_column (kind unindexed: without
-- one, reaching a customer's rows by that column reads the whole table).
CREATE OR REPLACE FUNCTION sync._index_leads_with(p_relation regclass, p_column name)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT FROM pg_catalog.pg_index AS x
        JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
        WHERE x.indrelid = p_relation AND x.indisvalid AND a.attname = p_column)
$$;

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Every coverage defect, as (table, column, defect, kind); column NULL for a defect of the whole
-- table. The table is named as PostgreSQL quotes it (sync._shown_name: "web.shop".customer,
-- sales."Review", public.address); the column by its name in the catalog. Empty is the only
-- acceptable answer: `syncctl coverage` exits non-zero otherwise.
-- Example: SELECT kind, table_name, column_name, defect FROM sync.coverage_defects();
DROP FUNCTION IF EXISTS sync.coverage_defects();  -- its result gains kind
CREATE OR REPLACE FUNCTION sync.coverage_defects()
RETURNS TABLE (table_name text, column_name name, defect text, kind text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- sync.role_name is defined with the roles (sql/95_roles.sql), after this file
    owner_role name := sync.role_name('owner');
BEGIN
    RETURN QUERY
    WITH tables AS MATERIALIZED (SELECT * FROM sync.customer_tables()),
    found AS MATERIALIZED (
        SELECT d.table_name, d.column_name,
           -- a partition listed by itself: how to make it one table with its parent (the
           -- privilege kind says so within its message)
           d.defect || CASE WHEN d.kind <> 'privilege'
                            THEN coalesce(sync._partition_hint(pt.partition_of, ''), '')
                            ELSE '' END AS defect,
           d.kind
    FROM (
        SELECT coalesce(sync._shown_name(v.document #>> '{customer,schema}',
                                          v.document #>> '{customer,table}'),
                        'sync.mapping_version') AS table_name,
               (v.document #>> '{customer,key}')::name AS column_name,
               CASE WHEN v.version IS NULL
                    THEN 'no mapping is active: the engine has no customer table'
                    ELSE pg_catalog.format('the active mapping (version %s) names a customer'
                                           ' table or key that does not exist', v.version)
               END AS defect,
               'mapping' AS kind
        FROM (SELECT) AS one
        LEFT JOIN sync.mapping_version AS v ON v.active
        WHERE NOT EXISTS (SELECT FROM sync.mapped_customer())
        UNION ALL
        SELECT u.table_name, u.column_name,
               'column has no PII strategy'
               || CASE WHEN EXISTS (SELECT FROM tables AS t
                                    WHERE t.qualified_name = u.table_name AND t.pointed_to)
                       THEN ' (the customer row points to this table: an anonymisation scrubs'
                            ' its row, or a copy of it)'
                       ELSE '' END,
               'unclassified'
        FROM sync.unclassified_columns() AS u
        UNION ALL
        SELECT u.table_name, u.column_name, u.defect, 'unclassified_further'
        FROM sync._unclassified_further_columns() AS u
        UNION ALL
        SELECT t.qualified_name, a.attname,
               CASE
                   -- an UPDATE may set it to DEFAULT alone (SQLSTATE 428C9): every
                   -- anonymisation of the table would fail
                   WHEN a.attgenerated <> ''
                       THEN pg_catalog.format(
                           'strategy %s on a generated column: PostgreSQL recomputes it from the'
                           ' columns it is generated from, the engine cannot write it (classify'
                           ' it keep, and those columns by what they hold)', p.strategy)
                   WHEN p.strategy = 'null' AND a.attnotnull
                       THEN 'strategy null on a NOT NULL column'
                   ELSE 'strategy year on a column that is not a date or timestamp'
               END,
               'strategy'
        FROM tables AS t
        JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = t.relation AND a.attnum > 0 AND NOT a.attisdropped
        JOIN sync.pii_column AS p
            ON p.table_schema = t.table_schema AND p.table_name = t.table_name
           AND p.column_name = a.attname
        LEFT JOIN sync.anonymise_rule AS r
            ON r.table_schema = t.table_schema AND r.table_name = t.table_name
        WHERE coalesce(r.action, 'scrub') = 'scrub'
          AND ((a.attgenerated <> '' AND p.strategy NOT IN ('keep', 'not_personal'))
               OR (p.strategy = 'null' AND a.attnotnull)
               OR (p.strategy = 'year'
                   AND a.atttypid NOT IN ('date'::pg_catalog.regtype,
                                          'timestamp'::pg_catalog.regtype,
                                          'timestamptz'::pg_catalog.regtype)))
        UNION ALL
        -- whose data a column holds (sync.pii_column.belongs_to): one of the table's own
        -- columns that refer to the customer table
        SELECT t.qualified_name, p.column_name::name,
               pg_catalog.format('belongs_to names %s, which is not a column of the table that'
                                 ' refers to the customer table (one of: %s)',
                                 pg_catalog.quote_ident(p.belongs_to),
                                 coalesce((SELECT pg_catalog.string_agg(
                                                      pg_catalog.quote_ident(l.fk_column),
                                                      ', ' ORDER BY l.fk_column)
                                           FROM sync.customer_links() AS l
                                           WHERE l.relation = t.relation), 'none')),
               'strategy'
        FROM tables AS t
        JOIN sync.pii_column AS p
            ON p.table_schema = t.table_schema AND p.table_name = t.table_name
        WHERE p.belongs_to IS NOT NULL
          AND NOT EXISTS (SELECT FROM sync.customer_links() AS l
                          WHERE l.relation = t.relation AND l.fk_column = p.belongs_to)
        UNION ALL
        SELECT l.qualified_name, c.col::name,
               'merge rule names a column the table does not have', 'merge_rule'
        FROM sync.customer_links() AS l
        JOIN sync.merge_rule AS mr
            ON mr.table_schema = l.table_schema AND mr.table_name = l.table_name
        CROSS JOIN LATERAL (SELECT coalesce(mr.newest_column, mr.quantity_column) AS col) AS c
        WHERE c.col IS NOT NULL
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                          WHERE a.attrelid = l.relation AND a.attname = c.col
                            AND NOT a.attisdropped)
        UNION ALL
        SELECT l.qualified_name, l.fk_column,
               pg_catalog.format('customer column has no index leading with it: a merge or'
                                 ' delete scans the table (CREATE INDEX ON %s (%I);)',
                                 l.relation, l.fk_column),
               'unindexed'
        FROM sync.customer_links() AS l
        WHERE NOT sync._index_leads_with(l.relation, l.fk_column)
        UNION ALL
        -- a table one foreign key further that an anonymisation scrubs: each customer's rows
        -- are reached through the foreign key (sync._further_links)
        SELECT DISTINCT f.qualified_name, f.first_column,
               pg_catalog.format('foreign key column has no index leading with it: every'
                                 ' anonymisation or erasure scans the table (CREATE INDEX ON %s'
                                 ' (%I);)', f.relation, f.first_column),
               'unindexed'
        FROM sync._further_links() AS f
        JOIN sync._written_tables() AS w ON w.relation = f.relation AND w.further
        WHERE NOT sync._index_leads_with(f.relation, f.first_column)
        UNION ALL
        -- a declared table may not exist: named by the declaration, quoted
        SELECT sync._shown_name(r.table_schema, r.table_name), r.column_name::name,
               pg_catalog.format('declared reference (%s): %s', r.path, r.problem),
               'declared_reference'
        FROM sync._declared_references() AS r
        WHERE r.problem IS NOT NULL
        UNION ALL
        SELECT p.table_name, NULL::name, p.defect, 'privilege'
        FROM sync._privilege_defects(owner_role) AS p
        UNION ALL
        SELECT sync._shown_name(s.nspname, c.relname), NULL::name,
               pg_catalog.format('the owner role %s lacks a row-level security policy for %s'
                                 ' on the table%s: %s', owner_role, g.commands,
                                 CASE WHEN g.self_evident THEN '' ELSE g.why END, g.statement),
               'privilege'
        FROM sync.mapping_version AS v
        CROSS JOIN LATERAL sync._owner_policy_gaps(v.document, owner_role) AS g
        JOIN pg_catalog.pg_class AS c ON c.oid = g.relation
        JOIN pg_catalog.pg_namespace AS s ON s.oid = c.relnamespace
        WHERE v.active
        UNION ALL
        SELECT c.table_name, c.column_name, c.defect, 'look_alike'
        FROM sync._look_alike_columns() AS c
        UNION ALL
        SELECT o.table_name, o.column_name, o.defect, 'other_key'
        FROM sync._other_key_references() AS o
        UNION ALL
        SELECT g.table_name, NULL::name, g.defect, 'trigger'
        FROM sync._trigger_defects(owner_role) AS g
        UNION ALL
        SELECT e.table_name, NULL::name, e.defect, 'function'
        FROM sync._expression_defects(owner_role) AS e
        UNION ALL
        -- a partition of the customer table attached after the install: the engine's
        -- statement triggers are on the table itself, not on it (sql/73_shop_key_changes.sql)
        SELECT pg_catalog.concat_ws('.', n.nspname, c.relname), NULL::name,
               pg_catalog.format(
                   'a partition of the customer table %s without the engine''s statement '
                   'triggers (attached after the mapping was installed): customers a DELETE, '
                   'TRUNCATE or key UPDATE naming it removes or re-keys keep their tritonX link, '
                   'consents and erasure requests under the old key; install the mapping again '
                   '(syncctl mapping install of the same file), with TRIGGER on it for %I',
                   m.relation, owner_role),
               'unbound'
        FROM sync.mapped_customer() AS m
        CROSS JOIN LATERAL pg_catalog.pg_partition_tree(m.relation) AS p
        JOIN pg_catalog.pg_class AS c ON c.oid = p.relid
        JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
        WHERE p.level > 0
          AND EXISTS (SELECT FROM pg_catalog.pg_trigger AS t
                      WHERE t.tgrelid = m.relation
                        AND t.tgfoid = 'sync._customers_deleted_by_shop()'::pg_catalog.regprocedure)
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS t
                          WHERE t.tgrelid = p.relid
                            AND t.tgfoid = 'sync._customers_deleted_by_shop()'
                                           ::pg_catalog.regprocedure)
    ) AS d
    LEFT JOIN tables AS pt ON pt.qualified_name = d.table_name AND pt.partition_of IS NOT NULL
    ),
    -- each table named as PostgreSQL quotes it ("web.shop".customer, sales."Review"; a plain
    -- name as it is), once for every defect of it: one pass over the catalog's names
    shown AS (
        SELECT DISTINCT ON (q.qualified) q.qualified, q.shown
        FROM (SELECT pg_catalog.concat_ws('.', n.nspname, c.relname) AS qualified,
                     sync._shown_name(n.nspname, c.relname) AS shown, c.oid
              FROM pg_catalog.pg_class AS c
              JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')) AS q
        WHERE q.qualified IN (SELECT f.table_name FROM found AS f)
        ORDER BY q.qualified, q.oid
    )
    SELECT coalesce(s.shown, f.table_name), f.column_name, f.defect, f.kind
    FROM found AS f
    LEFT JOIN shown AS s ON s.qualified = f.table_name
    ORDER BY 1, 2, 3;
END
$$;
