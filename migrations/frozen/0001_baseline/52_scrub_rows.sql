-- Scrubbing and deleting a local customer's rows, the building blocks of anonymise and delete
-- (sql/55_anonymise.sql) and of retention (sql/85_gdpr_retention.sql): personal data in
-- shop.customer and in every customer-linked table is overwritten per the PII registry
-- (sql/40_registry.sql), the rows of delete_rows tables go, transactions (orders, amounts,
-- dates) stay. A delete of a customer with bookkeeping rows (orders) is planned and carried out
-- as an anonymisation; without, the customer and all its linked rows are removed. Private: no
-- decisions (tombstones, refusals, audit) here. SQLSTATE: SY022 PII registry incomplete
-- (refused: fails closed). Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Building blocks (private)
-- ---------------------------------------------------------------------------------------------

-- The SET list that scrubs the given columns (all classified ones when NULL) of a table per
-- their strategies (alias `t`), and the predicate "some of them differ from their scrubbed
-- value"; both NULL when no such column changes. A placeholder's {id} is the row's
-- single-column primary key, else the customer id in p_key_column.
CREATE OR REPLACE FUNCTION sync._scrub_sql(
    p_relation regclass, p_key_column name, p_columns text[],
    OUT assignments text, OUT differs text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
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

-- The SET list that scrubs one table per its column strategies (alias `t`), or NULL when no
-- column of it changes.
CREATE OR REPLACE FUNCTION sync._scrub_assignments(p_relation regclass, p_fk_column name)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.assignments FROM sync._scrub_sql(p_relation, p_fk_column, NULL) AS s
$$;

-- What anonymising (p_delete false) or deleting (p_delete true) the local customer p_id does
-- per table: (table, action, rows). Actions: scrub, delete_rows, delete (the customer row).
-- A delete of a customer with bookkeeping rows is planned as an anonymisation.
CREATE OR REPLACE FUNCTION sync._erasure_plan(p_id bigint, p_delete boolean)
RETURNS TABLE (table_name text, action text, rows bigint)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link   record;
    remove boolean := p_delete AND NOT sync._has_bookkeeping(p_id);
BEGIN
    FOR link IN
        SELECT l.*, coalesce(r.action, 'scrub') AS declared
        FROM sync.customer_links() AS l
        LEFT JOIN sync.anonymise_rule AS r
            ON r.table_schema = l.table_schema AND r.table_name = l.table_name
        WHERE l.relation <> 'shop.customer'::pg_catalog.regclass
    LOOP
        action := CASE WHEN remove THEN 'delete_rows' ELSE link.declared END;
        CONTINUE WHEN action = 'scrub'
                      AND sync._scrub_assignments(link.relation, link.fk_column) IS NULL;
        EXECUTE pg_catalog.format('SELECT count(*) FROM %s AS t WHERE t.%I = $1',
                                  link.relation, link.fk_column)
            INTO rows USING p_id;
        CONTINUE WHEN rows = 0;
        table_name := link.qualified_name;
        RETURN NEXT;
    END LOOP;
    table_name := 'shop.customer';
    action := CASE WHEN remove THEN 'delete' ELSE 'scrub' END;
    rows := 1;
    RETURN NEXT;
END
$$;

-- Whether the customer has rows in a bookkeeping table (orders): then a delete anonymises.
CREATE OR REPLACE FUNCTION sync._has_bookkeeping(p_id bigint)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link  record;
    found boolean;
BEGIN
    FOR link IN
        SELECT l.*
        FROM sync.customer_links() AS l
        JOIN sync.anonymise_rule AS r
            ON r.table_schema = l.table_schema AND r.table_name = l.table_name
        WHERE r.bookkeeping
    LOOP
        EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %s AS t WHERE t.%I = $1)',
                                  link.relation, link.fk_column)
            INTO found USING p_id;
        IF found THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;

-- Carry out sync._erasure_plan for the local customer p_id; returns {table: rows}.
CREATE OR REPLACE FUNCTION sync._erase_rows(p_id bigint, p_delete boolean)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    step    record;
    link    record;
    changed   bigint;
    rows_done bigint;
    counts    jsonb := '{}';
BEGIN
    IF EXISTS (SELECT FROM sync.unclassified_columns())
       AND NOT (p_delete AND NOT sync._has_bookkeeping(p_id)) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY022',
            MESSAGE = pg_catalog.format(
                'anonymisation refused: %s column(s) have no PII strategy',
                (SELECT count(*) FROM sync.unclassified_columns())),
            HINT = 'run the coverage check (SELECT * FROM sync.unclassified_columns())';
    END IF;
    FOR step IN SELECT * FROM sync._erasure_plan(p_id, p_delete) LOOP
        IF step.table_name = 'shop.customer' THEN
            IF step.action = 'delete' THEN
                DELETE FROM shop.customer AS c WHERE c.id = p_id;
            ELSE
                EXECUTE pg_catalog.format(
                    'UPDATE shop.customer AS t SET %s WHERE t.id = $1',
                    sync._scrub_assignments('shop.customer'::pg_catalog.regclass, 'id'))
                    USING p_id;
            END IF;
            GET DIAGNOSTICS changed = ROW_COUNT;
        ELSE
            changed := 0;
            FOR link IN SELECT * FROM sync.customer_links() AS l
                        WHERE l.qualified_name = step.table_name LOOP
                IF step.action = 'delete_rows' THEN
                    EXECUTE pg_catalog.format('DELETE FROM %s AS t WHERE t.%I = $1',
                                              link.relation, link.fk_column)
                        USING p_id;
                ELSE
                    EXECUTE pg_catalog.format(
                        'UPDATE %s AS t SET %s WHERE t.%I = $1', link.relation,
                        sync._scrub_assignments(link.relation, link.fk_column), link.fk_column)
                        USING p_id;
                END IF;
                GET DIAGNOSTICS rows_done = ROW_COUNT;
                changed := changed + rows_done;
            END LOOP;
        END IF;
        counts := counts || pg_catalog.jsonb_build_object(step.table_name, changed);
    END LOOP;
    RETURN counts;
END
$$;
