-- Retention: data a policy no longer holds goes. Per customer and active policy:
--   under the policy  membership all: every customer; customer_group: that group; consent: a
--                     customer with any consent decision for it
--   holds             under it, consent granted (consent policies), and the retention period
--                     not over: anchor + retention > now, the anchor being created_at,
--                     last_login_at (else created_at) or the last order (else created_at)
-- A category (table, or some of its columns) of a customer goes when a policy the customer is
-- under covers it and does not hold it, and no policy that holds it covers the same data.
-- What going means comes from the PII registry: a whole shop.customer not held by any policy
-- is anonymised (sync.anonymise_from_backoffice: tombstone, outbound event for tritonX);
-- otherwise a table's rows are deleted (anonymise rule delete_rows) or scrubbed per the column
-- strategies, only the released columns when the category names columns.
-- Only rows that still differ from their erased form count, so a run is idempotent and a
-- broken-off run resumes where it stopped. Time is a parameter (p_now), never read.
-- Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Building blocks (private)
-- ---------------------------------------------------------------------------------------------

-- The tables of a category with the column that holds the customer id: shop.customer (id) and
-- every foreign key of a customer-linked table.
CREATE OR REPLACE FUNCTION gdpr._category_links()
RETURNS TABLE (table_schema name, table_name name, relation regclass, key_column name)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'shop'::name, 'customer'::name, 'shop.customer'::pg_catalog.regclass, 'id'::name
    UNION ALL
    SELECT l.table_schema, l.table_name, l.relation, l.fk_column FROM sync.customer_links() AS l
$$;

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Per customer and active policy the customer is under: whether the policy holds the
-- customer's data at p_now, when that ends (NULL: no limit), and why it no longer holds. Only
-- customers with p_after_id < id <= p_through_id (NULL: no upper bound).
-- Example: SELECT * FROM gdpr.retention_status(now()) WHERE NOT holds;
CREATE OR REPLACE FUNCTION gdpr.retention_status(
    p_now timestamptz DEFAULT now(), p_after_id bigint DEFAULT 0,
    p_through_id bigint DEFAULT NULL)
