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

-- The SET list that scrubs the given columns (all classified ones when NULL) of a table per
-- their strategies (alias `t`), and the predicate "some of them differ from their scrubbed
-- value"; both NULL when no such column changes. Mirrors sync._scrub_assignments.
CREATE OR REPLACE FUNCTION gdpr._scrub_sql(
    p_relation regclass, p_key_column name, p_columns text[],
    OUT assignments text, OUT differs text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
    WITH target AS (
        SELECT a.attname, a.attnum,
               CASE p.strategy
                   WHEN 'null' THEN 'NULL'
                   WHEN 'fixed' THEN pg_catalog.format('%L::%s', p.value, ty.name)
                   WHEN 'placeholder' THEN pg_catalog.format(
                       'pg_catalog.replace(%L, ''{id}'', t.%I::text)::%s',
                       p.value, coalesce(pk.attname, p_key_column), ty.name)
                   WHEN 'year' THEN pg_catalog.format(
                       'pg_catalog.date_trunc(''year'', t.%I)::%s', a.attname, ty.name)
               END AS expression
        FROM pg_catalog.pg_class AS r
        JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
        JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
        JOIN sync.pii_column AS p
            ON p.table_schema = n.nspname AND p.table_name = r.relname
           AND p.column_name = a.attname
        CROSS JOIN LATERAL (SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) AS name) AS ty
        LEFT JOIN LATERAL (
            SELECT k.attname
            FROM pg_catalog.pg_index AS x
            JOIN pg_catalog.pg_attribute AS k
                ON k.attrelid = x.indrelid AND k.attnum = x.indkey[0]
            WHERE x.indrelid = r.oid AND x.indisprimary AND x.indnkeyatts = 1
        ) AS pk ON true
        WHERE r.oid = p_relation
          AND p.strategy IN ('null', 'fixed', 'placeholder', 'year')
          AND (p_columns IS NULL OR a.attname::text = ANY (p_columns))
    )
    SELECT pg_catalog.string_agg(pg_catalog.format('%I = %s', t.attname, t.expression), ', '
                                 ORDER BY t.attnum),
           pg_catalog.string_agg(pg_catalog.format('t.%I IS DISTINCT FROM %s', t.attname,
                                                   t.expression), ' OR ' ORDER BY t.attnum)
    FROM target AS t
$$;

-- The tables of a category with the column that holds the customer id: shop.customer (id) and
-- every foreign key of a customer-linked table.
CREATE OR REPLACE FUNCTION gdpr._category_links()
RETURNS TABLE (table_schema name, table_name name, relation regclass, key_column name)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
    SELECT 'shop'::name, 'customer'::name, 'shop.customer'::pg_catalog.regclass, 'id'::name
    UNION ALL
    SELECT l.table_schema, l.table_name, l.relation, l.fk_column FROM sync.customer_links() AS l
$$;

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Per customer and active policy the customer is under: whether the policy holds the
-- customer's data at p_now, when that ends (NULL: no limit), and why it no longer holds.
-- Example: SELECT * FROM gdpr.retention_status(now()) WHERE NOT holds;
CREATE OR REPLACE FUNCTION gdpr.retention_status(p_now timestamptz DEFAULT now())
RETURNS TABLE (customer_id bigint, policy_code text, holds boolean, expires_at timestamptz,
               reason text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
    WITH last_order AS (
        SELECT o.customer_id, max(o.placed_at) AS placed_at
        FROM shop.orders AS o
        GROUP BY o.customer_id
    ),
    under AS (
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
                            WHERE g.customer_id = c.id AND g.policy_id = p.id))
        LEFT JOIN last_order AS lo ON lo.customer_id = c.id
        LEFT JOIN gdpr.current_consent AS cc
            ON cc.customer_id = c.id AND cc.policy_id = p.id
        WHERE p.state = 'active'
    )
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
    FROM under AS u
$$;

-- What a retention run at p_now would do, per customer and table: the released columns (NULL:
-- the whole table), the action (anonymise: the whole customer; delete_rows; scrub), the
-- policies that release it and why. Only customers with id > p_after_id, at most p_limit of
-- them (those with something left to change), in id order.
-- Example: SELECT * FROM gdpr.retention_plan(now());
CREATE OR REPLACE FUNCTION gdpr.retention_plan(
    p_now timestamptz DEFAULT now(), p_after_id bigint DEFAULT 0, p_limit integer DEFAULT NULL)
RETURNS TABLE (customer_id bigint, table_name text, columns text[], action text,
               policies text[], reasons text[])
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
    -- the steps as a JSON array (no temporary table: the plan stays a plain function)
    steps   jsonb;
    kept    jsonb := '[]';
    step    record;
    scrub   record;
    pending bigint[];
