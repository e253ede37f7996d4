-- Subject access ("registerutdrag") and rectification. gdpr.subject_data returns everything
-- the database holds about one customer, found the way the engine finds customer data: the
-- customer row, every customer-linked table (foreign keys to shop.customer), tables one
-- foreign key further (order_line via orders), the engine's records of the customer's numbers
-- (redirects, inbox snapshots, outbox, audit), the consents and the policies the customer is
-- under. Nothing is selected by value, only by key, so nothing of anyone else comes along.
-- gdpr.rectify corrects webshop-owned fields; tritonX-owned ones are corrected in tritonX (a
-- snapshot would overwrite a local correction). Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Every row held about customer p_customer_id as (source, row_data): source is a table
-- ('shop.orders'), or gdpr.policy for the policies the customer is under (with the retention
-- status). Raises SY020 for an unknown id.
-- Example: SELECT source, row_data FROM gdpr.subject_data(42);
CREATE OR REPLACE FUNCTION gdpr.subject_data(p_customer_id bigint, p_now timestamptz DEFAULT now())
RETURNS TABLE (source text, row_data jsonb)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link    record;
    child   record;
    numbers text[];
BEGIN
    SELECT ARRAY(SELECT c.customer_number WHERE c.customer_number IS NOT NULL
                 UNION ALL
                 SELECT r.old_number FROM sync.redirect AS r
                 WHERE r.survivor_number = c.customer_number)
    INTO numbers
    FROM shop.customer AS c WHERE c.id = p_customer_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SY020',
            MESSAGE = pg_catalog.format('customer id %s does not exist', p_customer_id);
    END IF;

    RETURN QUERY SELECT 'shop.customer'::text, pg_catalog.to_jsonb(c)
                 FROM shop.customer AS c WHERE c.id = p_customer_id;
    FOR link IN SELECT * FROM sync.customer_links() LOOP
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT %L::text, pg_catalog.to_jsonb(t) - ''digests'' FROM %s AS t '
            'WHERE t.%I = $1::%s ORDER BY 2', link.qualified_name, link.relation, link.fk_column,
            link.column_type)
            USING p_customer_id::text;
        -- one foreign key further: rows hanging off the customer's rows (order lines)
        FOR child IN
            SELECT fk.conrelid::pg_catalog.regclass AS relation,
                   pg_catalog.concat_ws('.', n.nspname, r.relname) AS qualified_name,
                   a.attname AS child_column, ref.attname AS parent_column
            FROM pg_catalog.pg_constraint AS fk
            JOIN pg_catalog.pg_class AS r ON r.oid = fk.conrelid
            JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
            JOIN pg_catalog.pg_attribute AS a
                ON a.attrelid = fk.conrelid AND a.attnum = fk.conkey[1]
            JOIN pg_catalog.pg_attribute AS ref
                ON ref.attrelid = fk.confrelid AND ref.attnum = fk.confkey[1]
            WHERE fk.contype = 'f'
              AND fk.confrelid = link.relation
              AND fk.conparentid = 0
              AND pg_catalog.cardinality(fk.conkey) = 1
              AND fk.conrelid <> 'shop.customer'::pg_catalog.regclass
              AND NOT EXISTS (SELECT FROM sync.customer_links() AS l
                              WHERE l.relation = fk.conrelid)
            ORDER BY 2
        LOOP
            RETURN QUERY EXECUTE pg_catalog.format(
                'SELECT %L::text, pg_catalog.to_jsonb(x) FROM %s AS x '
                'WHERE x.%I IN (SELECT p.%I FROM %s AS p WHERE p.%I = $1::%s) ORDER BY 2',
                child.qualified_name, child.relation, child.child_column, child.parent_column,
                link.relation, link.fk_column, link.column_type)
                USING p_customer_id::text;
        END LOOP;
    END LOOP;

    RETURN QUERY
        SELECT 'gdpr.current_consent'::text,
               pg_catalog.jsonb_build_object('policy', cc.policy_code, 'granted', cc.granted,
                                             'decided_at', cc.decided_at, 'source', cc.source,
                                             'text_version', cc.text_version)
        FROM gdpr.current_consent AS cc WHERE cc.customer_key = p_customer_id::text
        ORDER BY cc.policy_code;
    RETURN QUERY
        SELECT 'gdpr.policy'::text,
               pg_catalog.jsonb_build_object(
                   'code', p.code, 'name', p.name, 'description', p.description,
                   'legal_basis', p.legal_basis, 'retention', p.retention::text,
                   'retention_from', p.retention_from, 'text_version', p.text_version,
                   'categories', o.categories, 'held', s.holds, 'held_until', s.expires_at)
        FROM gdpr.retention_status(p_now, p_customer_id - 1, p_customer_id) AS s
        JOIN gdpr.policy AS p ON p.code = s.policy_code
        JOIN gdpr.policy_overview AS o ON o.id = p.id
        WHERE s.customer_id = p_customer_id
        ORDER BY p.code;
    RETURN QUERY
        SELECT 'sync.redirect'::text, pg_catalog.to_jsonb(r)
        FROM sync.redirect AS r WHERE r.old_number = ANY (numbers) ORDER BY r.merged_at;
    RETURN QUERY
        SELECT 'sync.inbox'::text,
               pg_catalog.jsonb_build_object('id', i.id, 'event_type', i.event_type,
                                             'customer_number', i.customer_number,
                                             'version', i.version, 'occurred_at', i.occurred_at,
                                             'received_at', i.received_at, 'payload', i.payload)
               -- a record kept as its JSON text (it holds \u0000): that text
               || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('raw', i.raw))
        FROM sync.inbox AS i
        WHERE i.customer_number = ANY (numbers)
          AND (i.payload IS NOT NULL OR i.raw IS NOT NULL)
        ORDER BY i.id;
    RETURN QUERY
        SELECT 'sync.outbox'::text,
               pg_catalog.to_jsonb(o) - 'idempotency_key'
        FROM sync.outbox AS o WHERE o.customer_number = ANY (numbers) ORDER BY o.id;
    RETURN QUERY
        SELECT 'sync.audit'::text, pg_catalog.to_jsonb(a)
        FROM sync.audit AS a
        WHERE a.customer_id = p_customer_id OR a.customer_number = ANY (numbers)
        ORDER BY a.id;
