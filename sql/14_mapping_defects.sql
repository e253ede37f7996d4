-- The mapping's check against the live catalog: sync.mapping_defects(document) lists every way a
-- format-1 mapping (docs/mapping.md; the document is the TOML file as JSON) does not fit this
-- database, one row per defect with the mapping's key path, none when it fits. A row whose problem
-- starts with "warning: " does not refuse the mapping (sync.install_mapping installs it anyway).
-- Problems name schemas, tables, columns, fields, types and lengths, never a value: not the
-- mapping's literals, not data. Objects are found by their exact names in pg_namespace, pg_class
-- and pg_attribute (a name is never parsed or cast to regclass); the only dynamic SQL casts a
-- literal with %L to a type written by format_type. Everything here reads, nothing writes: the
-- DBA runs it as the installing role (`syncctl mapping check`), it needs no grant. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Catalog look-ups
-- ---------------------------------------------------------------------------------------------

-- The contract's snapshot fields (the attributes of sync.customer_snapshot) with their type and,
-- for varchar fields, the contract's maximum length; for integer, date, boolean and timestamp
-- fields the length of their text form, which is what a text column receives (a timestamp's:
-- the contract's 35 characters, which every DateStyle's form of it stays within).
CREATE OR REPLACE FUNCTION sync._mapping_fields()
RETURNS TABLE (field text, type_oid oid, typmod integer, max_length integer)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.attname::text, a.atttypid, a.atttypmod,
           CASE
               WHEN a.atttypid = 'pg_catalog.varchar'::pg_catalog.regtype AND a.atttypmod > 4
                   THEN a.atttypmod - 4
               WHEN a.atttypid = 'pg_catalog.int4'::pg_catalog.regtype THEN 11
               WHEN a.atttypid = 'pg_catalog.date'::pg_catalog.regtype THEN 10
               WHEN a.atttypid = 'pg_catalog.bool'::pg_catalog.regtype THEN 5
               WHEN a.atttypid = 'pg_catalog.timestamptz'::pg_catalog.regtype THEN 35
           END
    FROM pg_catalog.pg_attribute AS a
    -- by name, not a regtype literal: this file is installed before the type is
    JOIN pg_catalog.pg_type AS t ON t.typrelid = a.attrelid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace
    WHERE n.nspname = 'sync' AND t.typname = 'customer_snapshot'
      AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
$$;

-- A relation of one of these kinds by its exact schema and name, or NULL.
CREATE OR REPLACE FUNCTION sync._mapping_relation(p_schema text, p_name text,
                                                  p_kinds "char"[])
RETURNS oid
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.oid
    FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = p_schema AND c.relname = p_name AND c.relkind = ANY (p_kinds)
$$;

-- A table (plain or partitioned) by its exact schema and name, or NULL.
CREATE OR REPLACE FUNCTION sync._mapping_table(p_schema text, p_table text)
RETURNS oid
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync._mapping_relation(p_schema, p_table, '{r,p}')
$$;

-- Why sync._mapping_table found nothing: the schema or the table does not exist (a view, say).
CREATE OR REPLACE FUNCTION sync._mapping_missing_table(p_at text, p_schema text, p_table text)
RETURNS TABLE (path text, problem text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN n.oid IS NULL THEN p_at || '.schema' ELSE p_at || '.table' END,
           CASE WHEN n.oid IS NULL THEN pg_catalog.format('schema %I does not exist', p_schema)
                ELSE pg_catalog.format('table %I.%I does not exist (or is not a table)',
                                       p_schema, p_table)
           END
    FROM (SELECT) AS one
    LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname = p_schema
    WHERE p_schema IS NOT NULL AND p_table IS NOT NULL  -- else "is missing" says it
$$;

-- A sequence by the mapping's key_sequence, "schema.sequence" with both names exactly as in the
-- catalog, never quoted (the schema's name ends at the first dot), or NULL.
CREATE OR REPLACE FUNCTION sync._mapping_sequence(p_name text)
RETURNS oid
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync._mapping_relation(pg_catalog.split_part(p_name, '.', 1),
                                  pg_catalog.substr(p_name, pg_catalog.strpos(p_name, '.') + 1),
                                  '{S}')
$$;

-- A column of a table by its exact name (the pg_attribute row), or NULL.
CREATE OR REPLACE FUNCTION sync._mapping_column(p_table oid, p_column text)
RETURNS pg_catalog.pg_attribute
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.*
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = p_table AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- Whether a unique index (a primary key or unique constraint included) covers exactly this one
-- column: not partial, not an expression, INCLUDE columns allowed (they do not widen the key).
CREATE OR REPLACE FUNCTION sync._mapping_is_unique(p_table oid, p_attnum smallint)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT FROM pg_catalog.pg_index AS i
        WHERE i.indrelid = p_table AND i.indisunique AND i.indnkeyatts = 1
          AND i.indkey[0] = p_attnum AND i.indpred IS NULL AND i.indexprs IS NULL)
$$;

-- Whether a foreign key (declared on the table itself, not one PostgreSQL cloned onto a
-- partition) leads from column p_from of p_table to column p_to of p_target.
CREATE OR REPLACE FUNCTION sync._mapping_has_foreign_key(
    p_table oid, p_from smallint, p_target oid, p_to smallint)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT FROM pg_catalog.pg_constraint AS k
        WHERE k.contype = 'f' AND k.conparentid = 0
          AND k.conrelid = p_table AND k.conkey = ARRAY[p_from]
          AND k.confrelid = p_target AND k.confkey = ARRAY[p_to])
$$;

-- Whether a [[related]] entry is a table the customer row points to that no tritonX field feeds
-- (via customer_column, no columns): the generated write leaves it alone.
CREATE OR REPLACE FUNCTION sync._mapping_unfed(p_related jsonb)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.jsonb_typeof(p_related #> '{via,customer_column}') = 'string',
                    false)
           AND NOT EXISTS (SELECT FROM pg_catalog.jsonb_each(
                               CASE WHEN pg_catalog.jsonb_typeof(p_related -> 'columns') = 'object'
                                    THEN p_related -> 'columns' ELSE '{}' END))
$$;

-- The defects of a column that holds another table's key (a via column, a declared reference):
-- it exists, has the key's type and, unless p_without_key is given, a foreign key to it (else a
-- warning ending in p_without_key).
CREATE OR REPLACE FUNCTION sync._mapping_pointer_defects(
    p_path text, p_table oid, p_column text, p_target oid, p_key pg_catalog.pg_attribute,
    p_without_key text)