RETURNS TABLE (customer_id bigint, policy_code text, holds boolean, expires_at timestamptz,
               reason text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT u.customer_id, u.code,
           (u.membership <> 'consent' OR coalesce(u.granted, false))
               AND (u.expires_at IS NULL OR u.expires_at > p_now),
           u.expires_at,
           CASE
               WHEN u.membership = 'consent' AND NOT coalesce(u.granted, false)
                   THEN 'consent withdrawn'
               WHEN u.expires_at <= p_now
                   THEN pg_catalog.format('retention over (%s + %s)', u.retention_from,
                                          u.retention)
           END
    FROM (
        SELECT c.id AS customer_id, p.code, p.membership, p.retention, p.retention_from,
               cc.granted,
               CASE p.retention_from
                   WHEN 'created' THEN c.created_at
                   WHEN 'last_activity' THEN coalesce(c.last_login_at, c.created_at)
                   ELSE coalesce(lo.placed_at, c.created_at)
               END + p.retention AS expires_at
        FROM gdpr.policy AS p
        JOIN shop.customer AS c
            ON p.membership = 'all'
            OR (p.membership = 'customer_group' AND c.customer_group = p.customer_group)
            OR (p.membership = 'consent'
                AND EXISTS (SELECT FROM gdpr.consent AS g
                            WHERE g.customer_key = c.id::text AND g.policy_id = p.id))
        -- index lookups per customer, only where the policy needs them
        LEFT JOIN LATERAL (
            SELECT pg_catalog.max(o.placed_at) AS placed_at
            FROM shop.orders AS o
            WHERE p.retention_from = 'last_order' AND o.customer_id = c.id
        ) AS lo ON true
        LEFT JOIN LATERAL (
            SELECT g.granted
            FROM gdpr.consent AS g
            WHERE p.membership = 'consent' AND g.customer_key = c.id::text
              AND g.policy_id = p.id
            ORDER BY g.decided_at DESC, g.id DESC
            LIMIT 1
        ) AS cc ON true
        WHERE p.state = 'active'
          AND c.id > p_after_id AND (p_through_id IS NULL OR c.id <= p_through_id)
    ) AS u
$$;

-- What a retention run at p_now would do, per customer and table: the released columns (NULL:
-- the whole table), the action (anonymise: the whole customer; delete_rows; scrub), the
-- policies that release it and why. Only customers with p_after_id < id <= p_through_id
-- (NULL: no upper bound) that have something left to change, in id order.
-- Example: SELECT * FROM gdpr.retention_plan(now());
CREATE OR REPLACE FUNCTION gdpr.retention_plan(
    p_now timestamptz DEFAULT now(), p_after_id bigint DEFAULT 0,
    p_through_id bigint DEFAULT NULL)
RETURNS TABLE (customer_id bigint, table_name text, columns text[], action text,
               policies text[], reasons text[])
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- the steps as a JSON array (no temporary table: the plan stays a plain function)
    steps   jsonb;
    kept    jsonb := '[]';
    step    record;
    scrub   record;
    pending bigint[];
BEGIN
    WITH covered AS (
        -- one row per customer, policy and covered table or column (NULL: the whole table)
        SELECT s.customer_id, s.policy_code, s.holds, s.reason, c.table_schema, c.table_name,
               col.name AS column_name
        FROM gdpr.retention_status(p_now, p_after_id, p_through_id) AS s
        JOIN gdpr.policy AS p ON p.code = s.policy_code
        JOIN gdpr.policy_category AS c ON c.policy_id = p.id
        LEFT JOIN LATERAL pg_catalog.unnest(c.columns) AS col (name) ON true
    ),
    per_table AS (
        SELECT v.customer_id, v.table_schema, v.table_name,
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
        GROUP BY v.customer_id, v.table_schema, v.table_name
    ),
    decided AS (
        SELECT t.customer_id, t.table_schema, t.table_name, t.policies, t.reasons,
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
                   WHEN t.table_schema = 'shop' AND t.table_name = 'customer'
                        AND NOT t.customer_held THEN 'anonymise'
                   ELSE coalesce(r.action, 'scrub')
               END AS action
        FROM (SELECT pt.*,
                     pg_catalog.bool_or(pt.held) OVER (PARTITION BY pt.customer_id)
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
                   OVER (PARTITION BY d.customer_id) AS anonymised
        FROM decided AS d
        WHERE d.columns IS NULL OR pg_catalog.cardinality(d.columns) > 0
    )
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'customer_id', f.customer_id,
               'table_name', f.table_schema || '.' || f.table_name,
               'relation', l.relation::pg_catalog.oid, 'key_column', l.key_column,
               'columns', f.columns, 'action', f.action, 'policies', f.policies,
               'reasons', f.reasons)), '[]')
    INTO steps
    FROM final AS f
    JOIN gdpr._category_links() AS l
        ON l.table_schema = f.table_schema AND l.table_name = f.table_name
    WHERE f.action = 'anonymise' OR NOT f.anonymised;

    -- keep only what still differs from its erased form (idempotent, resumable): one query
    -- per table, column set and action
    FOR step IN
        SELECT (s.value ->> 'relation')::pg_catalog.oid::pg_catalog.regclass AS relation,
               (s.value ->> 'key_column')::name AS key_column,
               s.value -> 'columns' AS columns_json,
               CASE WHEN pg_catalog.jsonb_typeof(s.value -> 'columns') = 'array'
                    THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(s.value -> 'columns'))
               END AS columns,
               s.value ->> 'action' AS action,
               pg_catalog.array_agg((s.value ->> 'customer_id')::bigint) AS ids
        FROM pg_catalog.jsonb_array_elements(steps) AS s
        GROUP BY 1, 2, 3, 4, 5
    LOOP
        IF step.action = 'delete_rows' THEN
            EXECUTE pg_catalog.format(
                'SELECT pg_catalog.array_agg(DISTINCT t.%1$I) FROM %2$s AS t '
                'WHERE t.%1$I = ANY ($1)', step.key_column, step.relation)
                INTO pending USING step.ids;
        ELSE
            scrub := sync._scrub_sql(step.relation, step.key_column,
                                     CASE WHEN step.action = 'anonymise' THEN NULL
                                          ELSE step.columns END);
            pending := '{}';
            IF scrub.differs IS NOT NULL THEN
                EXECUTE pg_catalog.format(
                    'SELECT pg_catalog.array_agg(DISTINCT t.%1$I) FROM %2$s AS t '
                    'WHERE t.%1$I = ANY ($1) AND (%3$s)', step.key_column, step.relation,
                    scrub.differs)
                    INTO pending USING step.ids;
            END IF;
            IF step.action = 'anonymise' THEN
                -- anonymised by tritonX already: the tombstone keeps it so
                pending := ARRAY(
                    SELECT c.id FROM shop.customer AS c
                    WHERE c.id = ANY (pending)
                      AND NOT EXISTS (SELECT FROM sync.tombstone AS t
                                      WHERE t.customer_number = c.customer_number));
            END IF;
        END IF;
        SELECT kept || coalesce(pg_catalog.jsonb_agg(s.value), '[]') INTO kept
        FROM pg_catalog.jsonb_array_elements(steps) AS s
        JOIN pg_catalog.unnest(pending) AS due (id)
            ON due.id = (s.value ->> 'customer_id')::bigint
        WHERE (s.value ->> 'relation')::pg_catalog.oid = step.relation::pg_catalog.oid
          AND s.value ->> 'key_column' = step.key_column::text
          AND s.value -> 'columns' = step.columns_json
          AND s.value ->> 'action' = step.action;
    END LOOP;

    RETURN QUERY
        SELECT x.customer_id, x.table_name, x.columns, x.action, x.policies, x.reasons
        FROM pg_catalog.jsonb_to_recordset(kept) AS x (
            customer_id bigint, table_name text, columns text[], action text,
            policies text[], reasons text[])
        ORDER BY x.customer_id, x.table_name;
