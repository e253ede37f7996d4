-- Retention: data a policy no longer holds goes. Per customer and active policy:
--   under the policy  membership all: every customer; customer_group: that group; consent: a
--                     customer with any consent decision for it
--   holds             under it, consent granted (consent policies), and the retention period
--                     not over: anchor + retention > now, the anchor being the customer's
--                     created time, its last activity (else created) or its last order (else
--                     created)
-- Works on the mapped customer table (sync.mapped_customer(): any schema, any key type). The
-- facts a policy needs come from the active mapping's optional [gdpr] table (docs/mapping.md):
-- created_column, last_activity_column, group_column (columns of the customer table) and
-- last_order (a date column of a customer-linked table). A policy that needs a fact the mapping
-- does not declare is refused when it is activated and when retention runs (SY089, naming the
-- mapping key to add): never a silent no-op.
-- A category (table, or some of its columns) of a customer goes when a policy the customer is
-- under covers it and does not hold it, and no policy that holds it covers the same data.
-- What going means comes from the PII registry: a whole customer row not held by any policy is
-- anonymised (sync.anonymise_from_backoffice_key: tombstone, outbound event for tritonX);
-- otherwise a table's rows are deleted (anonymise rule delete_rows) or scrubbed per the column
-- strategies, only the released columns when the category names columns.
-- Only rows that still differ from their erased form count, so a run is idempotent and a
-- broken-off run resumes where it stopped. A run walks the customers in key order (the key's
-- own type's order), naming them by the key as text (the key's own text form, as gdpr.consent
-- holds it); the bigint forms are wrappers for integer keys. Time is a parameter (p_now), never
-- read. Re-runnable.
-- SQLSTATEs: SY020 (a bigint form on a key that is not an integer), SY061 no mapping, SY089 a
-- policy needs a fact the mapping does not declare.

-- ---------------------------------------------------------------------------------------------
-- Building blocks (private)
-- ---------------------------------------------------------------------------------------------

-- The tables of a category with the column that holds the customer key and its type: the
-- mapped customer table (its key) and every customer-linked table (sync.customer_links()).
DROP FUNCTION IF EXISTS gdpr._category_links();  -- its result gains column_type
CREATE OR REPLACE FUNCTION gdpr._category_links()
RETURNS TABLE (table_schema name, table_name name, relation regclass, key_column name,
               column_type regtype)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.nspname, r.relname, m.relation, m.key_column, m.key_type
    FROM sync.mapped_customer() AS m
    JOIN pg_catalog.pg_class AS r ON r.oid = m.relation
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    UNION ALL
    SELECT l.table_schema, l.table_name, l.relation, l.fk_column, l.column_type
    FROM sync.customer_links() AS l
$$;

