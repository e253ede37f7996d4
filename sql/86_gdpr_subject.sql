-- Subject access ("registerutdrag") and rectification on the mapped customer table (any schema,
-- any key type). gdpr.subject_data returns everything the database holds about one customer,
-- found the way the engine finds customer data: the mapped customer row, every customer-linked
-- table (sync.customer_links(): foreign keys, declared references and the engine's gdpr tables;
-- a partitioned table read through its parent, each row once), tables one foreign key further
-- (order lines via orders), the rows the customer points to (sync._pointed_tables(): an
-- address), the engine's records of the customer's numbers (link, redirects, inbox snapshots,
-- outbox, audit), the consents and the policies the customer is under. Nothing is selected by
-- value, only by key, so nothing of anyone else comes along. gdpr.rectify corrects the shop's
-- own columns; the ones tritonX owns are corrected in tritonX (a snapshot would overwrite a
-- local correction). A customer is named by its key as text; the bigint forms are wrappers for
-- integer keys. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Building blocks (private)
-- ---------------------------------------------------------------------------------------------

-- The shop tables that hold rows of a customer, each once, with the predicate (alias t, the
-- customer's key as text in $1) that selects them: the mapped table by its key, each linked
-- table by its customer columns, each table the customer points to by the pointer, and each
-- table one foreign key further from a linked table by its parent's rows. Predicates of one
-- table are OR-ed, so a row reached twice is returned once. The mapped table comes first. The
-- name is as PostgreSQL quotes it (sync._shown_name: "web.shop".customer, sales."Review").
-- `hidden`: for a table that names two customers, an expression (alias t, the key in $1) giving
-- the columns of the row that belong to another customer than this one (sync.pii_column
-- .belongs_to names a customer column of the row that does not name this one); NULL for the
-- others.
DROP FUNCTION IF EXISTS gdpr._subject_tables();
CREATE OR REPLACE FUNCTION gdpr._subject_tables()
RETURNS TABLE (relation regclass, qualified_name text, predicate text, hidden text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH mapped AS (SELECT * FROM sync.mapped_customer()),
    reach AS (
        SELECT m.relation, pg_catalog.format('t.%I = $1::%s', m.key_column, m.key_type) AS predicate
        FROM mapped AS m
        UNION ALL
        SELECT l.relation, pg_catalog.format('t.%I = $1::%s', l.fk_column, l.column_type)
        FROM sync.customer_links() AS l
        UNION ALL
        SELECT p.relation, pg_catalog.format(
                   't.%I IN (SELECT c.%I FROM %s AS c WHERE c.%I = $1::%s)',
                   p.key_column, p.pointer, m.relation, m.key_column, m.key_type)
        FROM sync._pointed_tables() AS p CROSS JOIN mapped AS m
        UNION ALL
        -- one foreign key further: rows hanging off the customer's rows (order lines), by a
        -- foreign key of one column or several (a table referring to a partitioned table
        -- names its partition key too); a partition whose foreign key is its own (not its
        -- parent's, as some dumps write them) is read through its partitioned parent, each
        -- row once, under the parent's name
        SELECT f.relation, pg_catalog.format(
                   '(%s) IN (SELECT %s FROM %s AS p WHERE p.%I = $1::%s)',
                   f.referring, f.referred, f.link, f.fk_column, f.column_type)
        FROM sync._further_links() AS f
    )
    SELECT r.relation, sync._shown_name(n.nspname, c.relname),
           pg_catalog.string_agg(DISTINCT '(' || r.predicate || ')', ' OR '),
           (SELECT 'ARRAY[' || pg_catalog.string_agg(
                       pg_catalog.format('CASE WHEN t.%I IS DISTINCT FROM $1::%s THEN %L END',
                                         l.fk_column, l.column_type, p.column_name),
                       ', ' ORDER BY p.column_name) || ']::text[]'
            FROM sync.pii_column AS p
            JOIN sync.customer_links() AS l
                ON l.relation = r.relation AND l.fk_column = p.belongs_to
            WHERE p.table_schema = n.nspname AND p.table_name = c.relname)
    FROM reach AS r
    JOIN pg_catalog.pg_class AS c ON c.oid = r.relation
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    GROUP BY r.relation, n.nspname, c.relname
    ORDER BY r.relation <> (SELECT m.relation FROM mapped AS m), 2
$$;

-- A policy as the subject access export shows it.
CREATE OR REPLACE FUNCTION gdpr._policy_export(
    p_policy_id bigint, p_held boolean, p_held_until timestamptz)
RETURNS jsonb
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
               'code', o.code, 'name', o.name, 'description', o.description,
               'legal_basis', o.legal_basis, 'retention', o.retention::text,
               'retention_from', o.retention_from, 'text_version', o.text_version,
               'categories', o.categories, 'held', p_held, 'held_until', p_held_until)
    FROM gdpr.policy_overview AS o WHERE o.id = p_policy_id
$$;

-- The active policies customer p_key (its key as text, canonical) is under, each as the export
-- shows it (held: whether the policy still holds the customer's data at p_now, held_until: when
-- that ends), from gdpr.retention_status_of, for any key type.
CREATE OR REPLACE FUNCTION gdpr._subject_policies(p_key text, p_now timestamptz)
RETURNS TABLE (code text, row_data jsonb)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.code, gdpr._policy_export(p.id, s.holds, s.expires_at)
    FROM gdpr.retention_status_of(p_key, p_now) AS s
    JOIN gdpr.policy AS p ON p.code = s.policy_code
    ORDER BY p.code
$$;


-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Every row held about the customer p_customer_key (the mapped key as text, '42' or a uuid) as
-- (source, row_data): source is a table as schema.table ('sales.orders', 'crm.customer'), or
-- gdpr.current_consent and gdpr.policy for the consents and the policies the customer is under.
-- Each row once; an erasure request's digests are left out. Raises SY020 for a key of nobody
-- (never echoing it).
-- Example: SELECT source, row_data FROM gdpr.subject_data('4b9f6a1e-0c1d-4c7e-9d7a-2f7c1e0b9a11');
CREATE OR REPLACE FUNCTION gdpr.subject_data(p_customer_key text, p_now timestamptz DEFAULT now())
RETURNS TABLE (source text, row_data jsonb)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    subject    text;
    subject_id bigint;
    number     text;
    part       record;
    numbers    text[];
BEGIN
    PERFORM sync._checked_length(p_customer_key, sync._key_limit(), 'customer key');
    subject := gdpr._customer_key(p_customer_key);
    -- once, not for every audit row the audit read below filters
    subject_id := (sync._key_ids(ARRAY[subject]))[1];
    number := syncmap.number_of(subject);
    numbers := ARRAY(SELECT number WHERE number IS NOT NULL
                     UNION ALL
                     SELECT r.old_number FROM sync.redirect AS r
                     WHERE r.survivor_number = number);

    -- a row that names two customers shows this one its columns and the row's own, not the
    -- other's (part.hidden)
    FOR part IN SELECT * FROM gdpr._subject_tables() LOOP
        RETURN QUERY EXECUTE pg_catalog.format(
            'SELECT %L::text, pg_catalog.to_jsonb(t) - ''digests''%s FROM %s AS t WHERE %s '
            'ORDER BY 2',
            part.qualified_name, coalesce(' - ' || part.hidden, ''), part.relation,
            part.predicate)
            USING subject;
    END LOOP;

    RETURN QUERY
        SELECT 'gdpr.current_consent'::text,
               pg_catalog.jsonb_build_object('policy', cc.policy_code, 'granted', cc.granted,
                                             'decided_at', cc.decided_at, 'source', cc.source,
                                             'text_version', cc.text_version)
        FROM gdpr.current_consent AS cc WHERE cc.customer_key = subject
        ORDER BY cc.policy_code;
    RETURN QUERY SELECT 'gdpr.policy'::text, p.row_data FROM gdpr._subject_policies(subject, p_now) AS p;
    RETURN QUERY
        SELECT 'sync.customer_link'::text, pg_catalog.to_jsonb(l)
        FROM sync.customer_link AS l WHERE l.customer_key = subject;
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
        -- the numbers' records, and the ones an anonymisation scrubs as the customer's too: a
        -- dead letter whose own number is missing, malformed or another while its snapshot
        -- names one of them
        WHERE (i.customer_number = ANY (numbers)
               OR i.id IN (SELECT c.inbox_id FROM sync._inbox_copies(number) AS c))
          AND (i.payload IS NOT NULL OR i.raw IS NOT NULL)
        ORDER BY i.id;
    RETURN QUERY
        SELECT 'sync.outbox'::text,
               pg_catalog.to_jsonb(o) - 'idempotency_key'
        FROM sync.outbox AS o WHERE o.customer_number = ANY (numbers) ORDER BY o.id;
    RETURN QUERY
        SELECT 'sync.audit'::text, pg_catalog.to_jsonb(a)
        FROM sync.audit AS a
        WHERE a.customer_number = ANY (numbers)
           OR a.customer_key = subject
           OR a.customer_id = subject_id
        ORDER BY a.id;
END
$$;

-- The same for an integer key: p_customer_id is the mapped customer's key.
-- Example: SELECT source, row_data FROM gdpr.subject_data(42);
CREATE OR REPLACE FUNCTION gdpr.subject_data(p_customer_id bigint, p_now timestamptz DEFAULT now())
RETURNS TABLE (source text, row_data jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.source, s.row_data FROM gdpr.subject_data(p_customer_id::text, p_now) AS s
$$;

-- The mapped customer table's columns the webshop may not correct, from the active mapping:
-- the ones the engine writes itself (the key, the number and version columns, the pointers to
-- related rows: `engine`), the ones retention reads (the [gdpr] table's created_column,
-- last_activity_column and group_column: `retention`; a correction could keep a customer's data
-- longer than its policy allows, or put the customer under another policy) and the ones tritonX
-- owns (customer.columns: `tritonx`); `declared_by` is the mapping key that names the column.
DROP FUNCTION IF EXISTS gdpr._uncorrectable_columns();  -- its result gains declared_by
CREATE OR REPLACE FUNCTION gdpr._uncorrectable_columns()
RETURNS TABLE (column_name text, owner text, declared_by text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT x.column_name, x.owner, x.declared_by
    FROM sync.mapping_version AS v
    CROSS JOIN LATERAL (
        SELECT v.document #>> '{customer,key}', 'engine', 'customer.key'
        UNION ALL
        SELECT v.document #>> '{customer,number,column}', 'engine', 'customer.number'
        UNION ALL
        SELECT v.document #>> '{customer,version,column}', 'engine', 'customer.version'
        UNION ALL
        SELECT e.item #>> '{via,customer_column}', 'engine', 'related.via.customer_column'
        FROM pg_catalog.jsonb_array_elements(
            CASE WHEN pg_catalog.jsonb_typeof(v.document -> 'related') = 'array'
                 THEN v.document -> 'related' ELSE '[]' END) AS e (item)
        UNION ALL
        SELECT v.document #>> ARRAY['gdpr', f.key], 'retention', f.key
        FROM pg_catalog.unnest(ARRAY['created_column', 'last_activity_column',
                                     'group_column']) AS f (key)
        WHERE pg_catalog.jsonb_typeof(v.document #> ARRAY['gdpr', f.key]) = 'string'
        UNION ALL
        SELECT o.key, 'tritonx', 'customer.columns'
        FROM pg_catalog.jsonb_object_keys(
            CASE WHEN pg_catalog.jsonb_typeof(v.document #> '{customer,columns}') = 'object'
                 THEN v.document #> '{customer,columns}' ELSE '{}' END) AS o (key)
    ) AS x (column_name, owner, declared_by)
    WHERE v.active AND x.column_name IS NOT NULL
$$;

-- Whether p_value (JSON) fits the column p_column of p_relation, as a rectification would write
-- it: NULL when it does, else the SQLSTATE of the conversion's error (a value of another type,
-- one too long for varchar(n), one a domain refuses). The error itself is dropped: it may quote
-- the value. The value is put over the customer's row (the key p_key in p_key_column, of type
-- p_key_type), so only that column is converted: a column of a NOT NULL domain elsewhere in the
-- row keeps its value and is no reason to refuse. NOT NULL and constraints are the UPDATE's to
-- check.
DROP FUNCTION IF EXISTS gdpr._misfit(pg_catalog.regclass, text, jsonb);
CREATE OR REPLACE FUNCTION gdpr._misfit(p_relation pg_catalog.regclass, p_key_column name,
                                        p_key_type pg_catalog.regtype, p_key text,
                                        p_column text, p_value jsonb)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.jsonb_populate_record(c, $1) FROM %s AS c WHERE c.%I = $2::%s',
        p_relation, p_key_column, p_key_type)
        USING pg_catalog.jsonb_build_object(p_column, p_value), p_key;
    RETURN NULL;
EXCEPTION
    WHEN data_exception OR integrity_constraint_violation THEN
        RETURN SQLSTATE;
END
$$;

-- The fields of p_names (columns of p_relation a rectification wrote) that an error names: its
-- column (a NOT NULL column's), or the columns of its constraint or unique index on p_relation;
-- every one of p_names when the error names none of them (a shop trigger's RAISE, a
-- constraint of another table). Quoted as PostgreSQL quotes names, comma-separated.
CREATE OR REPLACE FUNCTION gdpr._refused_fields(p_relation pg_catalog.regclass, p_names text[],
                                                p_column text, p_constraint text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH named AS (
        SELECT n
        FROM pg_catalog.unnest(p_names) AS n
        WHERE n = p_column
           OR n IN (SELECT a.attname
                    FROM pg_catalog.pg_constraint AS k
                    JOIN pg_catalog.pg_attribute AS a
                        ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
                    WHERE k.conrelid = p_relation AND k.conname = p_constraint
                    UNION ALL
                    SELECT a.attname
                    FROM pg_catalog.pg_index AS x
                    JOIN pg_catalog.pg_class AS i ON i.oid = x.indexrelid
                    JOIN pg_catalog.pg_attribute AS a
                        ON a.attrelid = x.indrelid
                       AND a.attnum = ANY (x.indkey::pg_catalog.int2[])
                    WHERE x.indrelid = p_relation AND i.relname = p_constraint)
    )
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(f.n), ', ' ORDER BY f.n)
    FROM (SELECT n FROM named
          UNION ALL
          SELECT n FROM pg_catalog.unnest(p_names) AS n
          WHERE NOT EXISTS (SELECT FROM named)) AS f (n)
$$;

-- Correct the shop's own columns of the mapped customer p_customer_key (the key as text):
-- p_fields maps column names to new values (JSON null clears). Refused (SY085): a column the
-- engine writes (the key, the number and version columns, a pointer to a related row), a
-- column retention reads (the mapping's [gdpr] created_column, last_activity_column,
-- group_column: a correction could extend the customer's retention), a generated or identity
-- column, and, for a customer linked to tritonX, a column tritonX owns (the mapping's
-- customer.columns: a snapshot would overwrite it; a local customer's are the webshop's
-- own), and a value that does not fit its column (its type, its length) or that the table
-- refuses (NOT NULL, a check, a unique index, a shop trigger). Every refusal names the fields
-- it refused (a column as PostgreSQL quotes it), all of them at once where it can, and never
-- a value. The audit names the fields and the actor, never values. p_fields is refused
-- (SY025) above 64 kB before anything else is done; a key of nobody is SY020 (never echoed).
-- Returns {"fields": [...]}.
-- Example: SELECT gdpr.rectify('42', '{"preferred_language": "nl"}', 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.rectify(p_customer_key text, p_fields jsonb, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped      record;
    subject     text;
    linked      boolean;
    refused     text;
    names       text[];
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    column_     text;
    context     text;
BEGIN
    IF pg_catalog.pg_column_size(p_fields) > 65536 THEN
        RAISE EXCEPTION USING ERRCODE = 'SY025', MESSAGE = 'fields is longer than 65536 bytes';
    END IF;
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_length(p_customer_key, sync._key_limit(), 'customer key');
    subject := gdpr._customer_key(p_customer_key);
    PERFORM syncmap.lock_customers(ARRAY[subject]);
    SELECT * INTO mapped FROM sync.mapped_customer();
    linked := syncmap.number_of(subject) IS NOT NULL;
    IF p_fields IS NULL OR pg_catalog.jsonb_typeof(p_fields) <> 'object' OR p_fields = '{}' THEN
        RAISE EXCEPTION USING ERRCODE = 'SY085', MESSAGE = 'fields must be a non-empty object';
    END IF;
    -- every refused field at once, each named (a column as PostgreSQL quotes it) with why
    SELECT pg_catalog.string_agg(
               CASE WHEN a.attname IS NOT NULL THEN pg_catalog.quote_ident(k.key)
                    WHEN sync.is_identifier(k.key) THEN k.key
                    ELSE '(not a name)' END
               || CASE
                      WHEN a.attname IS NULL THEN ' (no such field)'
                      WHEN u.owner = 'tritonx' THEN ' (owned by tritonX: correct it there)'
                      WHEN u.owner = 'retention'
                          THEN pg_catalog.format(' (retention reads it: [gdpr] %s)',
                                                 u.declared_by)
                      WHEN u.owner IS NOT NULL OR a.attidentity <> '' OR a.attgenerated <> ''
                          THEN ' (not correctable)'
                      ELSE pg_catalog.format(' (the value does not fit its column: SQLSTATE %s)',
                                             m.misfit)
                  END, ', ' ORDER BY k.key)
    INTO refused
    FROM pg_catalog.jsonb_each(p_fields) AS k (key, value)
    LEFT JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = mapped.relation AND a.attname = k.key
       AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN LATERAL (
        -- 'engine' before 'retention' before 'tritonx'
        SELECT x.owner, x.declared_by
        FROM gdpr._uncorrectable_columns() AS x
        WHERE x.column_name = k.key AND (x.owner <> 'tritonx' OR linked)
        ORDER BY x.owner, x.declared_by
        LIMIT 1
    ) AS u ON true
    CROSS JOIN LATERAL (
        SELECT CASE WHEN a.attname IS NOT NULL
                    THEN gdpr._misfit(mapped.relation, mapped.key_column, mapped.key_type,
                                        subject, k.key, k.value) END
    ) AS m (misfit)
    WHERE a.attname IS NULL
       OR u.owner IS NOT NULL
       OR a.attidentity <> '' OR a.attgenerated <> ''
       OR m.misfit IS NOT NULL;
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SY085',
            MESSAGE = pg_catalog.format('rectification refused: %s', pg_catalog.left(refused, 300));
    END IF;
    names := ARRAY(SELECT k FROM pg_catalog.jsonb_object_keys(p_fields) AS k ORDER BY k);
    BEGIN
        -- a column that holds a consent field: the change is recorded as this rectification,
        -- by its actor (the local-consent triggers), not as a decision of the back office's
        PERFORM gdpr._set_consent_source('rectification', p_actor);
        -- the new values over the customer's row (c), so the columns not corrected keep
        -- theirs and are not converted again (a NOT NULL domain's column would refuse NULL)
        EXECUTE pg_catalog.format(
            'UPDATE %1$s AS t SET %2$s '
            'FROM %1$s AS c CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(c, $1) AS r '
            'WHERE c.%3$I = $2::%4$s AND t.%3$I = c.%3$I',
            mapped.relation,
            (SELECT pg_catalog.string_agg(pg_catalog.format('%1$I = r.%1$I', n), ', ')
             FROM pg_catalog.unnest(names) AS n),
            mapped.key_column, mapped.key_type)
            USING p_fields, subject;
        PERFORM gdpr._set_consent_source(NULL);
    EXCEPTION
        WHEN OTHERS THEN
            -- the database's message (a shop trigger's too) may quote the value: the fields
            -- it concerns, its SQLSTATE and names go out (sync._shop_refusal); a transient
            -- error or an engine's refusal goes out as it is
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                    schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                                    constraint_ = CONSTRAINT_NAME, column_ = COLUMN_NAME,
                                    context = PG_EXCEPTION_CONTEXT;
            message := sync._shop_refusal(state, message, schema_name, table_name,
                                          constraint_, context);
            IF message IS NULL THEN
                RAISE;
            END IF;
            RAISE EXCEPTION USING
                ERRCODE = CASE WHEN pg_catalog.left(state, 2) IN ('22', '23') THEN 'SY085'
                               WHEN state LIKE 'SY%' THEN 'P0001'
                               ELSE state END,
                MESSAGE = pg_catalog.format('rectification refused: %s: %s',
                                            gdpr._refused_fields(mapped.relation, names,
                                                                 column_, constraint_),
                                            message);
    END;
    PERFORM gdpr._audit(p_actor, 'customer.rectified', subject,
                        pg_catalog.jsonb_build_object('fields', pg_catalog.cardinality(names)),
                        'fields: ' || pg_catalog.array_to_string(names, ', '));
    RETURN pg_catalog.jsonb_build_object('fields', pg_catalog.to_jsonb(names));
END
$$;

-- The same for an integer key.
-- Example: SELECT gdpr.rectify(42, '{"preferred_language": "nl"}', 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.rectify(p_customer_id bigint, p_fields jsonb, p_actor text)
RETURNS jsonb
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT gdpr.rectify(p_customer_id::text, p_fields, p_actor)
$$;