END
$$;

-- Customers whose data a policy holds today but not after p_within: (customer, policy, when).
-- Example: SELECT * FROM gdpr.retention_warnings(now(), '30 days');
CREATE OR REPLACE FUNCTION gdpr.retention_warnings(
    p_now timestamptz DEFAULT now(), p_within interval DEFAULT '30 days')
RETURNS TABLE (customer_id bigint, customer_number text, policy_code text,
               expires_at timestamptz)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.customer_id, c.customer_number, s.policy_code, s.expires_at
    FROM gdpr.retention_status(p_now) AS s
    JOIN shop.customer AS c ON c.id = s.customer_id
    WHERE s.holds AND s.expires_at <= p_now + p_within
    ORDER BY s.expires_at, s.customer_id, s.policy_code
$$;

-- One batch of a retention run: the next p_limit customers with id > p_after_id (in id
-- order) are examined, gdpr.retention_plan carried out for them, and one audit row written per
-- customer changed (actor p_actor, action gdpr.retention_purge, counts per table). Returns
-- {"customers": changed, "scanned": examined, "last_id": the last id examined or null,
-- "counts": {table: rows}}; last_id null means the run is complete. Call it again with
-- p_after_id = last_id (each batch its own transaction): the work per batch is bounded by
-- p_limit, whatever the size of the database.
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
    step       record;
    scrub      record;
    result     jsonb;
    done       jsonb := '{}';
    totals     jsonb := '{}';
    through_id bigint;
    scanned    bigint;
    batch      jsonb;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_job_time(p_now);
    SELECT pg_catalog.max(w.id), count(*) INTO through_id, scanned
    FROM (SELECT c.id FROM shop.customer AS c WHERE c.id > p_after_id
          ORDER BY c.id LIMIT p_limit) AS w;
    IF through_id IS NULL THEN
        RETURN '{"customers": 0, "scanned": 0, "last_id": null, "counts": {}}'::jsonb;
    END IF;
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(p)), '[]') INTO batch
    FROM gdpr.retention_plan(p_now, p_after_id, through_id) AS p;
    -- lock the batch's customers in id order, as merges and anonymisations do
    PERFORM FROM shop.customer AS c
    WHERE c.id IN (SELECT b.customer_id
                   FROM pg_catalog.jsonb_to_recordset(batch) AS b (customer_id bigint))
    ORDER BY c.id
    FOR UPDATE;
    PERFORM pg_catalog.set_config('gdpr.consent_source', 'retention', true);

    -- whole customers: the engine's anonymisation (tombstone, outbound event)
    FOR step IN
        SELECT b.customer_id
        FROM pg_catalog.jsonb_to_recordset(batch) AS b (customer_id bigint, action text)
        WHERE b.action = 'anonymise' ORDER BY b.customer_id
    LOOP
        result := sync.anonymise_from_backoffice(step.customer_id, 'RETENTION', p_actor);
        done := done || pg_catalog.jsonb_build_object(step.customer_id::text,
                                                      coalesce(result -> 'counts', '{}'));
    END LOOP;

    -- the rest set-based, one statement per table, column set and action
    FOR step IN
        SELECT b.table_name, l.relation, l.key_column, b.columns, b.action,
               pg_catalog.array_agg(b.customer_id) AS ids
        FROM pg_catalog.jsonb_to_recordset(batch) AS b (
                customer_id bigint, table_name text, columns text[], action text)
        JOIN gdpr._category_links() AS l
            ON l.table_schema || '.' || l.table_name = b.table_name
        WHERE b.action <> 'anonymise'
        GROUP BY b.table_name, l.relation, l.key_column, b.columns, b.action
    LOOP
        IF step.action = 'delete_rows' THEN
            EXECUTE pg_catalog.format(
                'WITH gone AS (DELETE FROM %2$s AS t WHERE t.%1$I = ANY ($1) RETURNING t.%1$I) '
                'SELECT coalesce(pg_catalog.jsonb_object_agg(g.id::text, g.n), ''{}'') '
                'FROM (SELECT gone.%1$I AS id, count(*) AS n FROM gone GROUP BY 1) AS g',
                step.key_column, step.relation)
                INTO result USING step.ids;
        ELSE
            scrub := sync._scrub_sql(step.relation, step.key_column, step.columns);
            EXECUTE pg_catalog.format(
                'WITH changed AS (UPDATE %2$s AS t SET %3$s WHERE t.%1$I = ANY ($1) AND (%4$s) '
                'RETURNING t.%1$I) '
                'SELECT coalesce(pg_catalog.jsonb_object_agg(g.id::text, g.n), ''{}'') '
                'FROM (SELECT changed.%1$I AS id, count(*) AS n FROM changed GROUP BY 1) AS g',
                step.key_column, step.relation, scrub.assignments, scrub.differs)
                INTO result USING step.ids;
        END IF;
        SELECT done || coalesce(pg_catalog.jsonb_object_agg(
                   r.key, coalesce(done -> r.key, '{}')
                          || pg_catalog.jsonb_build_object(step.table_name, r.value)), '{}')
        INTO done
        FROM pg_catalog.jsonb_each(result) AS r;
    END LOOP;
    PERFORM pg_catalog.set_config('gdpr.consent_source', '', true);

    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts, reason)
    SELECT p_actor, 'gdpr.retention_purge', 'applied', c.customer_number, c.id, d.value,
           'released by policies: ' || released.codes
    FROM pg_catalog.jsonb_each(done) AS d
    JOIN shop.customer AS c ON c.id = d.key::bigint
    JOIN (SELECT b.customer_id,
                 pg_catalog.string_agg(DISTINCT code, ', ' ORDER BY code) AS codes
          FROM pg_catalog.jsonb_to_recordset(batch) AS b (customer_id bigint, policies text[])
          CROSS JOIN LATERAL pg_catalog.unnest(b.policies) AS code
          GROUP BY b.customer_id) AS released ON released.customer_id = c.id
    ORDER BY c.id;

    SELECT coalesce(pg_catalog.jsonb_object_agg(t.key, t.n), '{}') INTO totals
    FROM (SELECT e.key, sum(e.value::bigint) AS n
          FROM pg_catalog.jsonb_each(done) AS d, pg_catalog.jsonb_each_text(d.value) AS e
          GROUP BY e.key) AS t;
    RETURN pg_catalog.jsonb_build_object(
        'customers', (SELECT count(*) FROM pg_catalog.jsonb_object_keys(done)),
        'scanned', scanned, 'last_id', through_id, 'counts', totals);
END
$$;