END
$$;

-- Correct webshop-owned fields of shop.customer: p_fields maps column names to new values
-- (JSON null clears). Fields tritonX owns (those of its snapshot) are refused (SY085) for a
-- customer linked to tritonX; a local customer's are the webshop's own. The audit names the
-- fields and the actor, never values. p_fields is refused (SY025) above 64 kB before anything
-- else is done. Returns {"fields": [...]}.
-- Example: SELECT gdpr.rectify(42, '{"preferred_language": "nl"}', 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.rectify(p_customer_id bigint, p_fields jsonb, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    linked  boolean;
    refused text;
    names   text[];
BEGIN
    IF pg_catalog.pg_column_size(p_fields) > 65536 THEN
        RAISE EXCEPTION USING ERRCODE = 'SY025', MESSAGE = 'fields is longer than 65536 bytes';
    END IF;
    PERFORM gdpr._checked_actor(p_actor);
    SELECT c.customer_number IS NOT NULL INTO linked
    FROM shop.customer AS c WHERE c.id = p_customer_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SY020',
            MESSAGE = pg_catalog.format('customer id %s does not exist', p_customer_id);
    END IF;
    IF p_fields IS NULL OR pg_catalog.jsonb_typeof(p_fields) <> 'object' OR p_fields = '{}' THEN
        RAISE EXCEPTION USING ERRCODE = 'SY085', MESSAGE = 'fields must be a non-empty object';
    END IF;
    SELECT pg_catalog.string_agg(
               CASE WHEN sync.is_identifier(k.key) THEN k.key ELSE '(not a name)' END
               || CASE
                      WHEN a.attname IS NULL THEN ' (no such field)'
                      WHEN linked AND (s.attname IS NOT NULL OR k.key LIKE 'tritonx\_%')
                          THEN ' (owned by tritonX: correct it there)'
                      ELSE ' (not correctable)'
                  END, ', ' ORDER BY k.key)
    INTO refused
    FROM pg_catalog.jsonb_object_keys(p_fields) AS k (key)
    LEFT JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = 'shop.customer'::pg_catalog.regclass AND a.attname = k.key
       AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_catalog.pg_attribute AS s
        ON s.attrelid = (SELECT t.typrelid FROM pg_catalog.pg_type AS t
                         WHERE t.oid = 'sync.customer_snapshot'::pg_catalog.regtype)
       AND s.attname = k.key
    WHERE a.attname IS NULL
       OR (linked AND (s.attname IS NOT NULL OR k.key LIKE 'tritonx\_%'))
       OR k.key IN ('id', 'customer_number', 'created_at', 'tritonx_version',
                    'tritonx_updated_at');
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SY085',
            MESSAGE = pg_catalog.format('rectification refused: %s', pg_catalog.left(refused, 300));
    END IF;
    names := ARRAY(SELECT k FROM pg_catalog.jsonb_object_keys(p_fields) AS k ORDER BY k);
    BEGIN
        EXECUTE pg_catalog.format(
            'UPDATE shop.customer AS t SET %s '
            'FROM pg_catalog.jsonb_populate_record(NULL::shop.customer, $1) AS r '
            'WHERE t.id = $2',
            (SELECT pg_catalog.string_agg(pg_catalog.format('%1$I = r.%1$I', n), ', ')
             FROM pg_catalog.unnest(names) AS n))
            USING p_fields, p_customer_id;
    EXCEPTION
        WHEN data_exception OR integrity_constraint_violation THEN
            -- the database's message may quote the value: only the field names go out
            RAISE EXCEPTION USING ERRCODE = 'SY085',
                MESSAGE = pg_catalog.format('rectification refused: a value does not fit '
                                            'its field (SQLSTATE %s)', SQLSTATE);
    END;
    PERFORM gdpr._audit(p_actor, 'customer.rectified', p_customer_id::text,
                        pg_catalog.jsonb_build_object('fields', pg_catalog.cardinality(names)),
                        'fields: ' || pg_catalog.array_to_string(names, ', '));
    RETURN pg_catalog.jsonb_build_object('fields', pg_catalog.to_jsonb(names));
END
$$;
