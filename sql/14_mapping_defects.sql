-- Checks of a mapping document (docs/mapping.md, format 1) against the live catalog. This is the
-- compiler's minimal set: what sync.compile_mapping needs so that it never generates SQL that
-- does not compile (tables, columns and the key exist, types it can handle, transforms well
-- formed). The full set (fields decided once, NOT NULL coverage, privileges, length warnings)
-- replaces this file with the same signature. Re-runnable.

-- One row per defect, none when the mapping fits: `path` is the TOML key path
-- (customer.columns.full_name, related[0].via.customer_column), `problem` names names and types,
-- never a value. A problem starting with "warning: " does not refuse an installation.
CREATE OR REPLACE FUNCTION sync.mapping_defects(p_document jsonb)
RETURNS TABLE (path text, problem text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fields    text[] := ARRAY(
        SELECT a.attname::text FROM pg_catalog.pg_attribute AS a
        WHERE a.attrelid = (SELECT t.typrelid FROM pg_catalog.pg_type AS t
                            WHERE t.oid = 'sync.customer_snapshot'::pg_catalog.regtype)
          AND a.attnum > 0 AND NOT a.attisdropped);
    part      record;
    rel       pg_catalog.regclass;
    col       record;
    source    record;
    used      text[];
    prefix    text;
    tab       jsonb;
    reserved  text[];
    literal   jsonb;
    target    record;
BEGIN
    IF pg_catalog.jsonb_typeof(p_document) IS DISTINCT FROM 'object'
       OR (p_document ->> 'format') IS DISTINCT FROM '1' THEN
        path := 'format'; problem := 'format must be 1'; RETURN NEXT;
        RETURN;
    END IF;
    -- the customer table first, then each related table: the same checks on both
    FOR part IN
        SELECT 'customer' AS prefix, p_document -> 'customer' AS tab, 0 AS ord
        UNION ALL
        SELECT pg_catalog.format('related[%s]', r.ordinality - 1), r.value, r.ordinality
        FROM pg_catalog.jsonb_array_elements(
                 coalesce(p_document -> 'related', '[]'::jsonb)) WITH ORDINALITY AS r
        ORDER BY 3
    LOOP
        prefix := part.prefix;
        tab := part.tab;
        IF pg_catalog.jsonb_typeof(tab) IS DISTINCT FROM 'object' THEN
            path := prefix; problem := 'missing'; RETURN NEXT;
            CONTINUE;
        END IF;
        SELECT c.oid INTO rel
        FROM pg_catalog.pg_class AS c
        JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = tab ->> 'schema' AND c.relname = tab ->> 'table'
          AND c.relkind IN ('r', 'p');
        IF rel IS NULL THEN
            path := prefix || '.table';
            problem := pg_catalog.format('no table %I.%I', tab ->> 'schema', tab ->> 'table');
            RETURN NEXT;
            CONTINUE;
        END IF;
        -- the key
        SELECT a.attname, a.atttypid, a.attidentity, a.attgenerated, a.atthasdef INTO col
        FROM pg_catalog.pg_attribute AS a
        WHERE a.attrelid = rel AND a.attname = tab ->> 'key' AND a.attnum > 0
          AND NOT a.attisdropped;
        IF col.attname IS NULL THEN
            path := prefix || '.key';
            problem := pg_catalog.format('no column %I in %s', tab ->> 'key', rel);
            RETURN NEXT;
        ELSE
            IF col.atttypid NOT IN ('smallint'::pg_catalog.regtype, 'integer'::pg_catalog.regtype,
                                    'bigint'::pg_catalog.regtype, 'uuid'::pg_catalog.regtype,
                                    'text'::pg_catalog.regtype,
                                    'character varying'::pg_catalog.regtype) THEN
                path := prefix || '.key';
                problem := pg_catalog.format('type %s is not supported as a key',
                                             col.atttypid::pg_catalog.regtype);
                RETURN NEXT;
            END IF;
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_index AS x
                           WHERE x.indrelid = rel AND x.indisunique AND x.indnatts = 1
                             AND x.indpred IS NULL AND x.indexprs IS NULL
                             AND x.indkey[0] = (SELECT a.attnum FROM pg_catalog.pg_attribute AS a
                                                WHERE a.attrelid = rel
                                                  AND a.attname = col.attname)) THEN
                path := prefix || '.key';
                problem := pg_catalog.format('column %I has no unique index of its own',
                                             col.attname);
                RETURN NEXT;
            END IF;
            problem := CASE tab ->> 'key_generate'
                WHEN 'identity' THEN CASE WHEN col.attidentity = '' THEN
                    pg_catalog.format('%I is not an identity column', col.attname) END
                WHEN 'default' THEN CASE WHEN NOT col.atthasdef OR col.attidentity <> '' THEN
                    pg_catalog.format('%I has no default', col.attname) END
                WHEN 'uuid' THEN CASE WHEN col.atttypid <> 'uuid'::pg_catalog.regtype THEN
                    pg_catalog.format('%I is not of type uuid', col.attname) END
                WHEN 'sequence' THEN CASE WHEN pg_catalog.to_regclass(tab ->> 'key_sequence')
                                               IS NULL
                                            OR (SELECT c.relkind FROM pg_catalog.pg_class AS c
                                                WHERE c.oid = pg_catalog.to_regclass(
                                                                  tab ->> 'key_sequence')) <> 'S'
                    THEN 'key_sequence does not name a sequence' END
                ELSE 'key_generate must be identity, default, uuid or sequence'
            END;
            IF problem IS NOT NULL THEN
                path := prefix || '.key_generate'; RETURN NEXT;
            END IF;
        END IF;
        reserved := ARRAY[tab ->> 'key'];
        IF prefix = 'customer' THEN
            -- where the number and the version live
            IF pg_catalog.jsonb_typeof(tab -> 'number') = 'object' THEN
                reserved := reserved || (tab #>> '{number,column}');
                IF NOT EXISTS (
                    SELECT FROM pg_catalog.pg_attribute AS a
                    JOIN pg_catalog.pg_index AS x
                      ON x.indrelid = rel AND x.indisunique AND x.indnatts = 1
                         AND x.indpred IS NULL AND x.indexprs IS NULL AND x.indkey[0] = a.attnum
                    WHERE a.attrelid = rel AND a.attname = tab #>> '{number,column}'
                      AND a.attnum > 0 AND NOT a.attisdropped
                      AND a.atttypid IN ('text'::pg_catalog.regtype,
                                         'character varying'::pg_catalog.regtype)) THEN
                    path := 'customer.number.column';
                    problem := 'must be a text or varchar column with a unique index of its own';
                    RETURN NEXT;
                END IF;
            ELSIF (tab ->> 'number') IS DISTINCT FROM 'link' THEN
                path := 'customer.number'; problem := 'must be { column = ... } or "link"';
                RETURN NEXT;
            END IF;
            IF pg_catalog.jsonb_typeof(tab -> 'version') = 'object' THEN
                reserved := reserved || (tab #>> '{version,column}');
                IF NOT EXISTS (
                    SELECT FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = rel AND a.attname = tab #>> '{version,column}'
                      AND a.attnum > 0 AND NOT a.attisdropped
                      AND a.atttypid IN ('integer'::pg_catalog.regtype,
                                         'bigint'::pg_catalog.regtype)) THEN
                    path := 'customer.version.column';
                    problem := 'must be an integer or bigint column';
                    RETURN NEXT;
                END IF;
            ELSIF (tab ->> 'version') IS DISTINCT FROM 'link' THEN
                path := 'customer.version'; problem := 'must be { column = ... } or "link"';
                RETURN NEXT;
            END IF;
        ELSE
            -- a related table: the customer row points to it, or it points to the customer
            -- (with a kind column and value when there is one row per kind)
            IF (tab #>> '{via,column}') IS NOT NULL THEN
                IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                               WHERE a.attrelid = rel AND a.attname = tab #>> '{via,column}'
                                 AND a.attnum > 0 AND NOT a.attisdropped) THEN
                    path := prefix || '.via.column';
                    problem := 'no such column in the related table';
                    RETURN NEXT;
                END IF;
                reserved := reserved || (tab #>> '{via,column}');
                IF tab #> '{via,kind}' IS NOT NULL THEN
                    reserved := reserved || (tab #>> '{via,kind,column}');
                    IF (tab #>> '{via,kind,value}') IS NULL OR NOT EXISTS (
                        SELECT FROM pg_catalog.pg_attribute AS a
                        WHERE a.attrelid = rel AND a.attname = tab #>> '{via,kind,column}'
                          AND a.attnum > 0 AND NOT a.attisdropped) THEN
                        path := prefix || '.via.kind';
                        problem := 'must name a column of the related table and a value';
                        RETURN NEXT;
                    END IF;
                END IF;
            ELSIF (tab #>> '{via,customer_column}') IS NULL THEN
                path := prefix || '.via';
                problem := 'must be { customer_column = ... } or { column = ... }';
                RETURN NEXT;
            ELSIF NOT EXISTS (
                SELECT FROM pg_catalog.pg_attribute AS a
                WHERE a.attrelid = pg_catalog.to_regclass(pg_catalog.format(
                          '%I.%I', p_document #>> '{customer,schema}',
                          p_document #>> '{customer,table}'))
                  AND a.attname = tab #>> '{via,customer_column}'
                  AND a.attnum > 0 AND NOT a.attisdropped) THEN
                path := prefix || '.via.customer_column';
                problem := 'no such column in the customer table';
                RETURN NEXT;
            END IF;
        END IF;
        -- mapped columns: exist, writable, not reserved; their sources well formed
        FOR source IN
            SELECT 'columns' AS kind, e.key, e.value FROM pg_catalog.jsonb_each(
                coalesce(tab -> 'columns', '{}'::jsonb)) AS e
            UNION ALL
            SELECT 'create', e.key, e.value FROM pg_catalog.jsonb_each(
                coalesce(tab -> 'create', '{}'::jsonb)) AS e
        LOOP
            path := pg_catalog.format('%s.%s.%s', prefix, source.kind, source.key);
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                           WHERE a.attrelid = rel AND a.attname = source.key AND a.attnum > 0
                             AND NOT a.attisdropped AND a.attidentity = ''
                             AND a.attgenerated = '') THEN
                problem := pg_catalog.format('no writable column %I in %s', source.key, rel);
                RETURN NEXT;
                CONTINUE;
            END IF;
            IF source.key = ANY (reserved) THEN
                problem := 'the key, number and version columns are written by the engine';
                RETURN NEXT;
            END IF;
            -- every literal (a create value, a code's or boolean's output, other, null_as) must
            -- fit the column: generated code casts it (%L::type) and would fail on every write
            FOR literal IN
                SELECT l.value FROM (
                    SELECT source.value AS value WHERE source.kind = 'create'
                    UNION ALL
                    SELECT e.value FROM pg_catalog.jsonb_each(source.value -> 'codes') AS e
                    WHERE source.kind = 'columns'
                      AND pg_catalog.jsonb_typeof(source.value -> 'codes') = 'object'
                    UNION ALL
                    SELECT source.value -> k.k
                    FROM pg_catalog.unnest(ARRAY['other', 'true', 'false', 'null_as']) AS k (k)
                    WHERE source.kind = 'columns'
                      AND pg_catalog.jsonb_typeof(source.value) = 'object'
                      AND source.value ? k.k
                ) AS l
            LOOP
                IF pg_catalog.jsonb_typeof(literal) NOT IN ('string', 'number', 'boolean') THEN
                    problem := 'must be a literal (a string, number or boolean)'; RETURN NEXT;
                    CONTINUE;
                END IF;
                SELECT a.atttypid, a.atttypmod INTO target
                FROM pg_catalog.pg_attribute AS a
                WHERE a.attrelid = rel AND a.attname = source.key;
                BEGIN
                    EXECUTE pg_catalog.format('SELECT %L::%s', literal #>> '{}',
                                              sync._cast_type(target.atttypid));
                    IF target.atttypid IN ('pg_catalog.varchar'::pg_catalog.regtype,
                                           'pg_catalog.bpchar'::pg_catalog.regtype)
                       AND target.atttypmod > 4
                       AND pg_catalog.length(literal #>> '{}') > target.atttypmod - 4 THEN
                        problem := pg_catalog.format(
                            'a literal is longer than the column (%s)',
                            pg_catalog.format_type(target.atttypid, target.atttypmod));
                        RETURN NEXT;
                    END IF;
                EXCEPTION WHEN data_exception THEN
                    problem := pg_catalog.format(
                        'a literal does not fit the column''s type %s',
                        pg_catalog.format_type(target.atttypid, target.atttypmod));
                    RETURN NEXT;
                END;
            END LOOP;
            IF source.kind = 'create' THEN
                CONTINUE;
            END IF;
            used := CASE
                WHEN pg_catalog.jsonb_typeof(source.value) = 'string'
                    THEN ARRAY[source.value #>> '{}']
                WHEN source.value ? 'field' THEN ARRAY[source.value ->> 'field']
                WHEN pg_catalog.jsonb_typeof(source.value -> 'join') = 'array'
                    THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(source.value -> 'join'))
                WHEN pg_catalog.jsonb_typeof(source.value -> 'first_of') = 'array'
                    THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(
                                   source.value -> 'first_of'))
            END;
            IF used IS NULL OR pg_catalog.cardinality(used) = 0 THEN
                problem := 'not a transform of format 1'; RETURN NEXT;
                CONTINUE;
            END IF;
            FOR i IN 1 .. pg_catalog.cardinality(used) LOOP
                IF NOT used[i] = ANY (fields) OR used[i] = 'customer_number' THEN
                    problem := pg_catalog.format('%s is not a snapshot field', used[i]);
                    RETURN NEXT;
                END IF;
            END LOOP;
            IF pg_catalog.jsonb_typeof(source.value) = 'object'
               AND EXISTS (SELECT FROM pg_catalog.jsonb_object_keys(source.value) AS k
                           WHERE k NOT IN ('field', 'join', 'separator', 'first_of', 'codes',
                                           'other', 'true', 'false', 'format', 'null_as')) THEN
                problem := 'not a transform of format 1'; RETURN NEXT;
            END IF;
        END LOOP;
    END LOOP;
END
$$;