RETURNS TABLE (path text, problem text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col pg_catalog.pg_attribute := sync._mapping_column(p_table, p_column);
BEGIN
    IF p_column IS NULL THEN
        RETURN QUERY SELECT p_path, 'must name a column';
    ELSIF col.attname IS NULL THEN
        RETURN QUERY SELECT p_path, pg_catalog.format(
            '%s has no column %I', p_table::pg_catalog.regclass, p_column);
    ELSIF p_key.attname IS NULL THEN
        RETURN;  -- the key's own defect is reported where the key is
    ELSIF col.atttypid <> p_key.atttypid THEN
        RETURN QUERY SELECT p_path, pg_catalog.format(
            '%I is %s but %s (%I) is %s', col.attname,
            pg_catalog.format_type(col.atttypid, col.atttypmod), p_target::pg_catalog.regclass,
            p_key.attname, pg_catalog.format_type(p_key.atttypid, p_key.atttypmod));
    ELSIF p_without_key IS NOT NULL
          AND NOT sync._mapping_has_foreign_key(p_table, col.attnum, p_target, p_key.attnum) THEN
        RETURN QUERY SELECT p_path, pg_catalog.format(
            'warning: no foreign key from %s (%I) to %s (%I): %s', p_table::pg_catalog.regclass,
            col.attname, p_target::pg_catalog.regclass, p_key.attname, p_without_key);
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Literals and source expressions
-- ---------------------------------------------------------------------------------------------

-- The type and modifier a column of type p_type/p_typmod stores its values as: a domain's base
-- type with the domain's modifier (a domain over a domain: the first base type that is not one),
-- any other type as it is. Its length is what a value must fit.
CREATE OR REPLACE FUNCTION sync._mapping_base_type(p_type oid, p_typmod integer)
RETURNS TABLE (type_oid oid, typmod integer)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH RECURSIVE chain (type_oid, typmod, depth) AS (
        SELECT p_type, p_typmod, 0
        UNION ALL
        SELECT t.typbasetype, CASE WHEN t.typtypmod >= 0 THEN t.typtypmod ELSE c.typmod END,
               c.depth + 1
        FROM chain AS c
        JOIN pg_catalog.pg_type AS t ON t.oid = c.type_oid AND t.typtype = 'd'
    )
    SELECT c.type_oid, c.typmod FROM chain AS c ORDER BY c.depth DESC LIMIT 1
$$;

-- The longest value a column of type p_type/p_typmod holds, in characters: n for a varchar(n)
-- or char(n), also behind a domain (its base type's length); NULL for any other type.
CREATE OR REPLACE FUNCTION sync._mapping_max_length(p_type oid, p_typmod integer)
RETURNS integer
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT b.typmod - 4
    FROM sync._mapping_base_type(p_type, p_typmod) AS b
    WHERE b.type_oid IN ('pg_catalog.varchar'::pg_catalog.regtype,
                         'pg_catalog.bpchar'::pg_catalog.regtype)
      AND b.typmod > 4
$$;

-- Why a literal of the mapping (an out value, other, null_as, a create or kind value) does not
-- fit a column of type p_type/p_typmod, or NULL. The cast is tried for real; the message says
-- which type refused, never the literal. A varchar(n)/char(n) is checked by length first: an
-- explicit cast to it would cut the literal silently.
CREATE OR REPLACE FUNCTION sync._mapping_literal_defect(p_value jsonb, p_type oid, p_typmod integer)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    type_name  text := pg_catalog.format_type(p_type, p_typmod);
    -- a domain's length is its base type's (a domain over varchar(16))
    max_length integer := sync._mapping_max_length(p_type, p_typmod);
BEGIN
    IF pg_catalog.jsonb_typeof(p_value) IS NULL
       OR pg_catalog.jsonb_typeof(p_value) NOT IN ('string', 'number', 'boolean') THEN
        RETURN 'is not a literal (a string, number or boolean)';
    END IF;
    IF pg_catalog.length(p_value #>> '{}') > max_length THEN
        RETURN pg_catalog.format('the literal is longer than %s allows', type_name);
    END IF;
    BEGIN
        EXECUTE pg_catalog.format('SELECT %L::%s', p_value #>> '{}', type_name);
    EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
        RETURN pg_catalog.format('the literal does not cast to %s', type_name);
    END;
    RETURN NULL;
END
$$;

-- The defects of one source expression (a `columns` entry, path p_path) written to a column of
-- type p_type/p_typmod: its shape (one form, only the keys its form allows), its fields (snapshot
-- fields other than customer_number), whether its result casts to the column (literals tried,
-- a field's type cast without a value), and a warning when a varchar(n)/char(n) column is
-- shorter than the longest value the contract allows the source to have.
CREATE OR REPLACE FUNCTION sync._mapping_source_defects(
    p_path text, p_source jsonb, p_type oid, p_typmod integer)
RETURNS TABLE (path text, problem text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    source       jsonb := p_source;
    column_type  text := pg_catalog.format_type(p_type, p_typmod);
    column_text  boolean := (SELECT t.typcategory = 'S' FROM pg_catalog.pg_type AS t
                             WHERE t.oid = p_type);
    column_limit integer;
    forms        text[];
    form         text;
    allowed      text[];
    names        text[];
    source_type  oid;
    source_mod   integer;
    -- a domain with a CHECK or NOT NULL refuses values its base type takes
    domain_check boolean := EXISTS (
        SELECT FROM pg_catalog.pg_type AS t
        WHERE t.oid = p_type AND t.typtype = 'd'
          AND (t.typnotnull OR EXISTS (SELECT FROM pg_catalog.pg_constraint AS k
                                       WHERE k.contypid = t.oid)));
    longest      integer;
    literal_key  text;
    literal      jsonb;
    why          text;
BEGIN
    -- a domain's length is its base type's (a domain over varchar(16))
    column_limit := sync._mapping_max_length(p_type, p_typmod);

    -- Shape: a field name, or a table with exactly one of field / join / first_of and only the
    -- modifiers that form allows (codes+other, true+false or format with field only).
    IF pg_catalog.jsonb_typeof(source) = 'string' THEN
        source := pg_catalog.jsonb_build_object('field', source);
    ELSIF pg_catalog.jsonb_typeof(source) IS DISTINCT FROM 'object' THEN
        RETURN QUERY SELECT p_path, 'must be a field name or a transform table';
        RETURN;
    END IF;
    forms := ARRAY(SELECT f FROM pg_catalog.unnest(ARRAY['field', 'join', 'first_of']) AS f
                   WHERE source ? f);
    IF pg_catalog.cardinality(forms) <> 1 THEN
        RETURN QUERY SELECT p_path, 'needs exactly one of field, join, first_of';
        RETURN;
    END IF;
    form := forms[1];
    allowed := CASE form
                   WHEN 'field' THEN ARRAY['field', 'codes', 'other', 'true', 'false', 'format',
                                           'null_as']
                   WHEN 'join' THEN ARRAY['join', 'separator', 'null_as']
                   ELSE ARRAY['first_of', 'null_as']
               END;
    RETURN QUERY
        SELECT p_path || '.' || k, pg_catalog.format('is not a key of a %s transform', form)
        FROM pg_catalog.jsonb_object_keys(source) AS k
        WHERE k <> ALL (allowed)
        ORDER BY k;
    IF form = 'field' AND ((source ? 'codes' OR source ? 'other')::integer
                           + (source ? 'true' OR source ? 'false')::integer
                           + (source ? 'format')::integer) > 1 THEN
        RETURN QUERY SELECT p_path, 'codes, true/false and format exclude each other';
        RETURN;
    END IF;
    IF form = 'field' AND (source ? 'true') <> (source ? 'false') THEN
        RETURN QUERY SELECT p_path, 'needs both true and false';
    END IF;
    IF form = 'field' AND source ? 'other' AND NOT source ? 'codes' THEN
        RETURN QUERY SELECT p_path || '.other', 'is allowed with codes only';
    END IF;
    IF form = 'join' AND source ? 'separator'
       AND pg_catalog.jsonb_typeof(source -> 'separator') IS DISTINCT FROM 'string' THEN
        RETURN QUERY SELECT p_path || '.separator', 'must be a string';
    END IF;

    -- Fields: each a snapshot field; customer_number is placed by customer.number.
    IF form = 'field' THEN
        IF pg_catalog.jsonb_typeof(source -> 'field') IS DISTINCT FROM 'string' THEN
            RETURN QUERY SELECT p_path, 'field must name a field';
            RETURN;
        END IF;
        names := ARRAY[source ->> 'field'];
    ELSIF pg_catalog.jsonb_typeof(source -> form) IS DISTINCT FROM 'array'
          OR pg_catalog.jsonb_array_length(source -> form) = 0
          OR EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(source -> form) AS e
                     WHERE pg_catalog.jsonb_typeof(e) <> 'string') THEN
        RETURN QUERY SELECT p_path || '.' || form, 'must be a non-empty array of field names';
        RETURN;
    ELSE
        names := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(source -> form));
    END IF;
    RETURN QUERY
        SELECT p_path, pg_catalog.format('%s is not a snapshot field', n)
        FROM pg_catalog.unnest(names) AS n
        WHERE NOT EXISTS (SELECT FROM sync._mapping_fields() AS f WHERE f.field = n)
        UNION ALL
        SELECT p_path, 'customer_number is placed by customer.number, not by a column'
        WHERE 'customer_number' = ANY (names);
    IF EXISTS (SELECT FROM pg_catalog.unnest(names) AS n
               WHERE n = 'customer_number'
                  OR NOT EXISTS (SELECT FROM sync._mapping_fields() AS f WHERE f.field = n)) THEN
        RETURN;
    END IF;

    -- The result and the column's type. join and format make text; codes and true/false make
    -- their literals; field and first_of keep the field's type, cast to the column's.
    IF form = 'join' OR source ? 'format' THEN
        IF NOT column_text THEN
            RETURN QUERY SELECT p_path, pg_catalog.format(
                '%s makes text; the column is %s', CASE form WHEN 'join' THEN 'join'
                                                   ELSE 'format' END, column_type);
        END IF;
        IF source ? 'format' AND NOT EXISTS (
               SELECT FROM sync._mapping_fields() AS f
               WHERE f.field = names[1]
                 AND f.type_oid IN ('pg_catalog.date'::pg_catalog.regtype,
                                    'pg_catalog.timestamptz'::pg_catalog.regtype)) THEN
            RETURN QUERY SELECT p_path, pg_catalog.format(
                'format needs a date or timestamptz field; %s is not one', names[1]);
        END IF;
        IF form = 'join' THEN
            SELECT pg_catalog.sum(f.max_length)
                   + pg_catalog.length(coalesce(source ->> 'separator', ' '))
                     * (pg_catalog.cardinality(names) - 1)
            INTO longest
            FROM pg_catalog.unnest(names) AS n JOIN sync._mapping_fields() AS f ON f.field = n;
        END IF;
    ELSIF source ? 'codes' OR source ? 'true' THEN
        IF source ? 'codes' AND (pg_catalog.jsonb_typeof(source -> 'codes') IS DISTINCT FROM
                                 'object' OR source -> 'codes' = '{}'::jsonb) THEN
            RETURN QUERY SELECT p_path || '.codes', 'must be a table of "in" = out values';
        END IF;
        IF source ? 'true' AND NOT EXISTS (
               SELECT FROM sync._mapping_fields() AS f
               WHERE f.field = names[1] AND f.type_oid = 'pg_catalog.bool'::pg_catalog.regtype)
        THEN
            RETURN QUERY SELECT p_path, pg_catalog.format(
                'true/false need a boolean field; %s is not one', names[1]);
        END IF;
        FOR literal_key, literal IN
            SELECT 'codes.' || c.key, c.value FROM pg_catalog.jsonb_each(
                CASE WHEN pg_catalog.jsonb_typeof(source -> 'codes') = 'object'
                     THEN source -> 'codes' ELSE '{}' END) AS c
            UNION ALL
            SELECT k, source -> k FROM pg_catalog.unnest(ARRAY['other', 'true', 'false']) AS k
            WHERE source ? k
        LOOP
            why := sync._mapping_literal_defect(literal, p_type, p_typmod);
            IF why IS NOT NULL THEN
                RETURN QUERY SELECT p_path || '.' || literal_key, why;
            END IF;
        END LOOP;
    ELSE
        -- first_of: coalesce needs one type category (text-like fields with text-like ones)
        IF (SELECT pg_catalog.count(DISTINCT t.typcategory)
            FROM pg_catalog.unnest(names) AS n
            JOIN sync._mapping_fields() AS f ON f.field = n
            JOIN pg_catalog.pg_type AS t ON t.oid = f.type_oid) > 1 THEN
            RETURN QUERY SELECT p_path, 'first_of needs fields of one kind of type';
            RETURN;
        END IF;
        SELECT f.type_oid, f.typmod INTO source_type, source_mod
        FROM sync._mapping_fields() AS f WHERE f.field = names[1];
        SELECT pg_catalog.max(f.max_length) INTO longest
        FROM pg_catalog.unnest(names) AS n JOIN sync._mapping_fields() AS f ON f.field = n;
        BEGIN
            -- a cast of NULL: is there a cast at all (no value is converted)
            EXECUTE pg_catalog.format('SELECT NULL::%s::%s',
                                      pg_catalog.format_type(source_type, source_mod),
                                      column_type);
            IF (SELECT t.typcategory = 'S' FROM pg_catalog.pg_type AS t
                WHERE t.oid = source_type) AND NOT column_text THEN
                RETURN QUERY SELECT p_path, pg_catalog.format(
                    'warning: %s is text, cast to %s; a value that does not cast is a dead '
                    'letter', names[1], column_type);
            END IF;
        EXCEPTION
            -- the cast exists, the NULL itself is refused (a NOT NULL domain, a CHECK): the
            -- domain's warning below says so
            WHEN not_null_violation OR check_violation THEN
                NULL;
            WHEN cannot_coerce OR datatype_mismatch OR undefined_function THEN
            RETURN QUERY SELECT p_path, pg_catalog.format(
                '%s is %s, which does not cast to %s', names[1],
                pg_catalog.format_type(source_type, source_mod), column_type);
        END;
        IF domain_check THEN
            RETURN QUERY SELECT p_path, pg_catalog.format(
                'warning: the column is of the domain %s, whose constraints may refuse a '
                'value of %s; a refused value is a dead letter', column_type, names[1]);
        END IF;
    END IF;

    IF source ? 'null_as' THEN
        why := sync._mapping_literal_defect(source -> 'null_as', p_type, p_typmod);
        IF why IS NOT NULL THEN
            RETURN QUERY SELECT p_path || '.null_as', why;
        END IF;
    END IF;

    IF longest > column_limit THEN
        RETURN QUERY SELECT p_path, pg_catalog.format(
            'warning: the column is %s but %s can be %s characters long; a longer value is a '
            'dead letter', column_type, pg_catalog.array_to_string(names, ' + '), longest);
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Consent columns
-- ---------------------------------------------------------------------------------------------

-- The consent fields (boolean snapshot fields a policy can name) a mapping document stores in
-- a column of the customer table p_customer, with how the column states them: `as_is` when the
-- column is boolean and its source is the plain field (optionally with null_as), so the column
-- is the field and a local change of it is a local decision (installing the mapping puts the
-- consent triggers on the table: gdpr._bind_local_consents, which takes the TRIGGER
-- privilege); else `true_value` when
-- the source is a true/false transform with two distinct literals (the column reads as granted
-- when it holds the true literal). Other transforms (codes, join, ...) are not listed: the
-- column does not state the field. The check (the document to install) and the consent
-- functions (the active one: gdpr._stored_consent_fields) both ask.
CREATE OR REPLACE FUNCTION sync._mapping_consent_columns(p_document jsonb, p_customer oid)
RETURNS TABLE (field text, column_name name, as_is boolean, true_value text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.field, a.attname,
           a.atttypid = 'pg_catalog.bool'::pg_catalog.regtype AND s.plain,
           CASE WHEN s.literals THEN s.source ->> 'true' END
    FROM pg_catalog.jsonb_each(
        CASE WHEN pg_catalog.jsonb_typeof(p_document #> '{customer,columns}') = 'object'
             THEN p_document #> '{customer,columns}' ELSE '{}' END) AS o
    CROSS JOIN LATERAL (
        SELECT o.value AS source,
               CASE pg_catalog.jsonb_typeof(o.value)
                   WHEN 'string' THEN o.value #>> '{}'
                   WHEN 'object' THEN o.value ->> 'field'
               END AS field,
               CASE pg_catalog.jsonb_typeof(o.value)
                   WHEN 'string' THEN true
                   WHEN 'object' THEN (o.value - 'null_as')
                                      = pg_catalog.jsonb_build_object('field', o.value -> 'field')
                   ELSE false
               END AS plain,
               -- a true/false transform and nothing else (null_as aside), two distinct literals
               CASE WHEN pg_catalog.jsonb_typeof(o.value) = 'object'
                    THEN (o.value - 'null_as' - 'true' - 'false')
                         = pg_catalog.jsonb_build_object('field', o.value -> 'field')
                         AND o.value ? 'true' AND o.value ? 'false'
                         AND (o.value ->> 'true') IS DISTINCT FROM (o.value ->> 'false')
                    ELSE false
               END AS literals) AS s
    JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = p_customer AND a.attname = o.key AND a.attnum > 0 AND NOT a.attisdropped
    -- a boolean field of the snapshot (the contract's types) that a policy can name as its
    -- consent field: the list of gdpr.policy.consent_field's CHECK (sql/80_gdpr_schema.sql).
    -- Another boolean field kept as is (blocked) states no consent: its column takes no
    -- consent triggers and needs no TRIGGER privilege
    WHERE s.field IN (SELECT f.field FROM sync._mapping_fields() AS f
                      WHERE f.type_oid = 'pg_catalog.bool'::pg_catalog.regtype)
      AND s.field IN ('newsletter_opt_in')
      AND (s.plain OR s.literals)
    ORDER BY o.key
$$;

-- ---------------------------------------------------------------------------------------------
-- The facts retention needs ([gdpr])
-- ---------------------------------------------------------------------------------------------

-- What a [gdpr] fact can be read from a column of type p_type: 'time' (date, timestamp,
-- timestamptz: a retention period counts from it), 'text' (text, varchar, char: a customer
-- group), NULL otherwise. The check below and retention (sql/85_gdpr_retention.sql) both ask.
CREATE OR REPLACE FUNCTION sync._mapping_fact_kind(p_type oid)
RETURNS text
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE
               WHEN p_type IN ('pg_catalog.date'::pg_catalog.regtype,
                               'pg_catalog.timestamp'::pg_catalog.regtype,
                               'pg_catalog.timestamptz'::pg_catalog.regtype) THEN 'time'
               WHEN p_type IN ('pg_catalog.text'::pg_catalog.regtype,
                               'pg_catalog.varchar'::pg_catalog.regtype,
                               'pg_catalog.bpchar'::pg_catalog.regtype) THEN 'text'
           END
$$;

-- The defects of the optional [gdpr] table (docs/mapping.md): its keys, the customer columns
-- it names (created and last activity: a date, timestamp or timestamptz; group: text-like; a
-- created column that may be NULL is a warning), and last_order: a date column of a table that
-- refers to the customer (a foreign key to the key, or a [[reference]] of the document), by one
-- column or the one customer_column names. p_customer is NULL when the customer table is
-- missing (reported where it is declared).
CREATE OR REPLACE FUNCTION sync._mapping_gdpr_defects(
    p_document jsonb, p_customer oid, p_key pg_catalog.pg_attribute)
RETURNS TABLE (path text, problem text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    spec       jsonb := p_document -> 'gdpr';
    last_order jsonb := p_document #> '{gdpr,last_order}';
    entry      record;
    col        pg_catalog.pg_attribute;
    table_oid  oid;
    links      text[];
    named      text;
BEGIN
    IF pg_catalog.jsonb_typeof(spec) IS DISTINCT FROM 'object' THEN
        RETURN QUERY SELECT 'gdpr', 'must be a table';
        RETURN;
    END IF;
    RETURN QUERY
        SELECT 'gdpr.' || k, 'is not a key of [gdpr] (created_column, last_activity_column, '
                             'group_column, last_order)'
        FROM pg_catalog.jsonb_object_keys(spec) AS k
        WHERE k NOT IN ('created_column', 'last_activity_column', 'group_column', 'last_order')
        ORDER BY k;
    -- the customer's own columns
    FOR entry IN
        SELECT v.key, v.kind
        FROM (VALUES (1, 'created_column', 'time'), (2, 'last_activity_column', 'time'),
                     (3, 'group_column', 'text')) AS v (ord, key, kind)
        WHERE spec ? v.key
        ORDER BY v.ord
    LOOP
        IF pg_catalog.jsonb_typeof(spec -> entry.key) <> 'string' THEN
            RETURN QUERY SELECT 'gdpr.' || entry.key, 'must be a column name (a string)';
            CONTINUE;
        END IF;
        CONTINUE WHEN p_customer IS NULL;
        col := sync._mapping_column(p_customer, spec ->> entry.key);
        IF col.attname IS NULL THEN
            RETURN QUERY SELECT 'gdpr.' || entry.key, pg_catalog.format(
                '%s has no column %I', p_customer::pg_catalog.regclass, spec ->> entry.key);
        ELSIF entry.kind = 'time'
              AND sync._mapping_fact_kind(col.atttypid) IS DISTINCT FROM 'time' THEN
            RETURN QUERY SELECT 'gdpr.' || entry.key, pg_catalog.format(
                '%I is %s; a retention period counts from a date, timestamp or timestamptz '
                'column', col.attname, pg_catalog.format_type(col.atttypid, col.atttypmod));
        ELSIF entry.kind = 'text'
              AND sync._mapping_fact_kind(col.atttypid) IS DISTINCT FROM 'text' THEN
            RETURN QUERY SELECT 'gdpr.' || entry.key, pg_catalog.format(
                '%I is %s; customer_group membership compares a text, varchar or char column',
                col.attname, pg_catalog.format_type(col.atttypid, col.atttypmod));
        ELSIF entry.key = 'created_column' AND NOT col.attnotnull THEN
            RETURN QUERY SELECT 'gdpr.' || entry.key, pg_catalog.format(
                'warning: %I may be NULL: a retention period cannot count from NULL, so a '
                'customer without it is held until a later fact (last activity, last order) '
                'is known', col.attname);
        END IF;
    END LOOP;

    -- the last order: { schema, table, column [, customer_column] }
    <<last_order_checks>>
    BEGIN
        EXIT last_order_checks WHEN NOT spec ? 'last_order';
        IF pg_catalog.jsonb_typeof(last_order) IS DISTINCT FROM 'object' THEN
            RETURN QUERY SELECT 'gdpr.last_order',
                                'must be a table { schema, table, column }';
            EXIT last_order_checks;
        END IF;
        RETURN QUERY
            SELECT 'gdpr.last_order.' || k, 'is not a key of last_order (schema, table, '
                                            'column, customer_column)'
            FROM pg_catalog.jsonb_object_keys(last_order) AS k
            WHERE k NOT IN ('schema', 'table', 'column', 'customer_column')
            UNION ALL
            SELECT 'gdpr.last_order.' || k, 'is missing'
            FROM pg_catalog.unnest(ARRAY['schema', 'table', 'column']) AS k
            WHERE NOT last_order ? k
            UNION ALL
            SELECT 'gdpr.last_order.' || k, 'must be a string'
            FROM pg_catalog.unnest(ARRAY['schema', 'table', 'column', 'customer_column']) AS k
            WHERE last_order ? k AND pg_catalog.jsonb_typeof(last_order -> k) <> 'string';
        EXIT last_order_checks WHEN p_customer IS NULL OR p_key.attname IS NULL;
        table_oid := sync._mapping_table(last_order ->> 'schema', last_order ->> 'table');
        IF table_oid IS NULL THEN
            RETURN QUERY SELECT * FROM sync._mapping_missing_table(
                'gdpr.last_order', last_order ->> 'schema', last_order ->> 'table');
            EXIT last_order_checks;
        END IF;
        col := sync._mapping_column(table_oid, last_order ->> 'column');
        IF last_order ->> 'column' IS NULL THEN
            NULL;  -- "is missing"
        ELSIF col.attname IS NULL THEN
            RETURN QUERY SELECT 'gdpr.last_order.column', pg_catalog.format(
                '%s has no column %I', table_oid::pg_catalog.regclass, last_order ->> 'column');
        ELSIF sync._mapping_fact_kind(col.atttypid) IS DISTINCT FROM 'time' THEN
            RETURN QUERY SELECT 'gdpr.last_order.column', pg_catalog.format(
                '%I is %s; the last order''s time is a date, timestamp or timestamptz column',
                col.attname, pg_catalog.format_type(col.atttypid, col.atttypmod));
        END IF;
        -- its columns that refer to the customer: single-column foreign keys to the key (on
        -- the table itself, a partitioned table's on its parent) and declared references
        SELECT pg_catalog.array_agg(DISTINCT x.name ORDER BY x.name) INTO links
        FROM (
            SELECT a.attname::text AS name
            FROM pg_catalog.pg_constraint AS k
            JOIN pg_catalog.pg_attribute AS a
                ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
            WHERE k.contype = 'f' AND k.conparentid = 0 AND k.conrelid = table_oid
              AND k.confrelid = p_customer AND k.confkey = ARRAY[p_key.attnum]
              AND pg_catalog.cardinality(k.conkey) = 1
            UNION
            SELECT r.value ->> 'column'
            FROM pg_catalog.jsonb_array_elements(
                     CASE WHEN pg_catalog.jsonb_typeof(p_document -> 'reference') = 'array'
                          THEN p_document -> 'reference' ELSE '[]' END) AS r (value)
            WHERE r.value ->> 'schema' = last_order ->> 'schema'
              AND r.value ->> 'table' = last_order ->> 'table'
              AND (sync._mapping_column(table_oid, r.value ->> 'column')).atttypid
                  = p_key.atttypid
        ) AS x
        WHERE x.name IS NOT NULL;
        named := last_order ->> 'customer_column';
        IF named IS NOT NULL AND named <> ALL (coalesce(links, '{}')) THEN
            RETURN QUERY SELECT 'gdpr.last_order.customer_column', pg_catalog.format(
                '%I does not refer to the customer: no foreign key from it to %s (%I) and no '
                '[[reference]] declares it', named, p_customer::pg_catalog.regclass,
                p_key.attname);
        ELSIF named IS NULL AND coalesce(pg_catalog.cardinality(links), 0) = 0 THEN
            RETURN QUERY SELECT 'gdpr.last_order.table', pg_catalog.format(
                '%s is not customer-linked: it has no foreign key to %s (%I) and no '
                '[[reference]] declares a column of it', table_oid::pg_catalog.regclass,
                p_customer::pg_catalog.regclass, p_key.attname);
        ELSIF named IS NULL AND pg_catalog.cardinality(links) > 1 THEN
            RETURN QUERY SELECT 'gdpr.last_order', pg_catalog.format(
                '%s refers to the customer by %s: name the one of the order''s customer with '
                'customer_column', table_oid::pg_catalog.regclass,
                pg_catalog.array_to_string(links, ', '));
        END IF;
    END last_order_checks;
END
$$;

-- Warnings of customer-linked tables that look like what a shop must keep while they are not
-- declared kept for bookkeeping (sync.anonymise_rule): a tritonX delete of a customer without
-- bookkeeping rows removes the customer's rows of every linked table. A linked table (a foreign
-- key to the customer key, or a declared reference; one that is a [[related]] table of the
-- document is the feed's, not the shop's record) is warned of when its name says it holds
-- orders, invoices or payments (order, invoice, payment, receipt, transaction; Dutch bestelling,
-- factuur, betaling; Swedish faktura, betalning, kvitto: any part of the lower-case name), or
-- when another table refers to it by a foreign key that does not delete along with it (order
-- lines under ON DELETE NO ACTION, RESTRICT, SET NULL or SET DEFAULT: the shop's schema keeps
-- them). Not warned of: a table declared bookkeeping, or declared delete_rows (its rows are
-- meant to go), or one whose referring rows all go with it (ON DELETE CASCADE: cart lines).
-- One row per table, at the path that links it (customer.table, reference[i].table), with the
-- statement that declares it. The linked tables are those sync._owner_needs asks DELETE on
-- outside the customer table and the [[related]] ones: the same list the check's privileges
-- come from.
CREATE OR REPLACE FUNCTION sync._mapping_bookkeeping_warnings(p_document jsonb,
                                                               p_customer oid)
RETURNS TABLE (path text, problem text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- PL/pgSQL: sync._owner_needs is made later, in sql/45_coverage.sql
    RETURN QUERY
    SELECT l.path, pg_catalog.format(
        'warning: %s is linked to the customer and not kept for bookkeeping: a tritonX delete '
        'of a customer removes its rows (%s); if the shop must keep them, declare it (a delete '
        'then anonymises the customer): INSERT INTO sync.anonymise_rule (table_schema, '
        'table_name, action, bookkeeping) VALUES (%L, %L, ''scrub'', true) ON CONFLICT '
        '(table_schema, table_name) DO UPDATE SET action = ''scrub'', bookkeeping = true; '
        'if they are meant to go, declare it delete_rows',
        l.relation, pg_catalog.concat_ws('; ',
            CASE WHEN l.named THEN 'its name says orders, invoices or payments' END,
            CASE WHEN l.referrer IS NOT NULL
                 THEN pg_catalog.format('%s refers to them', l.referrer) END),
        n.nspname, r.relname)
    FROM (
        SELECT DISTINCT ON (x.relation) x.path, x.relation, x.ord
        FROM sync._owner_needs(p_document) AS x
        WHERE x.privilege = 'DELETE' AND x.relation::pg_catalog.oid <> p_customer
          AND x.path NOT LIKE 'related[%'
        ORDER BY x.relation, x.ord
    ) AS d
    JOIN pg_catalog.pg_class AS r ON r.oid = d.relation
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    LEFT JOIN sync.anonymise_rule AS ar
        ON ar.table_schema = n.nspname AND ar.table_name = r.relname
    CROSS JOIN LATERAL (
        SELECT d.path, d.relation, d.ord,
               pg_catalog.lower(r.relname) ~ ('order|invoice|payment|receipt|transaction'
                                              '|bestelling|factu|betaling|faktura|betalning'
                                              '|kvitto') AS named,
               (SELECT k.conrelid::pg_catalog.regclass
                FROM pg_catalog.pg_constraint AS k
                WHERE k.contype = 'f' AND k.confrelid = d.relation AND k.conparentid = 0
                  AND k.conrelid <> d.relation AND k.confdeltype <> 'c'
                ORDER BY k.conrelid::pg_catalog.regclass::text
                LIMIT 1) AS referrer
    ) AS l
    WHERE NOT coalesce(ar.bookkeeping, false)
      AND coalesce(ar.action, 'scrub') <> 'delete_rows'
      AND (l.named OR l.referrer IS NOT NULL)
    ORDER BY l.ord, l.relation::text;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The check
-- ---------------------------------------------------------------------------------------------
-- Every defect of a mapping document against the live catalog, in sections: the document, each
-- shop table (the customer table, then each [[related]]: existence, key, how a key is made,
-- number and version, via, columns, create, NOT NULL coverage), the fields, the declared
-- references, and the owner role's privileges on the shop's tables (sync._owner_needs,
-- sql/45_coverage.sql: coverage asks for the same ones). A table that does not
-- exist stops the checks that need it, so one mistake gives one row, not twenty. The shape is
-- checked here too (the Python loader checks it first, with lines): whoever calls this with a
-- document of their own gets rows, never an error.
CREATE OR REPLACE FUNCTION sync.mapping_defects(p_document jsonb)
RETURNS TABLE (path text, problem text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner_role     text := sync.role_name('owner');
    owner_exists   boolean;
    spec           record;
    t              jsonb;
    at             text;
    table_oid      oid;
    place          text;
    key_column     pg_catalog.pg_attribute;
    col            pg_catalog.pg_attribute;
    customer_oid   oid;
    customer_key   pg_catalog.pg_attribute;
    customer_spec  jsonb := p_document -> 'customer';
    reserved       text[];  -- columns the engine writes itself: never in columns or create
    pointers       text[];  -- customer columns that point to related rows (their via)
    entry          record;
    why            text;
    sequence_oid   oid;
BEGIN
    -- The document -------------------------------------------------------------------------
    IF pg_catalog.jsonb_typeof(p_document) IS DISTINCT FROM 'object' THEN
        RETURN QUERY SELECT '', 'the mapping is not a JSON object';
        RETURN;
    END IF;
    IF p_document -> 'format' IS DISTINCT FROM '1'::jsonb THEN
        RETURN QUERY SELECT 'format', 'must be 1';
    END IF;
    RETURN QUERY
        SELECT k, 'is not a key of a format-1 mapping'
        FROM pg_catalog.jsonb_object_keys(p_document) AS k
        WHERE k NOT IN ('format', 'customer', 'related', 'reference', 'not_stored', 'gdpr')
        ORDER BY k;
    IF pg_catalog.jsonb_typeof(customer_spec) IS DISTINCT FROM 'object' THEN
        RETURN QUERY SELECT 'customer', 'is missing: the [customer] table';
        RETURN;
    END IF;
    IF p_document ? 'related'
       AND pg_catalog.jsonb_typeof(p_document -> 'related') IS DISTINCT FROM 'array' THEN
        RETURN QUERY SELECT 'related', 'must be an array of tables ([[related]])';
        RETURN;
    END IF;
    SELECT pg_catalog.array_agg(r.value #>> '{via,customer_column}')
    INTO pointers
    FROM pg_catalog.jsonb_array_elements(coalesce(p_document -> 'related', '[]')) AS r(value)
    WHERE pg_catalog.jsonb_typeof(r.value #> '{via,customer_column}') = 'string';
    owner_exists := EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.rolname = owner_role);
    IF NOT owner_exists THEN
        RETURN QUERY SELECT 'customer', pg_catalog.format(
            'the owner role %s does not exist: install syncctl first', owner_role);
    END IF;

    -- Each shop table: the customer table first, then each [[related]] -------------------------
    FOR spec IN
        SELECT 'customer' AS at, customer_spec AS t, true AS is_customer, 0 AS ord
        UNION ALL
        SELECT pg_catalog.format('related[%s]', r.ord - 1), r.value, false, r.ord
        FROM pg_catalog.jsonb_array_elements(coalesce(p_document -> 'related', '[]'))
             WITH ORDINALITY AS r(value, ord)
        ORDER BY 4
    LOOP
        at := spec.at;
        t := spec.t;
        IF pg_catalog.jsonb_typeof(t) IS DISTINCT FROM 'object' THEN
            RETURN QUERY SELECT at, 'must be a table';
            CONTINUE;
        END IF;
        RETURN QUERY
            SELECT at || '.' || k, 'is missing'
            FROM pg_catalog.unnest(ARRAY['schema', 'table', 'key', 'key_generate']
                                   || CASE WHEN spec.is_customer THEN ARRAY['number', 'version']
                                           ELSE ARRAY['name', 'via', 'on_anonymise'] END) AS k
            WHERE NOT t ? k
            UNION ALL
            SELECT at || '.' || k, 'must be a string'
            FROM pg_catalog.unnest(ARRAY['schema', 'table', 'key', 'key_generate', 'name',
                                         'on_anonymise', 'key_sequence']) AS k
            WHERE t ? k AND pg_catalog.jsonb_typeof(t -> k) <> 'string';
        IF NOT spec.is_customer THEN
            IF coalesce(t ->> 'name', '') !~ '^[a-z_][a-z0-9_]{0,31}$' THEN
                RETURN QUERY SELECT at || '.name', 'must match [a-z_][a-z0-9_]* (at most 32)';
            ELSIF (SELECT pg_catalog.count(*)
                   FROM pg_catalog.jsonb_array_elements(p_document -> 'related') AS r(value)
                   WHERE r.value ->> 'name' = t ->> 'name') > 1 THEN
                RETURN QUERY SELECT at || '.name', 'is used by another [[related]] table';
            END IF;
            IF t ->> 'on_anonymise' IS DISTINCT FROM 'scrub_or_detach' THEN
                RETURN QUERY SELECT at || '.on_anonymise', 'must be scrub_or_detach';
            END IF;
            -- a table the customer row points to that no tritonX field feeds (a billing
            -- address the shop keeps): the write leaves it and the pointer alone, merges and
            -- erasures follow it; so it creates no row and needs no create values, and a
            -- pointer that may not be NULL could never be written for a new customer
            IF sync._mapping_unfed(t) THEN
                IF pg_catalog.jsonb_typeof(t -> 'create') = 'object' AND t -> 'create' <> '{}' THEN
                    RETURN QUERY SELECT at || '.create',
                        'is never written: no tritonX field feeds this table (no columns), so '
                        'the write never creates its rows';
                END IF;
                IF customer_oid IS NOT NULL
                   AND (sync._mapping_column(customer_oid, t #>> '{via,customer_column}')).attnotnull
                THEN
                    RETURN QUERY SELECT at || '.via.customer_column', pg_catalog.format(
                        '%I may not be NULL, and no tritonX field feeds this table (no columns): '
                        'a new customer could never be written', t #>> '{via,customer_column}');
                END IF;
            END IF;
        END IF;

        -- The table exists (a plain or partitioned table, by its exact names).
        table_oid := sync._mapping_table(t ->> 'schema', t ->> 'table');
        IF table_oid IS NULL THEN
            RETURN QUERY SELECT * FROM sync._mapping_missing_table(at, t ->> 'schema',
                                                                   t ->> 'table');
            CONTINUE;
        END IF;
        -- The key: a supported type, unique on its own, made the way key_generate says.
        key_column := sync._mapping_column(table_oid, t ->> 'key');
        IF t ->> 'key' IS NULL THEN
            NULL;  -- "is missing"
        ELSIF key_column.attname IS NULL THEN
            RETURN QUERY SELECT at || '.key', pg_catalog.format(
                '%s has no column %I', table_oid::pg_catalog.regclass, t ->> 'key');
        ELSE
            IF key_column.atttypid NOT IN ('pg_catalog.int2'::pg_catalog.regtype,
                                           'pg_catalog.int4'::pg_catalog.regtype,
                                           'pg_catalog.int8'::pg_catalog.regtype,
                                           'pg_catalog.uuid'::pg_catalog.regtype,
                                           'pg_catalog.text'::pg_catalog.regtype,
                                           'pg_catalog.varchar'::pg_catalog.regtype,
                                           'pg_catalog.bytea'::pg_catalog.regtype) THEN
                RETURN QUERY SELECT at || '.key', pg_catalog.format(
                    'key type %s is not supported (smallint, integer, bigint, uuid, text, '
                    'varchar, bytea)',
                    pg_catalog.format_type(key_column.atttypid, key_column.atttypmod));
            END IF;
            IF NOT sync._mapping_is_unique(table_oid, key_column.attnum) THEN
                RETURN QUERY SELECT at || '.key', pg_catalog.format(
                    '%I has no unique index on it alone (a primary key, say)', key_column.attname);
            END IF;
            why := CASE
                WHEN key_column.attidentity <> '' AND t ->> 'key_generate' <> 'identity' THEN
                    pg_catalog.format('%I is an identity column: key_generate = "identity"',
                                      key_column.attname)
                ELSE CASE t ->> 'key_generate'
                WHEN 'identity' THEN
                    CASE WHEN key_column.attidentity = '' THEN
                        pg_catalog.format('%I is not an identity column', key_column.attname) END
                WHEN 'default' THEN
                    CASE WHEN NOT key_column.atthasdef OR key_column.attgenerated <> '' THEN
                        pg_catalog.format('%I has no default', key_column.attname) END
                WHEN 'uuid' THEN
                    -- a text or varchar key takes the uuid's text form (36 characters), a bytea
                    -- key its 16 bytes (a binary uuid)
                    CASE WHEN key_column.atttypid NOT IN ('pg_catalog.uuid'::pg_catalog.regtype,
                                                          'pg_catalog.text'::pg_catalog.regtype,
                                                          'pg_catalog.varchar'::pg_catalog.regtype,
                                                          'pg_catalog.bytea'::pg_catalog.regtype)
                              OR (key_column.atttypid = 'pg_catalog.varchar'::pg_catalog.regtype
                                  AND key_column.atttypmod > 4
                                  AND key_column.atttypmod - 4 < 36) THEN
                        pg_catalog.format('gen_random_uuid() makes a uuid, its text of 36 '
                                          'characters or its 16 bytes; %I is %s',
                                          key_column.attname,
                                          pg_catalog.format_type(key_column.atttypid,
                                                                 key_column.atttypmod)) END
                WHEN 'sequence' THEN
                    -- a text or varchar key takes the number's text form
                    CASE WHEN key_column.atttypid NOT IN ('pg_catalog.int2'::pg_catalog.regtype,
                                                          'pg_catalog.int4'::pg_catalog.regtype,
                                                          'pg_catalog.int8'::pg_catalog.regtype,
                                                          'pg_catalog.text'::pg_catalog.regtype,
                                                          'pg_catalog.varchar'::pg_catalog.regtype)
                        THEN pg_catalog.format('a sequence makes integers (or their text); '
                                               '%I is %s',
                                               key_column.attname,
                                               pg_catalog.format_type(key_column.atttypid,
                                                                      key_column.atttypmod)) END
                ELSE 'must be identity, default, uuid or sequence'
            END END;
            IF why IS NOT NULL THEN
                RETURN QUERY SELECT at || '.key_generate', why;
            END IF;
        END IF;
        sequence_oid := NULL;
        IF t ->> 'key_generate' = 'sequence' THEN
            sequence_oid := sync._mapping_sequence(t ->> 'key_sequence');
            IF sequence_oid IS NULL THEN
                RETURN QUERY SELECT at || '.key_sequence', CASE
                    WHEN t ->> 'key_sequence' IS NULL THEN 'is missing (key_generate = sequence)'
                    ELSE 'the sequence does not exist' END;
            END IF;
        ELSIF t ? 'key_sequence' THEN
            RETURN QUERY SELECT at || '.key_sequence', 'only with key_generate = "sequence"';
        END IF;

        -- Columns the engine writes itself may not be mapped: the key, the number and version
        -- columns, the pointer to a related row (customer) or to the customer and its kind.
        reserved := pg_catalog.array_remove(ARRAY[t ->> 'key'], NULL);
        IF spec.is_customer THEN
            customer_oid := table_oid;
            customer_key := key_column;
            reserved := pg_catalog.array_remove(
                reserved || ARRAY[t #>> '{number,column}', t #>> '{version,column}']
                || coalesce(pointers, '{}'), NULL);

            -- Where the tritonX number and the version guard live: "link" (sync.customer_link)
            -- or a column of the customer table, text-like and unique for the number, integer
            -- or bigint for the version.
            FOREACH place IN ARRAY ARRAY['number', 'version'] LOOP
                CONTINUE WHEN t -> place = '"link"'::jsonb;
                col := sync._mapping_column(table_oid, t -> place ->> 'column');
                IF pg_catalog.jsonb_typeof(t -> place) IS DISTINCT FROM 'object'
                   OR pg_catalog.jsonb_typeof(t -> place -> 'column') IS DISTINCT FROM 'string'
                THEN
                    RETURN QUERY SELECT at || '.' || place,
                                        'must be "link" or { column = "..." }';
                    CONTINUE;
                ELSIF col.attname IS NULL THEN
                    RETURN QUERY SELECT at || '.' || place || '.column', pg_catalog.format(
                        '%s has no column %I', table_oid::pg_catalog.regclass,
                        t -> place ->> 'column');
                    CONTINUE;
                END IF;
                why := CASE
                    WHEN col.attgenerated <> '' OR col.attidentity <> '' THEN
                        pg_catalog.format('%I is a generated or identity column', col.attname)
                    WHEN place = 'version'
                         AND col.atttypid NOT IN ('pg_catalog.int4'::pg_catalog.regtype,
                                                  'pg_catalog.int8'::pg_catalog.regtype) THEN
                        pg_catalog.format('%I is %s; the version guard needs an integer or '
                                          'bigint column', col.attname,
                                          pg_catalog.format_type(col.atttypid, col.atttypmod))
                    WHEN place = 'number' AND (SELECT ty.typcategory FROM pg_catalog.pg_type AS ty
                                               WHERE ty.oid = col.atttypid) <> 'S' THEN
                        pg_catalog.format('%I is %s; the tritonX number needs a text, varchar or '
                                          'char column', col.attname,
                                          pg_catalog.format_type(col.atttypid, col.atttypmod))
                    WHEN place = 'number' AND NOT sync._mapping_is_unique(table_oid, col.attnum)
                        THEN pg_catalog.format('%I has no unique index on it alone', col.attname)
                END;
                IF why IS NOT NULL THEN
                    RETURN QUERY SELECT at || '.' || place || '.column', why;
                ELSIF place = 'number' AND col.atttypmod > 4 AND col.atttypmod - 4 < 32 THEN
                    -- the contract's customer_number is varchar(32)
                    RETURN QUERY SELECT at || '.number.column', pg_catalog.format(
                        'warning: %I is %s but a tritonX number can be 32 characters long; a '
                        'customer with a longer one is a dead letter', col.attname,
                        pg_catalog.format_type(col.atttypid, col.atttypmod));
                END IF;
            END LOOP;
        ELSE
            -- How the related row joins the customer.
            IF pg_catalog.jsonb_typeof(t -> 'via') IS DISTINCT FROM 'object'
               OR (t -> 'via' ? 'customer_column') = (t -> 'via' ? 'column')
               OR (t -> 'via' ? 'kind' AND NOT t -> 'via' ? 'column') THEN
                RETURN QUERY SELECT at || '.via',
                    'must be { customer_column = "..." } or { column = "...", kind = {...} }';
            ELSIF t -> 'via' ? 'customer_column' AND customer_oid IS NOT NULL THEN
                RETURN QUERY SELECT * FROM sync._mapping_pointer_defects(
                    at || '.via.customer_column', customer_oid, t #>> '{via,customer_column}',
                    table_oid, key_column, 'the shop''s own writes are not checked');
            ELSIF t -> 'via' ? 'column' THEN
                reserved := pg_catalog.array_remove(
                    reserved || ARRAY[t #>> '{via,column}', t #>> '{via,kind,column}'], NULL);
                IF customer_oid IS NOT NULL THEN
                    RETURN QUERY SELECT * FROM sync._mapping_pointer_defects(
                        at || '.via.column', table_oid, t #>> '{via,column}', customer_oid,
                        customer_key, 'merges and coverage find this table through the '
                                      'mapping only');
                END IF;
                IF t -> 'via' ? 'kind' THEN
                    col := sync._mapping_column(table_oid, t #>> '{via,kind,column}');
                    IF t #>> '{via,kind,column}' IS NULL THEN
                        RETURN QUERY SELECT at || '.via.kind.column', 'must name a column';
                    ELSIF col.attname IS NULL THEN
                        RETURN QUERY SELECT at || '.via.kind.column', pg_catalog.format(
                            '%s has no column %I', table_oid::pg_catalog.regclass,
                            t #>> '{via,kind,column}');
                    ELSE
                        why := sync._mapping_literal_defect(t #> '{via,kind,value}',
                                                            col.atttypid, col.atttypmod);
                        IF why IS NOT NULL THEN
                            RETURN QUERY SELECT at || '.via.kind.value', why;
                        END IF;
                    END IF;
                END IF;
            END IF;
        END IF;

        -- The columns tritonX owns: they exist, are plain columns the engine may write, and
        -- their source fits (sync._mapping_source_defects).
        IF t ? 'columns' AND pg_catalog.jsonb_typeof(t -> 'columns') <> 'object' THEN
            RETURN QUERY SELECT at || '.columns', 'must be a table';
        END IF;
        IF t ? 'create' AND pg_catalog.jsonb_typeof(t -> 'create') <> 'object' THEN
            RETURN QUERY SELECT at || '.create', 'must be a table';
        END IF;
        FOR entry IN
            SELECT 'columns' AS part, c.key, c.value
            FROM pg_catalog.jsonb_each(CASE WHEN pg_catalog.jsonb_typeof(t -> 'columns') = 'object'
                                            THEN t -> 'columns' ELSE '{}' END) AS c
            UNION ALL
            SELECT 'create', c.key, c.value
            FROM pg_catalog.jsonb_each(CASE WHEN pg_catalog.jsonb_typeof(t -> 'create') = 'object'
                                            THEN t -> 'create' ELSE '{}' END) AS c
        LOOP
            col := sync._mapping_column(table_oid, entry.key);
            IF col.attname IS NULL THEN
                RETURN QUERY SELECT pg_catalog.format('%s.%s.%s', at, entry.part, entry.key),
                    pg_catalog.format('%s has no column %I', table_oid::pg_catalog.regclass,
                                      entry.key);
            ELSIF col.attgenerated <> '' OR col.attidentity <> '' THEN
                RETURN QUERY SELECT pg_catalog.format('%s.%s.%s', at, entry.part, entry.key),
                    pg_catalog.format('%I is a %s column: the engine cannot write it', entry.key,
                                      CASE WHEN col.attgenerated <> '' THEN 'generated'
                                           ELSE 'identity' END);
            ELSIF entry.key = ANY (reserved) THEN
                RETURN QUERY SELECT pg_catalog.format('%s.%s.%s', at, entry.part, entry.key),
                    pg_catalog.format('%I is the key, number, version or via column: the '
                                      'engine writes it itself', entry.key);
            ELSIF entry.part = 'create' AND t -> 'columns' ? entry.key THEN
                RETURN QUERY SELECT pg_catalog.format('%s.create.%s', at, entry.key),
                    pg_catalog.format('%I is in columns too (tritonX owns it)', entry.key);
            ELSIF entry.part = 'create' THEN
                why := sync._mapping_literal_defect(entry.value, col.atttypid, col.atttypmod);
                IF why IS NOT NULL THEN
                    RETURN QUERY SELECT pg_catalog.format('%s.create.%s', at, entry.key), why;
                END IF;
            ELSE
                RETURN QUERY SELECT * FROM sync._mapping_source_defects(
                    pg_catalog.format('%s.columns.%s', at, entry.key), entry.value,
                    col.atttypid, col.atttypmod);
            END IF;
        END LOOP;

        -- NOT NULL coverage: a customer (or related row) tritonX creates must be insertable.
        -- A NOT NULL column with no default that is not an identity or generated column must be
        -- written by the engine: the key, a column it keeps itself, or one in columns/create.
        RETURN QUERY
            SELECT at || '.create', pg_catalog.format(
                'NOT NULL column %I has no default and no source: give it a value in %s.create '
                '(or a field in %s.columns)', a.attname, at, at)
            FROM pg_catalog.pg_attribute AS a
            WHERE a.attrelid = table_oid AND a.attnum > 0 AND NOT a.attisdropped
              AND a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
              AND a.attname <> ALL (reserved)
              AND NOT coalesce(t -> 'columns' ? a.attname, false)
              AND NOT coalesce(t -> 'create' ? a.attname, false)
              -- the write never creates a row of a table no tritonX field feeds
              AND NOT (NOT spec.is_customer AND sync._mapping_unfed(t))
            ORDER BY a.attnum;

        -- the generated write takes a new key from the sequence itself (nextval in the same
        -- SELECT, never joined back), as the owner role: the named sequence, an identity or
        -- serial column's own, any sequence the key's default calls (pg_dump writes a
        -- sequence made by hand as DEFAULT nextval('...') without OWNED BY), and any the
        -- default of another column the write leaves out calls, need USAGE too
        IF owner_exists AND table_oid IS NOT NULL
           AND (sync._mapping_column(table_oid, t ->> 'key')).attnum IS NOT NULL THEN
            RETURN QUERY
                WITH q AS MATERIALIZED (  -- sequences only, before asking for a privilege
                    SELECT sequence_oid AS seq, NULL::name AS col
                    UNION
                    SELECT pg_catalog.pg_get_serial_sequence(
                               table_oid::pg_catalog.regclass::text,
                               t ->> 'key')::pg_catalog.regclass::oid, NULL::name
                    WHERE t ->> 'key_generate' IN ('identity', 'default')
                    UNION
                    -- the sequences a column default calls: the key's, with "default", and
                    -- that of a column the write leaves to its default, which takes it in the
                    -- same insert (a shop's customer number from its own sequence)
                    SELECT d.refobjid, CASE WHEN a.attname <> t ->> 'key' THEN a.attname END
                    FROM pg_catalog.pg_attrdef AS ad
                    JOIN pg_catalog.pg_attribute AS a
                      ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
                    JOIN pg_catalog.pg_depend AS d
                      ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                     AND d.objid = ad.oid
                     AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                    JOIN pg_catalog.pg_class AS s ON s.oid = d.refobjid AND s.relkind = 'S'
                    WHERE ad.adrelid = table_oid
                      AND CASE WHEN a.attname = t ->> 'key'
                               THEN t ->> 'key_generate' = 'default'
                               ELSE a.attgenerated = ''
                                    AND a.attname <> ALL (reserved)
                                    AND NOT coalesce(t -> 'columns' ? a.attname, false)
                                    AND NOT coalesce(t -> 'create' ? a.attname, false)
                                    AND NOT (NOT spec.is_customer AND sync._mapping_unfed(t))
                          END
                )
                SELECT at || CASE WHEN q.col IS NOT NULL THEN '.table'
                                  WHEN t ? 'key_sequence' THEN '.key_sequence'
                                  ELSE '.key_generate' END, pg_catalog.format(
                    '%s lacks USAGE%s: GRANT USAGE ON SEQUENCE %s TO %I;', owner_role,
                    CASE WHEN q.col IS NOT NULL
                         THEN pg_catalog.format(' (the default of %I calls it)', q.col)
                         ELSE '' END,
                    q.seq::pg_catalog.regclass, owner_role)
                FROM q
                WHERE q.seq IS NOT NULL
                  AND NOT pg_catalog.has_sequence_privilege(owner_role, q.seq, 'USAGE')
                ORDER BY q.seq::pg_catalog.regclass::text;
        END IF;
    END LOOP;

    -- The fields: every snapshot field but customer_number decided exactly once, by a source
    -- expression (any number of them) or by [not_stored] ---------------------------------------
    IF p_document ? 'not_stored'
       AND (pg_catalog.jsonb_typeof(p_document #> '{not_stored,fields}') IS DISTINCT FROM 'array'
            OR EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(
                           CASE WHEN pg_catalog.jsonb_typeof(p_document #> '{not_stored,fields}')
                                     = 'array'
                                THEN p_document #> '{not_stored,fields}' ELSE '[]' END) AS e
                       WHERE pg_catalog.jsonb_typeof(e) <> 'string'))
    THEN
        RETURN QUERY SELECT 'not_stored.fields', 'must be an array of field names';
    END IF;
    RETURN QUERY
        WITH sources AS (
            SELECT c.value
            FROM pg_catalog.jsonb_array_elements(
                     pg_catalog.jsonb_build_array(customer_spec)
                     || coalesce(p_document -> 'related', '[]')) AS s(value)
            CROSS JOIN LATERAL pg_catalog.jsonb_each(
                CASE WHEN pg_catalog.jsonb_typeof(s.value -> 'columns') = 'object'
                     THEN s.value -> 'columns' ELSE '{}' END) AS c
        ),
        used AS (
            SELECT s.value #>> '{}' AS field FROM sources AS s
            WHERE pg_catalog.jsonb_typeof(s.value) = 'string'
            UNION
            SELECT s.value ->> 'field' FROM sources AS s
            WHERE pg_catalog.jsonb_typeof(s.value -> 'field') = 'string'
            UNION
            SELECT e.value #>> '{}'
            FROM sources AS s
            CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(
                CASE WHEN pg_catalog.jsonb_typeof(s.value -> 'join') = 'array'
                     THEN s.value -> 'join'
                     WHEN pg_catalog.jsonb_typeof(s.value -> 'first_of') = 'array'
                     THEN s.value -> 'first_of'
                     ELSE '[]' END) AS e(value)
        ),
        not_stored AS (
            SELECT e.value #>> '{}' AS field, pg_catalog.count(*) AS times
            FROM pg_catalog.jsonb_array_elements(
                CASE WHEN pg_catalog.jsonb_typeof(p_document #> '{not_stored,fields}') = 'array'
                     THEN p_document #> '{not_stored,fields}' ELSE '[]' END) AS e(value)
            WHERE pg_catalog.jsonb_typeof(e.value) = 'string'
            GROUP BY 1
        ),
        fields AS (
            SELECT f.field, f.ord
            FROM sync._mapping_fields() WITH ORDINALITY AS f(field, type_oid, typmod,
                                                              max_length, ord)
            WHERE f.field <> 'customer_number'
        )
        -- in the contract's order of fields, the list's own mistakes first
        SELECT d.path, d.problem
        FROM (
            SELECT 'not_stored.fields' AS path, 0 AS ord,
                   pg_catalog.format('%s is not a snapshot field', n.field) AS problem
            FROM not_stored AS n
            WHERE n.field IS DISTINCT FROM 'customer_number'
              AND NOT EXISTS (SELECT FROM fields AS f WHERE f.field = n.field)
            UNION ALL
            SELECT 'not_stored.fields', 0, 'customer_number is placed by customer.number'
            FROM not_stored AS n WHERE n.field = 'customer_number'
            UNION ALL
            SELECT 'not_stored.fields', 0,
                   pg_catalog.format('%s is listed more than once', n.field)
            FROM not_stored AS n WHERE n.times > 1
            UNION ALL
            SELECT 'not_stored.fields', f.ord, CASE
                       WHEN u.field IS NOT NULL AND n.field IS NOT NULL THEN pg_catalog.format(
                           '%s is decided twice: mapped to a column and listed as not stored',
                           f.field)
                       ELSE pg_catalog.format(
                           '%s is not decided: map it in a columns table or list it here',
                           f.field)
                   END
            FROM fields AS f
            LEFT JOIN used AS u ON u.field = f.field
            LEFT JOIN not_stored AS n ON n.field = f.field
            WHERE (u.field IS NULL) = (n.field IS NULL)
        ) AS d
        ORDER BY d.ord, d.problem;

    -- Declared references (customer references without a foreign key) -----------------------
    IF p_document ? 'reference'
       AND pg_catalog.jsonb_typeof(p_document -> 'reference') IS DISTINCT FROM 'array' THEN
        RETURN QUERY SELECT 'reference', 'must be an array of tables ([[reference]])';
    END IF;
    FOR spec IN
        SELECT pg_catalog.format('reference[%s]', r.ord - 1) AS at, r.value AS t
        FROM pg_catalog.jsonb_array_elements(
                 CASE WHEN pg_catalog.jsonb_typeof(p_document -> 'reference') = 'array'
                      THEN p_document -> 'reference' ELSE '[]' END)
             WITH ORDINALITY AS r(value, ord)
        ORDER BY r.ord
    LOOP
        at := spec.at;
        t := spec.t;
        IF pg_catalog.jsonb_typeof(t) IS DISTINCT FROM 'object' THEN
            RETURN QUERY SELECT at, 'must be a table';
            CONTINUE;
        END IF;
        table_oid := sync._mapping_table(t ->> 'schema', t ->> 'table');
        IF table_oid IS NULL THEN
            RETURN QUERY SELECT * FROM sync._mapping_missing_table(at, t ->> 'schema',
                                                                   t ->> 'table');
            CONTINUE;
        END IF;
        IF customer_oid IS NOT NULL THEN
            RETURN QUERY SELECT * FROM sync._mapping_pointer_defects(
                at || '.column', table_oid, t ->> 'column', customer_oid, customer_key, NULL);
        END IF;
    END LOOP;

    -- The facts retention needs ([gdpr], optional): columns of the customer table and the last
    -- order's date on a customer-linked table -----------------------------------------------
    IF p_document ? 'gdpr' THEN
        RETURN QUERY SELECT * FROM sync._mapping_gdpr_defects(p_document, customer_oid,
                                                              customer_key);
    END IF;

    -- The owner role's privileges on the shop's tables (sync._owner_needs, which coverage asks
    -- too): USAGE on each schema (once, at the first table in it) and each table privilege
    -- missing, each with the statement that grants it.
    IF owner_exists THEN
        RETURN QUERY
            WITH needed AS (
                SELECT n.ord, n.path, n.relation, n.privilege, n.privilege_ord, n.why,
                       c.relnamespace
                FROM sync._owner_needs(p_document) AS n
                JOIN pg_catalog.pg_class AS c ON c.oid = n.relation
            ),
            schema_first AS (
                SELECT DISTINCT ON (x.relnamespace) x.path, x.ord, x.relation, x.relnamespace
                FROM needed AS x
                ORDER BY x.relnamespace, x.ord, x.path, x.relation::pg_catalog.oid
            )
            SELECT d.path, d.problem
            FROM (
                SELECT pg_catalog.regexp_replace(s.path, '\.table$', '.schema') AS path, s.ord,
                       s.relation::text AS relation_name, 0 AS privilege_ord,
                       pg_catalog.format('%s lacks USAGE: GRANT USAGE ON SCHEMA %I TO %I;',
                                         owner_role, n.nspname, owner_role) AS problem
                FROM schema_first AS s
                JOIN pg_catalog.pg_namespace AS n ON n.oid = s.relnamespace
                WHERE NOT pg_catalog.has_schema_privilege(owner_role, s.relnamespace, 'USAGE')
                UNION ALL
                SELECT x.path, x.ord, x.relation::text, x.privilege_ord,
                       pg_catalog.format('%s lacks %s on %s%s: GRANT %s ON TABLE %s TO %I;',
                                         owner_role, x.privilege, x.relation, x.why,
                                         x.privilege, x.relation, owner_role)
                FROM needed AS x
                WHERE NOT pg_catalog.has_table_privilege(owner_role, x.relation, x.privilege)
            ) AS d
            ORDER BY d.ord, d.path, d.relation_name, d.privilege_ord;
        -- row-level security hiding the rows from the owner role (sync._owner_policy_gaps): a
        -- GRANT is not enough, the table needs a policy for it
        RETURN QUERY
            SELECT g.path, pg_catalog.format(
                '%s%s has row-level security and no policy lets %s %s its rows: the engine'
                ' would see none of them and write none (every event a dead letter, merges'
                ' re-pointing nothing): %s',
                g.relation, g.why, owner_role, g.commands, g.statement)
            FROM sync._owner_policy_gaps(p_document, owner_role) AS g
            ORDER BY g.ord, g.path, g.relation::text;
        -- the triggers that follow the shop's own deletes and key changes of customers
        -- (sql/73_shop_key_changes.sql): on the table and, for the per-row one, each partition.
        -- A warning: the engine works without them. The table itself is asked for above when a
        -- consent column needs TRIGGER too.
        IF customer_oid IS NOT NULL THEN
            RETURN QUERY
                SELECT 'customer.table'::text, pg_catalog.format(
                    'warning: %s lacks TRIGGER on %s: customers the shop deletes or re-keys '
                    'itself would keep their tritonX link, consents and erasure requests under '
                    'the old key: GRANT TRIGGER ON TABLE %s TO %I;',
                    owner_role, t.relid::pg_catalog.regclass, t.relid::pg_catalog.regclass,
                    owner_role)
                FROM (SELECT customer_oid::pg_catalog.regclass AS relid
                      UNION
                      SELECT p.relid FROM pg_catalog.pg_partition_tree(customer_oid) AS p) AS t
                WHERE NOT pg_catalog.has_table_privilege(owner_role, t.relid, 'TRIGGER')
                  AND NOT (t.relid = customer_oid
                           AND EXISTS (SELECT FROM sync._mapping_consent_columns(p_document,
                                                                                  customer_oid)
                                           AS c
                                       WHERE c.as_is))
                ORDER BY t.relid::pg_catalog.regclass::text;
        END IF;
    END IF;

    -- The installed document whose compiled code is older than the catalog it was made from
    -- (sql/16_mapping_compile.sql, sync._write_is_current): installing it again recompiles
    IF EXISTS (SELECT FROM sync.mapping_version AS v
               WHERE v.active AND v.sha256 = sync._digest(p_document::text))
       AND NOT sync._write_is_current() THEN
        RETURN QUERY SELECT 'customer'::text,
            'warning: the installed mapping''s compiled feed write (syncmap.write_customers) was '
            'made from an older catalog: a table, column, index or foreign key it depends on '
            'changed since (a foreign key to a related table, say), and the write does not see '
            'it; install the mapping again (syncctl mapping install FILE) to recompile it'::text;
    END IF;

    -- Linked tables that look like what the shop must keep, not declared bookkeeping
    IF customer_oid IS NOT NULL THEN
        RETURN QUERY SELECT * FROM sync._mapping_bookkeeping_warnings(p_document, customer_oid);
    END IF;
END
$$;