BEGIN
    WITH status AS (
        SELECT * FROM gdpr.retention_status(p_now) AS s WHERE s.customer_id > p_after_id
    ),
    covered AS (
        SELECT s.customer_id, s.policy_code, s.holds, s.reason, c.table_schema, c.table_name,
               c.columns
        FROM status AS s
        JOIN gdpr.policy AS p ON p.code = s.policy_code
        JOIN gdpr.policy_category AS c ON c.policy_id = p.id
    ),
    per_table AS (
        SELECT r.customer_id, r.table_schema, r.table_name,
               pg_catalog.array_agg(DISTINCT r.policy_code ORDER BY r.policy_code) AS policies,
               pg_catalog.array_agg(DISTINCT r.policy_code || ': ' || r.reason) AS reasons,
               pg_catalog.bool_or(r.columns IS NULL) AS whole,
               ARRAY(SELECT DISTINCT x FROM covered AS r2, pg_catalog.unnest(r2.columns) AS x
                     WHERE r2.customer_id = r.customer_id AND NOT r2.holds
                       AND r2.table_schema = r.table_schema AND r2.table_name = r.table_name
                     ORDER BY 1) AS released_columns
        FROM covered AS r
        WHERE NOT r.holds
        GROUP BY r.customer_id, r.table_schema, r.table_name
    ),
    held AS (
        SELECT h.customer_id, h.table_schema, h.table_name,
               pg_catalog.bool_or(h.columns IS NULL) AS whole,
               ARRAY(SELECT DISTINCT x FROM covered AS h2, pg_catalog.unnest(h2.columns) AS x
                     WHERE h2.customer_id = h.customer_id AND h2.holds
                       AND h2.table_schema = h.table_schema AND h2.table_name = h.table_name
                     ) AS columns
        FROM covered AS h
        WHERE h.holds
        GROUP BY h.customer_id, h.table_schema, h.table_name
    ),
    customers AS (
        SELECT DISTINCT t.customer_id FROM per_table AS t ORDER BY 1
    ),
    decided AS (
        SELECT t.customer_id, t.table_schema, t.table_name, t.policies, t.reasons,
               CASE
                   WHEN NOT t.whole THEN
                       ARRAY(SELECT x FROM pg_catalog.unnest(t.released_columns) AS x
                             EXCEPT SELECT y FROM pg_catalog.unnest(h.columns) AS y ORDER BY 1)
                   WHEN h.customer_id IS NOT NULL THEN
                       ARRAY(SELECT p.column_name FROM sync.pii_column AS p
                             WHERE p.table_schema = t.table_schema
                               AND p.table_name = t.table_name
                             EXCEPT SELECT y FROM pg_catalog.unnest(h.columns) AS y ORDER BY 1)
               END AS columns,
               CASE
                   WHEN NOT t.whole OR h.customer_id IS NOT NULL THEN 'scrub'
                   WHEN t.table_schema = 'shop' AND t.table_name = 'customer'
                        AND NOT EXISTS (SELECT FROM held AS any_held
                                        WHERE any_held.customer_id = t.customer_id)
                       THEN 'anonymise'
                   ELSE coalesce(
                       (SELECT r.action FROM sync.anonymise_rule AS r
                        WHERE r.table_schema = t.table_schema AND r.table_name = t.table_name),
                       'scrub')
               END AS action
        FROM per_table AS t
        LEFT JOIN held AS h
            ON h.customer_id = t.customer_id AND h.table_schema = t.table_schema
           AND h.table_name = t.table_name
        WHERE NOT coalesce(h.whole, false)
    )
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'customer_id', d.customer_id,
               'table_name', d.table_schema || '.' || d.table_name,
               'relation', l.relation::pg_catalog.oid, 'key_column', l.key_column,
               'columns', d.columns, 'action', d.action, 'policies', d.policies,
               'reasons', d.reasons)), '[]')
    INTO steps
    FROM decided AS d
    JOIN gdpr._category_links() AS l
        ON l.table_schema = d.table_schema AND l.table_name = d.table_name
    WHERE d.columns IS NULL OR pg_catalog.cardinality(d.columns) > 0;

    -- a customer being anonymised needs nothing else
    SELECT coalesce(pg_catalog.jsonb_agg(s.value), '[]') INTO steps
    FROM pg_catalog.jsonb_array_elements(steps) AS s
    WHERE s.value ->> 'action' = 'anonymise'
       OR NOT EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(steps) AS a
                      WHERE a.value ->> 'action' = 'anonymise'
                        AND a.value -> 'customer_id' = s.value -> 'customer_id');

    -- keep only what still differs from its erased form (idempotent, resumable)
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
            scrub := gdpr._scrub_sql(step.relation, step.key_column,
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
        WHERE (s.value ->> 'relation')::pg_catalog.oid = step.relation::pg_catalog.oid
          AND s.value ->> 'key_column' = step.key_column::text
          AND s.value -> 'columns' = step.columns_json
          AND s.value ->> 'action' = step.action
          AND (s.value ->> 'customer_id')::bigint = ANY (coalesce(pending, '{}'));
    END LOOP;

    RETURN QUERY
        WITH planned AS (
            SELECT x.customer_id, x.table_name, x.columns, x.action, x.policies, x.reasons
            FROM pg_catalog.jsonb_to_recordset(kept) AS x (
                customer_id bigint, table_name text, columns text[], action text,
                policies text[], reasons text[])
        )
        SELECT p.* FROM planned AS p
        WHERE p.customer_id IN (SELECT DISTINCT q.customer_id FROM planned AS q
                                ORDER BY 1 LIMIT p_limit)
        ORDER BY p.customer_id, p.table_name;
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
SECURITY INVOKER
SET search_path = ''
AS $$
    SELECT s.customer_id, c.customer_number, s.policy_code, s.expires_at
    FROM gdpr.retention_status(p_now) AS s
    JOIN shop.customer AS c ON c.id = s.customer_id
    WHERE s.holds AND s.expires_at <= p_now + p_within
    ORDER BY s.expires_at, s.customer_id, s.policy_code
$$;

-- One batch of a retention run: carries out gdpr.retention_plan for at most p_limit customers
-- with id > p_after_id, and writes one audit row per customer (actor p_actor, action
-- gdpr.retention_purge, counts per table). Returns {"customers": n, "last_id": id or null,
-- "counts": {table: rows}}; last_id null means the run is complete. Call it again with
-- p_after_id = last_id (each batch its own transaction).
-- Example: SELECT gdpr.purge_batch(now(), 0, 500);
CREATE OR REPLACE FUNCTION gdpr.purge_batch(
    p_now timestamptz DEFAULT now(),
    p_after_id bigint DEFAULT 0,
    p_limit integer DEFAULT 500,
    p_actor text DEFAULT 'retention')
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
    step     record;
    scrub    record;
    result   jsonb;
    done     jsonb := '{}';
    totals   jsonb := '{}';
    last_id  bigint;
    batch    jsonb;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(p)), '[]'),
           max(p.customer_id)
    INTO batch, last_id
    FROM gdpr.retention_plan(p_now, p_after_id, p_limit) AS p;
    IF last_id IS NULL THEN
        RETURN '{"customers": 0, "last_id": null, "counts": {}}'::jsonb;
    END IF;
    -- lock the batch's customers in id order, as merges and anonymisations do
    PERFORM FROM shop.customer AS c
    WHERE c.id IN (SELECT b.customer_id FROM pg_catalog.jsonb_to_recordset(batch) AS b (
                customer_id bigint, table_name text, columns text[], action text,
                policies text[]))
    ORDER BY c.id
    FOR UPDATE;
    PERFORM pg_catalog.set_config('gdpr.consent_source', 'retention', true);

    -- whole customers: the engine's anonymisation (tombstone, outbound event)
    FOR step IN
        SELECT b.customer_id FROM pg_catalog.jsonb_to_recordset(batch) AS b (
                customer_id bigint, table_name text, columns text[], action text,
                policies text[])
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
                customer_id bigint, table_name text, columns text[], action text,
                policies text[])
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
            scrub := gdpr._scrub_sql(step.relation, step.key_column, step.columns);
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
           'released by policies: ' || (
               SELECT pg_catalog.string_agg(DISTINCT x, ', ')
               FROM pg_catalog.jsonb_to_recordset(batch) AS b (
                customer_id bigint, table_name text, columns text[], action text,
                policies text[]), pg_catalog.unnest(b.policies) AS x
               WHERE b.customer_id = c.id)
    FROM pg_catalog.jsonb_each(done) AS d
    JOIN shop.customer AS c ON c.id = d.key::bigint
    ORDER BY c.id;

    SELECT coalesce(pg_catalog.jsonb_object_agg(t.key, t.n), '{}') INTO totals
    FROM (SELECT e.key, sum(e.value::bigint) AS n
          FROM pg_catalog.jsonb_each(done) AS d, pg_catalog.jsonb_each_text(d.value) AS e
          GROUP BY e.key) AS t;
    RETURN pg_catalog.jsonb_build_object(
        'customers', (SELECT count(*) FROM pg_catalog.jsonb_object_keys(done)),
        'last_id', last_id, 'counts', totals);
END
$$;