-- The facts the active mapping's [gdpr] table declares, resolved against the catalog: the
-- customer table's created, last-activity (date, timestamp or timestamptz) and group (text-like)
-- columns, and the last order's table, its customer column (the one customer link of the table,
-- or the one last_order.customer_column names) and its date column. NULL where the mapping
-- declares nothing, or what it declares does not fit the catalog (any more). No row when no
-- mapping is active.
CREATE OR REPLACE FUNCTION gdpr._retention_facts()
RETURNS TABLE (created_column name, last_activity_column name, group_column name,
               order_relation regclass, order_customer_column name, order_column name)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT x.cr, x.la, x.gr,
           CASE WHEN x.oc IS NOT NULL THEN lo.relation END,
           CASE WHEN x.oc IS NOT NULL THEN lo.fk_column END, x.oc
    FROM sync.mapping_version AS v
    JOIN sync.mapped_customer() AS m ON true
    -- the last order's table: exactly one customer link of it (or the one named)
    LEFT JOIN LATERAL (
        SELECT (pg_catalog.array_agg(l.relation))[1] AS relation,
               (pg_catalog.array_agg(l.fk_column))[1] AS fk_column
        FROM sync.customer_links() AS l
        WHERE l.known_by <> 'engine'
          AND l.table_schema = v.document #>> '{gdpr,last_order,schema}'
          AND l.table_name = v.document #>> '{gdpr,last_order,table}'
          AND (v.document #>> '{gdpr,last_order,customer_column}' IS NULL
               OR l.fk_column = v.document #>> '{gdpr,last_order,customer_column}')
        HAVING count(*) = 1
    ) AS lo ON true
    CROSS JOIN LATERAL (
        SELECT pg_catalog.max(a.attname::text) FILTER (WHERE f.fact = 1)::name,
               pg_catalog.max(a.attname::text) FILTER (WHERE f.fact = 2)::name,
               pg_catalog.max(a.attname::text) FILTER (WHERE f.fact = 3)::name,
               pg_catalog.max(a.attname::text) FILTER (WHERE f.fact = 4)::name
        FROM (VALUES (1, m.relation::pg_catalog.oid, '{gdpr,created_column}', 'time'),
                     (2, m.relation, '{gdpr,last_activity_column}', 'time'),
                     (3, m.relation, '{gdpr,group_column}', 'text'),
                     (4, lo.relation, '{gdpr,last_order,column}', 'time'))
             AS f (fact, relid, path, kind)
        JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = f.relid AND a.attname = v.document #>> f.path::text[]
           AND a.attnum > 0 AND NOT a.attisdropped
           AND sync._mapping_fact_kind(a.atttypid) = f.kind
    ) AS x (cr, la, gr, oc)
    WHERE v.active
$$;

-- Why a policy (its id, code, retention, retention_from and membership) cannot be carried out
-- on the active mapping, as a message naming what to add; NULL when it can. First the facts it
-- needs that the mapping does not declare (usably): a period counts from the created time, or
-- from the last activity or order with the created time as their fallback (a customer who never
-- logged in or ordered); customer_group membership compares the group column. Then a category
-- on a table the customer row points to (an address, sync._pointed_tables()): such a row may be
-- another customer's too, so retention releases it only with the whole customer (the
-- anonymisation scrubs or detaches it), never by itself.
DROP FUNCTION IF EXISTS gdpr._missing_retention_fact(text, interval, text, text);
CREATE OR REPLACE FUNCTION gdpr._missing_retention_fact(
    p_policy_id bigint, p_code text, p_retention interval, p_retention_from text,
    p_membership text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT x.message
    FROM (
        SELECT m.ord, pg_catalog.format(
                   'policy %s %s: the active mapping declares no usable gdpr.%s (add it to the '
                   'mapping''s [gdpr] table, docs/mapping.md; syncctl mapping check says what '
                   'does not fit)', p_code, m.why, m.mapping_key) AS message
        FROM (SELECT) AS one
        LEFT JOIN gdpr._retention_facts() AS f ON true
        CROSS JOIN LATERAL (VALUES
            (1, 'group_column', 'applies to a customer_group',
             p_membership = 'customer_group' AND f.group_column IS NULL),
            (2, 'created_column', 'counts its retention from ' || p_retention_from
                                  || CASE WHEN p_retention_from <> 'created'
                                          THEN ' (else from the created time)' ELSE '' END,
             p_retention IS NOT NULL AND f.created_column IS NULL),
            (3, 'last_activity_column', 'counts its retention from last_activity',
             p_retention IS NOT NULL AND p_retention_from = 'last_activity'
             AND f.last_activity_column IS NULL),
            (4, 'last_order', 'counts its retention from last_order',
             p_retention IS NOT NULL AND p_retention_from = 'last_order'
             AND f.order_column IS NULL)
        ) AS m (ord, mapping_key, why, missing)
        WHERE m.missing
        UNION ALL
        SELECT 5, pg_catalog.format(
                   'policy %s covers %s, a table the customer row points to: retention '
                   'releases its rows only with the whole customer (add %s to the policy''s '
                   'categories, or leave the table out)', p_code, t.qualified_name,
                   c.qualified_name)
        FROM sync._pointed_tables() AS t
        CROSS JOIN (SELECT n.nspname AS table_schema, r.relname AS table_name,
                           n.nspname || '.' || r.relname AS qualified_name
                    FROM sync.mapped_customer() AS mc
                    JOIN pg_catalog.pg_class AS r ON r.oid = mc.relation
                    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace) AS c
        WHERE EXISTS (SELECT FROM gdpr.policy_category AS pc
                      WHERE pc.policy_id = p_policy_id AND pc.table_schema = t.table_schema
                        AND pc.table_name = t.table_name)
          AND NOT EXISTS (SELECT FROM gdpr.policy_category AS pc
                          WHERE pc.policy_id = p_policy_id AND pc.columns IS NULL
                            AND pc.table_schema = c.table_schema
                            AND pc.table_name = c.table_name)
    ) AS x
    ORDER BY x.ord
    LIMIT 1
$$;

-- Raise SY089 for the first active policy (by code) that needs a fact the active mapping does
-- not declare (SY061 when no mapping is active): retention refuses rather than skip a policy.
CREATE OR REPLACE FUNCTION gdpr._check_retention_facts()
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    why text;
BEGIN
    IF NOT EXISTS (SELECT FROM sync.mapped_customer()) THEN
        RAISE EXCEPTION USING ERRCODE = 'SY061', MESSAGE = 'no mapping is installed';
    END IF;
    SELECT m.why INTO why
    FROM gdpr.policy AS p
    CROSS JOIN LATERAL (SELECT gdpr._missing_retention_fact(p.id, p.code, p.retention,
                                                            p.retention_from, p.membership)
                               AS why) AS m
    WHERE p.state = 'active' AND m.why IS NOT NULL
    ORDER BY p.code
    LIMIT 1;
    IF why IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SY089', MESSAGE = why;
    END IF;
END
$$;

-- A policy is put in force only when the mapping states what it needs (SY089), whoever sets
-- state = 'active' (gdpr.activate_policy, or a DBA's own statement).
CREATE OR REPLACE FUNCTION gdpr._policy_needs_mapping()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    why text := gdpr._missing_retention_fact(NEW.id, NEW.code, NEW.retention,
                                             NEW.retention_from, NEW.membership);
BEGIN
    IF why IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SY089', MESSAGE = why;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER policy_needs_mapping
    BEFORE INSERT OR UPDATE OF state ON gdpr.policy
    FOR EACH ROW WHEN (NEW.state = 'active')
    EXECUTE FUNCTION gdpr._policy_needs_mapping();

-- A key a caller pages by (p_after, p_through) as the key's type: the key's own text form, NULL
-- for NULL; SY020 when it is not of the key's type (the key is never echoed).
CREATE OR REPLACE FUNCTION gdpr._checked_page_key(p_key text)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key_type pg_catalog.regtype := (SELECT m.key_type FROM sync.mapped_customer() AS m);
    checked  text;
BEGIN
    IF p_key IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM sync._checked_length(p_key, sync._key_limit(), 'customer key');
    BEGIN
        EXECUTE pg_catalog.format('SELECT $1::%s::text', key_type) INTO checked USING p_key;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION USING ERRCODE = 'SY020', MESSAGE = pg_catalog.format(
            'the key to page by is not of the customer key''s type (%s)', key_type);
    END;
    RETURN checked;
END
$$;

-- The rows of gdpr.retention_status for the customers with p_after < key <= p_through (keys as
-- text, compared as the key's type; NULL: no bound) or, with p_only, that one customer; in key
-- order, then by policy code.
CREATE OR REPLACE FUNCTION gdpr._retention_status(
    p_now timestamptz, p_after text, p_through text, p_only text)
RETURNS TABLE (customer_key text, policy_code text, holds boolean, expires_at timestamptz,
               reason text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped  record;
    facts   record;
    created text;
BEGIN
    PERFORM gdpr._check_retention_facts();
    SELECT * INTO mapped FROM sync.mapped_customer();
    SELECT * INTO facts FROM gdpr._retention_facts();
    created := CASE WHEN facts.created_column IS NOT NULL
                    THEN pg_catalog.format('c.%I::timestamptz', facts.created_column)
                    ELSE 'NULL::timestamptz' END;
    RETURN QUERY EXECUTE pg_catalog.format(
        $sql$
        SELECT u.customer_key, u.code,
               (u.membership <> 'consent' OR coalesce(u.granted, false))
                   AND (u.expires_at IS NULL OR u.expires_at > $1),
               u.expires_at,
               CASE WHEN u.membership = 'consent' AND NOT coalesce(u.granted, false)
                        THEN 'consent withdrawn'
                    WHEN u.expires_at <= $1
                        THEN 'retention over (' || u.retention_from || ' + '
                             || u.retention::text || ')'
               END
        FROM (
            SELECT c.%1$I::text AS customer_key, c.%1$I AS sort_key, p.code, p.membership,
                   p.retention, p.retention_from, cc.granted,
                   CASE p.retention_from
                       WHEN 'created' THEN %3$s
                       WHEN 'last_activity' THEN coalesce(%4$s, %3$s)
                       ELSE coalesce(lo.placed_at, %3$s)
                   END + p.retention AS expires_at
            FROM gdpr.policy AS p
            JOIN %2$s AS c
                ON p.membership = 'all'
                OR (p.membership = 'customer_group' AND %5$s = p.customer_group)
                OR (p.membership = 'consent'
                    AND EXISTS (SELECT FROM gdpr.consent AS g
                                WHERE g.customer_key = c.%1$I::text AND g.policy_id = p.id))
            LEFT JOIN LATERAL (%6$s) AS lo ON true
            LEFT JOIN LATERAL (
                SELECT g.granted FROM gdpr.consent AS g
                WHERE p.membership = 'consent' AND g.customer_key = c.%1$I::text
                  AND g.policy_id = p.id
                ORDER BY g.decided_at DESC, g.id DESC LIMIT 1
            ) AS cc ON true
            WHERE p.state = 'active'
              AND ($2::text IS NULL OR c.%1$I > $2::%7$s)
              AND ($3::text IS NULL OR c.%1$I <= $3::%7$s)
              AND ($4::text IS NULL OR c.%1$I = $4::%7$s)
        ) AS u
        ORDER BY u.sort_key, u.code
        $sql$,
        mapped.key_column, mapped.relation, created,
        CASE WHEN facts.last_activity_column IS NOT NULL
             THEN pg_catalog.format('c.%I::timestamptz', facts.last_activity_column)
             ELSE 'NULL::timestamptz' END,
        CASE WHEN facts.group_column IS NOT NULL
             THEN pg_catalog.format('c.%I::text', facts.group_column)
             ELSE 'NULL::text' END,
        -- the last order: one index lookup per customer, only for policies that need it
        CASE WHEN facts.order_column IS NOT NULL
             THEN pg_catalog.format(
                 'SELECT pg_catalog.max(o.%1$I)::timestamptz AS placed_at FROM %2$s AS o '
                 'WHERE p.retention_from = ''last_order'' AND o.%3$I = c.%4$I',
                 facts.order_column, facts.order_relation, facts.order_customer_column,
                 mapped.key_column)
             ELSE 'SELECT NULL::timestamptz AS placed_at' END,
        mapped.key_type)
        USING p_now, gdpr._checked_page_key(p_after), gdpr._checked_page_key(p_through), p_only;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Per customer and active policy the customer is under: whether the policy holds the
-- customer's data at p_now, when that ends (NULL: no limit), and why it no longer holds. Only
-- customers with p_after < key <= p_through (keys as text; NULL: no bound), in key order.
-- Raises SY089 when an active policy needs a fact the mapping does not declare.
-- Example: SELECT * FROM gdpr.retention_status(now()) WHERE NOT holds;
DROP FUNCTION IF EXISTS gdpr.retention_status(timestamptz, bigint, bigint);
CREATE OR REPLACE FUNCTION gdpr.retention_status(
    p_now timestamptz DEFAULT now(), p_after text DEFAULT NULL, p_through text DEFAULT NULL)
RETURNS TABLE (customer_key text, policy_code text, holds boolean, expires_at timestamptz,
               reason text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM gdpr._retention_status(p_now, p_after, p_through, NULL)
$$;

-- The same for an integer customer key, by bigint ids: p_after_id < id <= p_through_id.
-- Example: SELECT * FROM gdpr.retention_status(now(), 41, 42);
CREATE OR REPLACE FUNCTION gdpr.retention_status(
    p_now timestamptz, p_after_id bigint, p_through_id bigint DEFAULT NULL)
RETURNS TABLE (customer_id bigint, policy_code text, holds boolean, expires_at timestamptz,
               reason text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM sync._integer_keys_only('gdpr.retention_status');
    RETURN QUERY
        SELECT s.customer_key::bigint, s.policy_code, s.holds, s.expires_at, s.reason
        FROM gdpr._retention_status(p_now, p_after_id::text, p_through_id::text, NULL) AS s;
END
$$;

-- The status of one customer, p_customer_key its key as text (any text form of the key's type;
-- a key of nobody gives no rows).
-- Example: SELECT * FROM gdpr.retention_status_of('4b9f6a1e-...', now());
CREATE OR REPLACE FUNCTION gdpr.retention_status_of(
    p_customer_key text, p_now timestamptz DEFAULT now())
RETURNS TABLE (customer_key text, policy_code text, holds boolean, expires_at timestamptz,
               reason text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.*
    FROM (SELECT sync._local_customer_key(p_customer_key) AS local_key) AS k
    CROSS JOIN LATERAL gdpr._retention_status(p_now, NULL, NULL, k.local_key) AS s
    WHERE k.local_key IS NOT NULL
$$;

-- gdpr.retention_plan with the rows of each step: those the run deletes (delete_rows) or
-- changes (scrub: the rows that still differ from their erased form; anonymise: the customer
-- row).
CREATE OR REPLACE FUNCTION gdpr._retention_steps(
    p_now timestamptz, p_after text, p_through text)
RETURNS TABLE (customer_key text, table_name text, columns text[], action text,
               policies text[], reasons text[], rows bigint)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped  record;
    -- the steps as a JSON array (no temporary table: the plan stays a plain function)
    steps   jsonb;
    kept    jsonb := '[]';
    step    record;
    scrub   record;
    -- {customer key: rows} of the step in hand, for the customers with something to change
    pending jsonb;
BEGIN
    SELECT m.*, n.nspname AS table_schema, r.relname AS table_name INTO mapped
    FROM sync.mapped_customer() AS m
    JOIN pg_catalog.pg_class AS r ON r.oid = m.relation
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace;
    WITH covered AS (
        -- one row per customer, policy and covered table or column (NULL: the whole table)
        SELECT s.customer_key, s.policy_code, s.holds, s.reason, c.table_schema, c.table_name,
               col.name AS column_name
        FROM gdpr._retention_status(p_now, p_after, p_through, NULL) AS s
        JOIN gdpr.policy AS p ON p.code = s.policy_code
        JOIN gdpr.policy_category AS c ON c.policy_id = p.id
        LEFT JOIN LATERAL pg_catalog.unnest(c.columns) AS col (name) ON true
    ),
    per_table AS (
        SELECT v.customer_key, v.table_schema, v.table_name,
               pg_catalog.bool_or(NOT v.holds AND v.column_name IS NULL) AS released_whole,
               pg_catalog.array_agg(DISTINCT v.column_name)
                   FILTER (WHERE NOT v.holds AND v.column_name IS NOT NULL) AS released_columns,
               pg_catalog.bool_or(v.holds AND v.column_name IS NULL) AS held_whole,
               pg_catalog.array_agg(DISTINCT v.column_name)
                   FILTER (WHERE v.holds AND v.column_name IS NOT NULL) AS held_columns,
               pg_catalog.bool_or(v.holds) AS held,
               pg_catalog.array_agg(DISTINCT v.policy_code) FILTER (WHERE NOT v.holds)
                   AS policies,
               pg_catalog.array_agg(DISTINCT v.policy_code || ': ' || v.reason)
                   FILTER (WHERE NOT v.holds) AS reasons
        FROM covered AS v
        GROUP BY v.customer_key, v.table_schema, v.table_name
    ),
    decided AS (
        SELECT t.customer_key, t.table_schema, t.table_name, t.policies, t.reasons,
               CASE
                   -- some columns released: those no holding policy covers
                   WHEN NOT t.released_whole THEN
                       ARRAY(SELECT x FROM pg_catalog.unnest(t.released_columns) AS x
                             EXCEPT SELECT y FROM pg_catalog.unnest(t.held_columns) AS y
                             ORDER BY 1)
                   -- the table released, some of its columns held: every other column
                   WHEN t.held THEN
                       ARRAY(SELECT pc.column_name::text FROM sync.pii_column AS pc
                             WHERE pc.table_schema = t.table_schema
                               AND pc.table_name = t.table_name
                             EXCEPT SELECT y FROM pg_catalog.unnest(t.held_columns) AS y
                             ORDER BY 1)
               END AS columns,
               CASE
                   WHEN NOT t.released_whole OR t.held THEN 'scrub'
                   WHEN t.table_schema = mapped.table_schema
                        AND t.table_name = mapped.table_name
                        AND NOT t.customer_held THEN 'anonymise'
                   ELSE coalesce(r.action, 'scrub')
               END AS action
        FROM (SELECT pt.*,
                     pg_catalog.bool_or(pt.held) OVER (PARTITION BY pt.customer_key)
                         AS customer_held
              FROM per_table AS pt) AS t
        LEFT JOIN sync.anonymise_rule AS r
            ON r.table_schema = t.table_schema AND r.table_name = t.table_name
        WHERE (t.released_whole OR t.released_columns IS NOT NULL) AND NOT t.held_whole
    ),
    -- a customer being anonymised needs nothing else
    final AS (
        SELECT d.*,
               pg_catalog.bool_or(d.action = 'anonymise')
                   OVER (PARTITION BY d.customer_key) AS anonymised
        FROM decided AS d
        WHERE d.columns IS NULL OR pg_catalog.cardinality(d.columns) > 0
    )
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'customer_key', f.customer_key,
               'table_name', f.table_schema || '.' || f.table_name,
               'relation', l.relation::pg_catalog.oid, 'key_column', l.key_column,
               'column_type', l.column_type::pg_catalog.oid,
               'columns', f.columns, 'action', f.action, 'policies', f.policies,
               'reasons', f.reasons)), '[]')
    INTO steps
    FROM final AS f
    JOIN gdpr._category_links() AS l
        ON l.table_schema = f.table_schema AND l.table_name = f.table_name
    WHERE f.action = 'anonymise' OR NOT f.anonymised;

    -- keep only what still differs from its erased form (idempotent, resumable): one query
    -- per table, column set and action; keys compared as the link column's type (its index)
    FOR step IN
        SELECT (s.value ->> 'relation')::pg_catalog.oid::pg_catalog.regclass AS relation,
               (s.value ->> 'key_column')::name AS key_column,
               (s.value ->> 'column_type')::pg_catalog.oid::pg_catalog.regtype AS column_type,
               s.value -> 'columns' AS columns_json,
               CASE WHEN pg_catalog.jsonb_typeof(s.value -> 'columns') = 'array'
                    THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(s.value -> 'columns'))
               END AS columns,
               s.value ->> 'action' AS action,
               pg_catalog.array_agg(s.value ->> 'customer_key') AS keys
        FROM pg_catalog.jsonb_array_elements(steps) AS s
        GROUP BY 1, 2, 3, 4, 5, 6
    LOOP
        IF step.action = 'delete_rows' THEN
            EXECUTE pg_catalog.format(
                'SELECT pg_catalog.jsonb_object_agg(g.k, g.n) FROM ('
                'SELECT t.%1$I::text AS k, count(*) AS n FROM %2$s AS t '
                'WHERE t.%1$I = ANY ($1::%3$s[]) GROUP BY 1) AS g', step.key_column,
                step.relation, step.column_type)
                INTO pending USING step.keys;
        ELSE
            scrub := sync._scrub_sql(step.relation, step.key_column,
                                     CASE WHEN step.action = 'anonymise' THEN NULL
                                          ELSE step.columns END);
            pending := '{}';
            IF scrub.differs IS NOT NULL THEN
                EXECUTE pg_catalog.format(
                    'SELECT pg_catalog.jsonb_object_agg(g.k, g.n) FROM ('
                    'SELECT t.%1$I::text AS k, count(*) AS n FROM %2$s AS t '
                    'WHERE t.%1$I = ANY ($1::%3$s[]) AND (%4$s) GROUP BY 1) AS g',
                    step.key_column, step.relation, step.column_type, scrub.differs)
                    INTO pending USING step.keys;
            END IF;
            IF step.action = 'anonymise' THEN
                -- anonymised by tritonX already: the tombstone keeps it so (set-based: one
                -- look-up of the number per key, through the mapping's view)
                EXECUTE pg_catalog.format(
                    'SELECT pg_catalog.jsonb_object_agg(d.key, d.value) '
                    'FROM pg_catalog.jsonb_each($1) AS d '
                    'WHERE NOT EXISTS (SELECT FROM syncmap.customer_map AS m '
                    '                  JOIN sync.tombstone AS t '
                    '                      ON t.customer_number = m.customer_number '
                    '                  WHERE m.customer_key = d.key::%s)', mapped.key_type)
                    INTO pending USING pending;
            END IF;
        END IF;
        SELECT kept || coalesce(pg_catalog.jsonb_agg(
                   s.value || pg_catalog.jsonb_build_object('rows', due.value)), '[]')
        INTO kept
        FROM pg_catalog.jsonb_array_elements(steps) AS s
        JOIN pg_catalog.jsonb_each(coalesce(pending, '{}')) AS due
            ON due.key = s.value ->> 'customer_key'
        WHERE (s.value ->> 'relation')::pg_catalog.oid = step.relation::pg_catalog.oid
          AND s.value ->> 'key_column' = step.key_column::text
          AND s.value -> 'columns' = step.columns_json
          AND s.value ->> 'action' = step.action;
    END LOOP;

    -- in key order: the key's own type orders (42 before 100)
    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT x.customer_key, x.table_name, x.columns, x.action, x.policies, x.reasons, '
        '       x.rows '
        'FROM pg_catalog.jsonb_to_recordset($1) AS x (customer_key text, table_name text, '
        'columns text[], action text, policies text[], reasons text[], rows bigint) '
        'ORDER BY x.customer_key::%s, x.table_name', mapped.key_type)
        USING kept;
END
$$;

-- What a retention run at p_now would do, per customer and table: the released columns (NULL:
-- the whole table), the action (anonymise: the whole customer; delete_rows; scrub), the
-- policies that release it and why. Only customers with p_after < key <= p_through (keys as
-- text; NULL: no bound) that have something left to change, in key order.
-- Example: SELECT * FROM gdpr.retention_plan(now());
DROP FUNCTION IF EXISTS gdpr.retention_plan(timestamptz, bigint, bigint);
CREATE OR REPLACE FUNCTION gdpr.retention_plan(
    p_now timestamptz DEFAULT now(), p_after text DEFAULT NULL, p_through text DEFAULT NULL)
RETURNS TABLE (customer_key text, table_name text, columns text[], action text,
               policies text[], reasons text[])
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.customer_key, s.table_name, s.columns, s.action, s.policies, s.reasons
    FROM gdpr._retention_steps(p_now, p_after, p_through) AS s
$$;

-- The dry run of a retention run at p_now: per customer, table and action, the rows the run
-- changes, as it then counts them in its audit rows (gdpr.purge_batch). A customer released
-- whole is anonymised: every table its anonymisation changes is listed, the customer table as
-- `anonymise`, the others as `anonymise: <action>` (scrub: rows scrubbed in place; scrubbed
-- copy: a row it shares with another table or customer is copied and the copy scrubbed, the
-- shared row untouched; detach: its pointer to such a row set NULL; delete_rows; for the
-- engine's copies of a customer with a tritonX number, sync.inbox scrub and sync.dead_letter
-- decide as skipped). The run anonymises in key order, so a row customers released together
-- share only among themselves is copied or detached for each but the last, and scrubbed in
-- place for the last. Otherwise as gdpr.retention_plan (p_after < key <= p_through, keys as
-- text; in key order).
-- Example: SELECT table_name, action, sum(rows), count(DISTINCT customer_key)
--          FROM gdpr.retention_changes(now()) GROUP BY 1, 2;
CREATE OR REPLACE FUNCTION gdpr.retention_changes(
    p_now timestamptz DEFAULT now(), p_after text DEFAULT NULL, p_through text DEFAULT NULL)
RETURNS TABLE (customer_key text, table_name text, columns text[], action text, rows bigint,
               policies text[], reasons text[])
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    steps    jsonb;
    customer text := sync._customer_table_name();
BEGIN
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(s) ORDER BY s.ordinality), '[]')
    INTO steps
    FROM gdpr._retention_steps(p_now, p_after, p_through) WITH ORDINALITY AS s;
    RETURN QUERY
    WITH step AS (
        SELECT x.*, pg_catalog.min(x.ordinality) OVER (PARTITION BY x.customer_key) AS turn
        FROM pg_catalog.jsonb_to_recordset(steps) AS x (
                 customer_key text, table_name text, columns text[], action text,
                 policies text[], reasons text[], rows bigint, ordinality bigint)
    ),
    anonymised AS (
        SELECT s.customer_key, s.policies, s.reasons, s.turn
        FROM step AS s WHERE s.action = 'anonymise'
    )
    SELECT c.customer_key, c.table_name, c.columns, c.action, c.rows, c.policies, c.reasons
    FROM (
        SELECT s.customer_key, s.table_name, s.columns, s.action, s.rows, s.policies,
               s.reasons, s.turn
        FROM step AS s WHERE s.action <> 'anonymise'
        UNION ALL
        SELECT a.customer_key, a.table_name, NULL,
               CASE WHEN a.table_name = customer THEN 'anonymise'
                    ELSE 'anonymise: ' || a.action END,
               a.rows, w.policies, w.reasons, w.turn
        FROM sync._anonymisations_plan(ARRAY(SELECT w.customer_key FROM anonymised AS w
                                              ORDER BY w.turn)) AS a
        JOIN anonymised AS w ON w.customer_key = a.customer_key
    ) AS c
    ORDER BY c.turn, c.table_name;
END
$$;

-- The same for an integer customer key, by bigint ids: p_after_id < id <= p_through_id.
CREATE OR REPLACE FUNCTION gdpr.retention_plan(
    p_now timestamptz, p_after_id bigint, p_through_id bigint DEFAULT NULL)
RETURNS TABLE (customer_id bigint, table_name text, columns text[], action text,
               policies text[], reasons text[])
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM sync._integer_keys_only('gdpr.retention_plan');
    RETURN QUERY
        SELECT p.customer_key::bigint, p.table_name, p.columns, p.action, p.policies, p.reasons
        FROM gdpr.retention_plan(p_now, p_after_id::text, p_through_id::text) AS p;
END
$$;

-- Customers whose data a policy holds today but not after p_within: (customer key as text, its
-- tritonX number, policy, when), soonest first. The key only when it is an integer or a uuid
-- (sync._shown_key: a text key may be an e-mail address; such customers are named by number).
-- Example: SELECT * FROM gdpr.retention_warnings(now(), '30 days');
DROP FUNCTION IF EXISTS gdpr.retention_warnings(timestamptz, interval);  -- customer_key text
CREATE OR REPLACE FUNCTION gdpr.retention_warnings(
    p_now timestamptz DEFAULT now(), p_within interval DEFAULT '30 days')
RETURNS TABLE (customer_key text, customer_number text, policy_code text,
               expires_at timestamptz)
LANGUAGE plpgsql  -- not sql: syncmap is made by the mapping, after this file
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
        SELECT sync._shown_key(s.customer_key), syncmap.number_of(s.customer_key),
               s.policy_code, s.expires_at
        FROM gdpr._retention_status(p_now, NULL, NULL, NULL) WITH ORDINALITY AS s
        WHERE s.holds AND s.expires_at <= p_now + p_within
        ORDER BY s.expires_at, s.ordinality;
END
$$;

-- How many customers a retention run examines: the rows of the mapped customer table.
-- Example: SELECT gdpr.retention_scope();
CREATE OR REPLACE FUNCTION gdpr.retention_scope()
RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    relation pg_catalog.regclass := (SELECT m.relation FROM sync.mapped_customer() AS m);
    found    bigint;
BEGIN
    IF relation IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SY061', MESSAGE = 'no mapping is installed';
    END IF;
    EXECUTE pg_catalog.format('SELECT count(*) FROM %s', relation) INTO found;
    RETURN found;
END
$$;

-- One set-based step of a retention run: delete a table's rows of the customers p_keys, or
-- scrub their columns p_columns; {customer key: rows changed}.
CREATE OR REPLACE FUNCTION gdpr._purge_rows(
    p_action text, p_relation regclass, p_key_column name, p_column_type regtype,
    p_columns text[], p_keys text[])
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    scrub  record;
    result jsonb;
BEGIN
    IF p_action = 'delete_rows' THEN
        EXECUTE pg_catalog.format(
            'WITH gone AS (DELETE FROM %2$s AS t WHERE t.%1$I = ANY ($1::%3$s[]) '
            'RETURNING t.%1$I::text AS key) '
            'SELECT coalesce(pg_catalog.jsonb_object_agg(g.key, g.n), ''{}'') '
            'FROM (SELECT gone.key, count(*) AS n FROM gone GROUP BY 1) AS g',
            p_key_column, p_relation, p_column_type)
            INTO result USING p_keys;
    ELSE
        scrub := sync._scrub_sql(p_relation, p_key_column, p_columns);
        EXECUTE pg_catalog.format(
            'WITH changed AS (UPDATE %2$s AS t SET %4$s WHERE t.%1$I = ANY ($1::%3$s[]) '
            'AND (%5$s) RETURNING t.%1$I::text AS key) '
            'SELECT coalesce(pg_catalog.jsonb_object_agg(g.key, g.n), ''{}'') '
            'FROM (SELECT changed.key, count(*) AS n FROM changed GROUP BY 1) AS g',
            p_key_column, p_relation, p_column_type, scrub.assignments, scrub.differs)
            INTO result USING p_keys;
    END IF;
    RETURN result;
END
$$;

DROP FUNCTION IF EXISTS gdpr._shop_refusal(text, text, text, text, text, text);

-- The audit row of a customer a retention run left for the next run (outcome failed).
CREATE OR REPLACE FUNCTION gdpr._audit_refusal(
    p_actor text, p_action text, p_key text, p_reason text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- PL/pgSQL: syncmap's functions exist once a mapping is installed
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, reason,
                            customer_key)
    VALUES (p_actor, p_action, 'failed', syncmap.number_of(p_key),
            (sync._key_ids(ARRAY[p_key]))[1], pg_catalog.left(p_reason, 500),
            sync._shown_key(p_key));
END
$$;

-- The key a retention batch's p_after stands for: p_after itself for a key that may be shown
-- (sync._key_shown); for another, NULL or the key of the position 'position:<n>' a batch handed
-- out (gdpr.purge_position), which is taken (deleted) with it. SY020 for anything else.
CREATE OR REPLACE FUNCTION gdpr._position_taken(p_after text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    taken text;
BEGIN
    IF p_after IS NULL OR sync._key_shown() THEN
        RETURN p_after;
    END IF;
    -- a run broken off leaves its last position: a day is longer than any run
    DELETE FROM gdpr.purge_position AS p WHERE p.issued_at < pg_catalog.now() - interval '1 day';
    IF p_after ~ '^position:[0-9]{1,18}$' THEN
        DELETE FROM gdpr.purge_position AS p
        WHERE p.id = pg_catalog.substr(p_after, 10)::bigint
        RETURNING p.last_key INTO taken;
    END IF;
    IF taken IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SY020', MESSAGE =
            'p_after is not a position a retention batch returned (the customer key''s type '
            'is never shown: pass NULL or the last batch''s last_key)';
    END IF;
    RETURN taken;
END
$$;

-- What a retention batch returns as its last_key for the key p_key (NULL: the run is complete):
-- the key itself when it may be shown (sync._key_shown), else a new opaque position for it.
CREATE OR REPLACE FUNCTION gdpr._position_given(p_key text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    given bigint;
BEGIN
    IF p_key IS NULL OR sync._key_shown() THEN
        RETURN p_key;
    END IF;
    INSERT INTO gdpr.purge_position (last_key) VALUES (p_key) RETURNING id INTO given;
    RETURN 'position:' || given;
END
$$;

-- One batch of a retention run: the next p_limit customers with key > p_after (keys as text,
-- compared and ordered as the key's type; NULL: from the first) are examined,
-- gdpr.retention_plan carried out for them, and one audit row written per customer changed
-- (actor p_actor, action gdpr.retention_purge, counts per table). Returns {"customers":
-- changed, "scanned": examined, "last_key": the last key examined (text) or null, "counts":
-- {table: rows}, "refused": refusals by a trigger or constraint of the shop's, of a customer's
-- anonymisation or of a customer's rows in a table (each audited customer.anonymized or
-- gdpr.retention_purge / failed, the customer left for the next run)}; last_key
-- null means the run is complete. Call it again with p_after = last_key (each batch its own
-- transaction): the work per batch is bounded by p_limit, whatever the size of the database.
-- For a key the engine never shows (text, bytea: sync._key_shown) last_key is an opaque
-- position ('position:<n>', gdpr.purge_position), the only p_after such a key's batches take
-- besides NULL: the controller calls this and must not learn the shop's keys (SY020 for a
-- position no batch issued or one used already).
-- Example: SELECT gdpr.purge_batch(now(), NULL, 500);
CREATE OR REPLACE FUNCTION gdpr.purge_batch(
    p_now timestamptz,
    p_after text,
    p_limit integer DEFAULT 500,
    p_actor text DEFAULT 'retention')
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped   record;
    step     record;
    result   jsonb;
    done     jsonb := '{}';
    totals   jsonb := '{}';
    examined text[];
    through  text;
    batch    jsonb;
    refused  integer := 0;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    context     text;
    why         text;
    one         text;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_job_time(p_now);
    PERFORM gdpr._check_retention_facts();
    -- the compiled moves, current before any customer is locked (sql/57_moves_compile.sql)
    PERFORM sync._moves_current();
    p_after := gdpr._position_taken(p_after);
    PERFORM gdpr._checked_page_key(p_after);
    SELECT * INTO mapped FROM sync.mapped_customer();
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.array_agg(w.k::text ORDER BY w.k) FROM (SELECT c.%1$I AS k '
        'FROM %2$s AS c WHERE $1::text IS NULL OR c.%1$I > $1::%3$s ORDER BY c.%1$I '
        'LIMIT $2) AS w', mapped.key_column, mapped.relation, mapped.key_type)
        INTO examined USING p_after, p_limit;
    IF examined IS NULL THEN
        RETURN '{"customers": 0, "scanned": 0, "last_key": null, "counts": {}}'::jsonb;
    END IF;
    through := examined[pg_catalog.cardinality(examined)];
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(p) ORDER BY p.ordinality), '[]')
    INTO batch
    FROM gdpr.retention_plan(p_now, p_after, through) WITH ORDINALITY AS p;
    -- lock the batch's customers in key order, as merges and anonymisations do
    PERFORM syncmap.lock_customers(ARRAY(
        SELECT DISTINCT b.customer_key
        FROM pg_catalog.jsonb_to_recordset(batch) AS b (customer_key text)));
    PERFORM gdpr._set_consent_source('retention');

    -- whole customers: the engine's anonymisation (tombstone, outbound event)
    FOR step IN
        SELECT b.customer_key
        FROM pg_catalog.jsonb_to_recordset(batch)
                 AS b (customer_key text, action text, ordinality bigint)
        WHERE b.action = 'anonymise' ORDER BY b.ordinality
    LOOP
        BEGIN
            result := sync.anonymise_from_backoffice_key(step.customer_key, 'RETENTION',
                                                         p_actor);
            done := done || pg_catalog.jsonb_build_object(step.customer_key,
                                                          coalesce(result -> 'counts', '{}'));
        EXCEPTION WHEN OTHERS THEN
            -- a trigger or constraint of the shop's refusing this one customer: it stays for
            -- the next run, audited by SQLSTATE and names; the others go on. A transient
            -- error and the engine's own refusals (a column without a PII strategy, say)
            -- fail the run as before.
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                    schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                                    constraint_ = CONSTRAINT_NAME,
                                    context = PG_EXCEPTION_CONTEXT;
            why := sync._shop_refusal(state, message, schema_name, table_name, constraint_,
                                      context);
            IF why IS NULL THEN
                RAISE;
            END IF;
            refused := refused + 1;
            PERFORM gdpr._audit_refusal(p_actor, 'customer.anonymized', step.customer_key,
                                        'retention refused: ' || why);
        END;
    END LOOP;

    -- the rest set-based, one statement per table, column set and action
    FOR step IN
        SELECT b.table_name, l.relation, l.key_column, l.column_type, b.columns, b.action,
               pg_catalog.array_agg(b.customer_key) AS keys
        FROM pg_catalog.jsonb_to_recordset(batch) AS b (
                customer_key text, table_name text, columns text[], action text)
        JOIN gdpr._category_links() AS l
            ON l.table_schema || '.' || l.table_name = b.table_name
        WHERE b.action <> 'anonymise'
        GROUP BY b.table_name, l.relation, l.key_column, l.column_type, b.columns, b.action
    LOOP
        BEGIN
            result := gdpr._purge_rows(step.action, step.relation, step.key_column,
                                       step.column_type, step.columns, step.keys);
        EXCEPTION WHEN OTHERS THEN
            -- a trigger or constraint of the shop's refusing a row: the step again customer by
            -- customer, each in its own subtransaction; the customers refused stay for the
            -- next run, audited, the others go on
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                    schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                                    constraint_ = CONSTRAINT_NAME,
                                    context = PG_EXCEPTION_CONTEXT;
            IF sync._shop_refusal(state, message, schema_name, table_name, constraint_,
                                  context) IS NULL THEN
                RAISE;
            END IF;
            result := '{}';
            FOREACH one IN ARRAY step.keys LOOP
                BEGIN
                    result := result || gdpr._purge_rows(step.action, step.relation,
                                                         step.key_column, step.column_type,
                                                         step.columns, ARRAY[one]);
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                            schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                                            constraint_ = CONSTRAINT_NAME,
                                            context = PG_EXCEPTION_CONTEXT;
                    why := sync._shop_refusal(state, message, schema_name, table_name,
                                              constraint_, context);
                    IF why IS NULL THEN
                        RAISE;
                    END IF;
                    refused := refused + 1;
                    PERFORM gdpr._audit_refusal(
                        p_actor, 'gdpr.retention_purge', one,
                        pg_catalog.format('retention refused on %s: %s', step.table_name, why));
                END;
            END LOOP;
        END;
        SELECT done || coalesce(pg_catalog.jsonb_object_agg(
                   r.key, coalesce(done -> r.key, '{}')
                          || pg_catalog.jsonb_build_object(step.table_name, r.value)), '{}')
        INTO done
        FROM pg_catalog.jsonb_each(result) AS r;
    END LOOP;
    PERFORM gdpr._set_consent_source(NULL);

    -- one audit row per customer changed, in key order: its number (NULL for a customer only
    -- the shop knows), its key (and id, for an integer key), counts per table and the releasing
    -- policies;
    -- set-based, as gdpr._audit writes one row
    EXECUTE pg_catalog.format(
        'INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, '
        '                        customer_key, counts, reason) '
        'SELECT $1, ''gdpr.retention_purge'', ''applied'', m.customer_number, %2$s, '
        '       sync._shown_key(d.key), '
        '       d.value, '
        '       ''released by policies: '' || ('
        '           SELECT pg_catalog.string_agg(DISTINCT code, '', '' ORDER BY code) '
        '           FROM pg_catalog.jsonb_to_recordset($3) AS b (customer_key text, '
        '                                                       policies text[]) '
        '           CROSS JOIN LATERAL pg_catalog.unnest(b.policies) AS code '
        '           WHERE b.customer_key = d.key) '
        'FROM pg_catalog.jsonb_each($2) AS d '
        'LEFT JOIN syncmap.customer_map AS m ON m.customer_key = d.key::%1$s '
        'ORDER BY d.key::%1$s',
        mapped.key_type,
        CASE WHEN sync._integer_key() THEN 'd.key::bigint' ELSE 'NULL::bigint' END)
        USING p_actor, done, batch;

    SELECT coalesce(pg_catalog.jsonb_object_agg(t.key, t.n), '{}') INTO totals
    FROM (SELECT e.key, sum(e.value::bigint) AS n
          FROM pg_catalog.jsonb_each(done) AS d, pg_catalog.jsonb_each_text(d.value) AS e
          GROUP BY e.key) AS t;
    RETURN pg_catalog.jsonb_build_object(
        'customers', (SELECT count(*) FROM pg_catalog.jsonb_object_keys(done)),
        'scanned', pg_catalog.cardinality(examined), 'last_key', gdpr._position_given(through),
        'counts', totals, 'refused', refused);
END
$$;

-- The same for an integer customer key, by bigint ids (id > p_after_id); the result has
-- "last_id" (the last key as a bigint) besides "last_key".
-- Example: SELECT gdpr.purge_batch(now(), 0, 500);
CREATE OR REPLACE FUNCTION gdpr.purge_batch(
    p_now timestamptz DEFAULT now(),
    p_after_id bigint DEFAULT 0,
    p_limit integer DEFAULT 500,
    p_actor text DEFAULT 'retention')
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result jsonb;
BEGIN
    PERFORM sync._integer_keys_only('gdpr.purge_batch');
    result := gdpr.purge_batch(p_now, p_after_id::text, p_limit, p_actor);
    RETURN result || pg_catalog.jsonb_build_object('last_id',
                                                   (result ->> 'last_key')::bigint);
END
$$;
