-- The mapping compiler (docs/mapping-compiler.md). A mapping document compiles to plain SQL
-- that (re)creates schema `syncmap`: the view syncmap.customer_map (every mapped customer's key,
-- tritonX number and version), the set-based write syncmap.write_customers and the slow-path
-- check syncmap.snapshot_defect. The feed's generic steps (sql/30_sync_apply.sql) decide on the
-- view and write through the function: nothing is interpreted per event, no dynamic SQL runs
-- while the feed applies, and every transform is an inline expression (no function call per
-- row). sync.install_mapping checks, compiles, executes and records a version. Re-runnable.
--
-- MAPPING CONTRACT: a tritonX field reaches the shop's tables only through the expressions
-- sync._compile_source builds from the active mapping; sync.customer_snapshot (20) gives every
-- field its contract type; sync.mapping_defects (14) decides what compiles. Change them together.

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------

-- Where the tritonX number and/or the version live when the mapping says "link": the shop's
-- tables then need no new column. One row per linked customer, keyed by the shop's key as text
-- (the key's type is the mapping's: integer, bigint, uuid, text); the view casts the link's side
-- of the join (l.customer_key::<key type>), so a probe by number walks the unique index on
-- customer_number, then the shop's key index. customer_number is NULL when the number lives in a
-- shop column (only the version is linked). A row whose customer the shop removed is dead: the
-- view joins it to nothing.
CREATE TABLE IF NOT EXISTS sync.customer_link (
    customer_key          text PRIMARY KEY,
    customer_number       text UNIQUE,
    version               integer
);

-- ---------------------------------------------------------------------------------------------
-- Compiling
-- ---------------------------------------------------------------------------------------------

-- The type a generated expression casts to: the column's type without its modifier (a cast to
-- varchar(n) would cut a long value silently, the assignment to the column refuses it); bpchar
-- for char(n), as `character` alone means char(1).
CREATE OR REPLACE FUNCTION sync._cast_type(p_type oid)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    -- a domain as its base type: an explicit cast to a domain over varchar(n) would cut a long
    -- value silently; the assignment to the column applies the domain (its length, CHECK and
    -- NOT NULL) and refuses instead
    SELECT CASE WHEN b.type_oid = 'pg_catalog.bpchar'::pg_catalog.regtype THEN 'pg_catalog.bpchar'
                ELSE pg_catalog.format_type(b.type_oid, NULL) END
    FROM sync._mapping_base_type(p_type, -1) AS b
$$;

-- One source expression of format 1 as inline SQL over the typed snapshot `s`
-- (sync.customer_snapshot), of type p_type (the column's type without its modifier: a cast to
-- varchar(n) would cut a long value silently, the assignment to the column refuses it).
CREATE OR REPLACE FUNCTION sync._compile_source(p_source jsonb, p_type text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    expr  text;
    field text;
    code  record;
BEGIN
    IF pg_catalog.jsonb_typeof(p_source) = 'string' THEN
        RETURN pg_catalog.format('s.%I::%s', p_source #>> '{}', p_type);
    END IF;
    field := p_source ->> 'field';
    IF p_source ? 'join' THEN
        -- the non-empty parts after btrim, joined; NULL when every part is empty
        SELECT pg_catalog.format(
                   'NULLIF(pg_catalog.concat_ws(%L, %s), %L)::%s',
                   coalesce(p_source ->> 'separator', ' '),
                   pg_catalog.string_agg(
                       pg_catalog.format('NULLIF(pg_catalog.btrim(s.%I::text), %L)', j.f, ''),
                       ', ' ORDER BY j.n),
                   '', p_type)
        INTO expr
        FROM pg_catalog.jsonb_array_elements_text(p_source -> 'join') WITH ORDINALITY
             AS j (f, n);
    ELSIF p_source ? 'first_of' THEN
        SELECT pg_catalog.format('coalesce(%s)',
                                 pg_catalog.string_agg(pg_catalog.format('s.%I::%s', j.f, p_type),
                                                       ', ' ORDER BY j.n))
        INTO expr
        FROM pg_catalog.jsonb_array_elements_text(p_source -> 'first_of') WITH ORDINALITY
             AS j (f, n);
    ELSIF p_source ? 'codes' THEN
        expr := pg_catalog.format('CASE WHEN s.%I IS NULL THEN NULL::%s', field, p_type);
        FOR code IN SELECT e.key, e.value #>> '{}' AS value
                    FROM pg_catalog.jsonb_each(p_source -> 'codes') AS e ORDER BY e.key LOOP
            expr := expr || pg_catalog.format(' WHEN s.%I::text = %L THEN %L::%s',
                                              field, code.key, code.value, p_type);
        END LOOP;
        expr := expr || pg_catalog.format(' ELSE %L::%s END', p_source ->> 'other', p_type);
    ELSIF p_source ? 'true' OR p_source ? 'false' THEN
        expr := pg_catalog.format('CASE s.%I WHEN true THEN %L::%s WHEN false THEN %L::%s END',
                                  field, p_source ->> 'true', p_type,
                                  p_source ->> 'false', p_type);
    ELSIF p_source ? 'format' THEN
        expr := pg_catalog.format('pg_catalog.to_char(s.%I, %L)::%s',
                                  field, p_source ->> 'format', p_type);
    ELSIF field IS NOT NULL THEN
        expr := pg_catalog.format('s.%I::%s', field, p_type);
    ELSE
        RAISE EXCEPTION 'not a transform of format 1' USING ERRCODE = 'SY060';
    END IF;
    IF p_source ? 'null_as' THEN
        expr := pg_catalog.format('coalesce(%s, %L::%s)', expr, p_source ->> 'null_as', p_type);
    END IF;
    RETURN expr;
END
$$;

-- The mapped columns of one table (p_columns: column -> source), numbered from p_after + 1 in
-- column-name order: the expression as an item of the write's `src` (v<n>), the variable and
-- the per-column check of syncmap.snapshot_defect (SY062: names the column, never the value).
CREATE OR REPLACE FUNCTION sync._compile_columns(p_relation pg_catalog.regclass,
                                                 p_columns jsonb, p_after integer)
RETURNS TABLE (n integer, name text, src_item text, decl text, check_stmt text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    -- the variable of a domain column is of its base type with the domain's length (a
    -- variable of a NOT NULL domain could not even be declared), and the check casts the
    -- fitting value to the domain for its CHECK and NOT NULL
    SELECT c.n, c.name,
           pg_catalog.format('%s AS v%s', c.expr, c.n),
           pg_catalog.format('v%s %s', c.n, c.stored_type),
           pg_catalog.format(
               '    BEGIN v%1$s := %2$s;%4$s EXCEPTION WHEN data_exception OR check_violation'
               ' OR not_null_violation THEN RETURN %3$L; END;',
               c.n, c.expr,
               pg_catalog.format('a value does not fit %s.%I (%s) (SQLSTATE %s)',
                                 p_relation, c.name, c.full_type, 'SY062'),
               CASE WHEN c.stored_type <> c.full_type
                    THEN pg_catalog.format(' PERFORM v%s::%s;', c.n, c.full_type)
                    ELSE '' END)
    FROM (
        SELECT p_after + (pg_catalog.row_number() OVER (ORDER BY e.key))::integer AS n,
               e.key AS name,
               sync._compile_source(e.value, sync._cast_type(a.atttypid)) AS expr,
               pg_catalog.format_type(a.atttypid, a.atttypmod) AS full_type,
               pg_catalog.format_type(b.type_oid, b.typmod) AS stored_type
        FROM pg_catalog.jsonb_each(coalesce(p_columns, '{}'::jsonb)) AS e
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = p_relation AND a.attname = e.key
        CROSS JOIN LATERAL sync._mapping_base_type(a.atttypid, a.atttypmod) AS b
    ) AS c
    ORDER BY c.n
$$;

-- Every foreign key to the table p_relation (a partitioned table's once), as (relation, its
-- column, the column of p_relation it refers to). A composite foreign key is named by its
-- first column pair: the rows that match on it are a superset of those that refer to the row,
-- so a row is never taken for unused while a shop table refers to it (a label printed for an
-- address by (id, postcode)). Who uses a related row: the feed's write (below, copy on write)
-- and the merge and erasure (sync._related_users).
CREATE OR REPLACE FUNCTION sync._related_foreign_keys(p_relation pg_catalog.regclass)
RETURNS TABLE (relation pg_catalog.regclass, col name, referenced name)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 5
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.conrelid::pg_catalog.regclass, a.attname, ref.attname
    FROM pg_catalog.pg_constraint AS c
    JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
    JOIN pg_catalog.pg_attribute AS ref
        ON ref.attrelid = c.confrelid AND ref.attnum = c.confkey[1]
    WHERE c.contype = 'f'
      AND c.confrelid = p_relation
      AND c.conparentid = 0
$$;

-- The columns of p_relation that a copy of one of its rows leaves to their default (NULL when
-- they have none): those of a unique index that does not hold the key p_key_column (an
-- address's public code, an identity of its own), so that the copy does not clash with the row
-- it copies. A NOT NULL column without a default is copied (and the shop's unique index then
-- refuses the copy). For the feed's copy of a shared related row (below) and the erasure's
-- scrubbed copy (sql/57_moves_compile.sql).
CREATE OR REPLACE FUNCTION sync._copy_leaves(p_relation pg_catalog.regclass, p_key_column name)
RETURNS name[]
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.array_agg(a.attname ORDER BY a.attnum), '{}')
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = p_relation AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname <> p_key_column
      AND (a.atthasdef OR a.attidentity <> '' OR NOT a.attnotnull)
      AND EXISTS (SELECT FROM pg_catalog.pg_index AS x
                  JOIN pg_catalog.pg_attribute AS k
                      ON k.attrelid = x.indrelid AND k.attname = p_key_column
                  WHERE x.indrelid = p_relation AND x.indisunique
                    AND a.attnum = ANY (x.indkey::pg_catalog.int2[])
                    AND NOT k.attnum = ANY (x.indkey::pg_catalog.int2[]))
$$;

-- How a new key is made, as an inline expression: the identity's sequence (nextval; the insert
-- adds OVERRIDING SYSTEM VALUE for GENERATED ALWAYS), the column default's own expression,
-- pg_catalog.gen_random_uuid() (a bytea key takes its 16 bytes, uuid_send) or the named
-- sequence, cast to a text or varchar key's type (its text form). Made in the SELECT that
-- inserts, so the same statement can write the link and the rows that point to it.
CREATE OR REPLACE FUNCTION sync._compile_key(p_relation pg_catalog.regclass, p_key text,
                                             p_table jsonb)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE p_table ->> 'key_generate'
        WHEN 'identity' THEN pg_catalog.format(
            'pg_catalog.nextval(%L::pg_catalog.regclass)',
            pg_catalog.pg_get_serial_sequence(p_relation::text, p_key))
        WHEN 'default' THEN (
            SELECT '(' || pg_catalog.pg_get_expr(d.adbin, d.adrelid) || ')'
            FROM pg_catalog.pg_attrdef AS d
            JOIN pg_catalog.pg_attribute AS a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
            WHERE d.adrelid = p_relation AND a.attname = p_key)
        WHEN 'uuid' THEN CASE WHEN k.type = 'pg_catalog.bytea'::pg_catalog.regtype
                              THEN 'pg_catalog.uuid_send(pg_catalog.gen_random_uuid())'
                              ELSE 'pg_catalog.gen_random_uuid()' || k.as_text END
        WHEN 'sequence' THEN pg_catalog.format(
            'pg_catalog.nextval(%L::pg_catalog.regclass)',
            sync._mapping_sequence(p_table ->> 'key_sequence')::pg_catalog.regclass::text)
            || k.as_text
    END
    FROM (
        -- the key's type, and the cast a text or varchar key takes: without the length (an
        -- explicit cast to varchar(n) would cut a longer key, where the insert refuses it:
        -- 22001, a dead letter)
        SELECT a.atttypid AS type,
               CASE WHEN a.atttypid IN ('pg_catalog.text'::pg_catalog.regtype,
                                        'pg_catalog.varchar'::pg_catalog.regtype)
                    THEN '::' || pg_catalog.format_type(a.atttypid, NULL)
                    ELSE '' END AS as_text
        FROM (SELECT) AS one
        LEFT JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = p_relation AND a.attname = p_key
    ) AS k
$$;

-- The SQL that (re)creates schema syncmap for a mapping document, as text (not executed).
-- The document must be free of defects (sync.mapping_defects): sync.install_mapping checks first.
-- Used by the generated write (syncmap.write_customers) with the rows it wrote into a related
-- table the customer rows point to and the rows it meant to write there: fewer means a BEFORE
-- trigger of the shop's skipped one (returned NULL). SY031, a dead letter naming the table, is
-- raised inside the write's statement, before a foreign key from the customer row to the
-- missing row is checked at its end. Returns 0 (the write adds it to its count).
CREATE OR REPLACE FUNCTION sync._related_rows_written(
    p_relation pg_catalog.regclass, p_written bigint, p_expected bigint)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_written < p_expected THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY031',
            MESSAGE = pg_catalog.format(
                'the customer''s related row was not written: a trigger on %s skipped it',
                p_relation);
    END IF;
    RETURN 0;
END
$$;

-- The columns of the tables p_relations as a fingerprint holds them (name, type, NOT NULL,
-- dropped, identity, generation, default), in a stable order: shared by the compiled write's
-- (sync._write_fingerprint) and the compiled moves' (sync._moves_fingerprint).
CREATE OR REPLACE FUNCTION sync._catalog_columns(p_relations oid[])
RETURNS jsonb
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
               a.attrelid, a.attnum, a.attname,
               pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
               a.attisdropped, a.attidentity, a.attgenerated,
               pg_catalog.pg_get_expr(d.adbin, d.adrelid))
               ORDER BY a.attrelid, a.attnum)
    FROM pg_catalog.pg_attribute AS a
    LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = ANY (p_relations) AND a.attnum > 0
$$;

-- A digest of the catalog a mapping document's compiled write is made from: the customer table
-- and each [[related]] table (their names, columns with types, NOT NULL, defaults, identity and
-- generation, their indexes), every foreign key to a related table (sync._related_foreign_keys:
-- who else uses a related row decides copy or update in place; a table the shop links to the
-- customer is the compiled moves' concern, not the write's) and the key sequences. Made
-- into the compiled code (syncmap.write_fingerprint()) and compared with the catalog of today
-- by sync._write_is_current(): a few index scans of the catalog, at check time, never a page.
CREATE OR REPLACE FUNCTION sync._write_fingerprint(p_document jsonb)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    related oid[];
    tables  oid[];
    digest  text;
BEGIN
    SELECT pg_catalog.array_agg(DISTINCT t.oid) INTO related
    FROM (SELECT sync._mapping_table(r.value ->> 'schema', r.value ->> 'table') AS oid
          FROM pg_catalog.jsonb_array_elements(
                   CASE WHEN pg_catalog.jsonb_typeof(p_document -> 'related') = 'array'
                        THEN p_document -> 'related' ELSE '[]' END) AS r (value)) AS t
    WHERE t.oid IS NOT NULL;
    tables := pg_catalog.array_remove(
        coalesce(related, '{}') || sync._mapping_table(p_document #>> '{customer,schema}',
                                                       p_document #>> '{customer,table}'),
        NULL);
    SELECT sync._digest(pg_catalog.jsonb_build_array(
        (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                    r.oid, r.oid::pg_catalog.regclass::text, r.relkind) ORDER BY r.oid)
         FROM pg_catalog.pg_class AS r WHERE r.oid = ANY (tables)),
        sync._catalog_columns(tables),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                    x.indexrelid, x.indisunique, x.indisprimary, x.indkey::text,
                    x.indpred IS NULL, x.indexprs IS NULL) ORDER BY x.indexrelid)
         FROM pg_catalog.pg_index AS x WHERE x.indrelid = ANY (tables)),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                    c.oid, c.conrelid, c.conrelid::pg_catalog.regclass::text, c.confrelid,
                    c.conkey, c.confkey) ORDER BY c.oid)
         FROM pg_catalog.pg_constraint AS c
         WHERE c.contype = 'f' AND c.conparentid = 0 AND c.confrelid = ANY (related)),
        (SELECT pg_catalog.jsonb_agg(sync._mapping_sequence(r.value ->> 'key_sequence'))
         FROM pg_catalog.jsonb_array_elements(
                  pg_catalog.jsonb_build_array(p_document -> 'customer')
                  || CASE WHEN pg_catalog.jsonb_typeof(p_document -> 'related') = 'array'
                          THEN p_document -> 'related' ELSE '[]' END) AS r (value)
         WHERE r.value ->> 'key_sequence' IS NOT NULL))::text)
    INTO digest;
    RETURN digest;
END
$$;

-- Whether the active mapping's compiled write (and the rest of schema syncmap) was made from
-- the catalog as it is now (sync._write_fingerprint); true without a mapping. False for code
-- compiled before the write carried its fingerprint.
CREATE OR REPLACE FUNCTION sync._write_is_current()
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    active jsonb;
BEGIN
    SELECT v.document INTO active FROM sync.mapping_version AS v WHERE v.active;
    IF active IS NULL THEN
        RETURN true;
    END IF;
    IF pg_catalog.to_regprocedure('syncmap.write_fingerprint()') IS NULL THEN
        RETURN false;
    END IF;
    RETURN syncmap.write_fingerprint() = sync._write_fingerprint(active);
END
$$;

CREATE OR REPLACE FUNCTION sync.compile_mapping(p_document jsonb)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cust        jsonb := p_document -> 'customer';
    crel        pg_catalog.regclass;
    ckey        text := p_document #>> '{customer,key}';
    ckeytype    pg_catalog.regtype;
    num_col     text := p_document #>> '{customer,number,column}';
    ver_col     text := p_document #>> '{customer,version,column}';
    linked      boolean;
    by_number   boolean;
    over        text;
    keyexpr     text;
    src_items   text[] := ARRAY[]::text[];
    upd_sets    text[] := ARRAY[]::text[];
    ins_cols    text[] := ARRAY[]::text[];
    ins_vals    text[] := ARRAY[]::text[];
    cur_items   text[] := ARRAY[]::text[];
    ctes_old    text[] := ARRAY[]::text[];
    ctes_new    text[] := ARRAY[]::text[];
    ctes_late   text[] := ARRAY[]::text[];
    guards      text[] := ARRAY[]::text[];
    new_items   text[] := ARRAY[]::text[];
    checks      text[] := ARRAY[]::text[];
    decls       text[] := ARRAY[]::text[];
    col         record;
    rel         record;
    r           integer := 0;
    n           integer := 0;
    rrel        pg_catalog.regclass;
    rkey        text;
    rkeyexpr    text;
    rover       text;
    ptr         text;
    shared      text;
    r_sets      text[];
    r_cols      text[];
    r_vals      text[];
    r_create_cols text[];
    r_create_vals text[];
    view_sql    text;
    written     text;
    created     text;
    body        text;
    ctes        text[];
    kind        text;
BEGIN
    crel := pg_catalog.format('%I.%I', cust ->> 'schema', cust ->> 'table')::pg_catalog.regclass;
    SELECT a.atttypid INTO ckeytype FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = crel AND a.attname = ckey AND a.attnum > 0 AND NOT a.attisdropped;
    linked := num_col IS NULL OR ver_col IS NULL;
    keyexpr := sync._compile_key(crel, ckey, cust);
    over := CASE WHEN (SELECT a.attidentity FROM pg_catalog.pg_attribute AS a
                       WHERE a.attrelid = crel AND a.attname = ckey) = 'a'
                 THEN ' OVERRIDING SYSTEM VALUE' ELSE '' END;

    -- the view: every mapped customer's key, number and version (customer_id for the audit)
    view_sql := pg_catalog.format(
        'CREATE VIEW syncmap.customer_map AS SELECT c.%1$I AS customer_key, %2$s AS '
        'customer_number, %3$s AS version, %4$s AS customer_id FROM %5$s AS c%6$s',
        ckey,
        CASE WHEN num_col IS NOT NULL THEN pg_catalog.format('c.%I::text', num_col)
             ELSE 'l.customer_number' END,
        CASE WHEN ver_col IS NOT NULL THEN pg_catalog.format('c.%I::integer', ver_col)
             ELSE 'l.version' END,
        CASE WHEN ckeytype IN ('smallint'::pg_catalog.regtype, 'integer'::pg_catalog.regtype,
                               'bigint'::pg_catalog.regtype)
             THEN pg_catalog.format('c.%I::bigint', ckey) ELSE 'NULL::bigint' END,
        crel,
        CASE
            WHEN num_col IS NULL THEN pg_catalog.format(
                ' JOIN sync.customer_link AS l ON c.%I = l.customer_key::%s'
                ' WHERE l.customer_number IS NOT NULL', ckey, ckeytype)
            WHEN ver_col IS NULL THEN pg_catalog.format(
                ' LEFT JOIN sync.customer_link AS l ON l.customer_key = c.%I::text'
                ' WHERE c.%I IS NOT NULL', ckey, num_col)
            ELSE pg_catalog.format(' WHERE c.%I IS NOT NULL', num_col)
        END);

    -- the customer's own columns
    FOR col IN SELECT * FROM sync._compile_columns(crel, cust -> 'columns', n) LOOP
        n := col.n;
        src_items := src_items || col.src_item;
        decls := decls || col.decl;
        checks := checks || col.check_stmt;
        upd_sets := upd_sets || pg_catalog.format('%I = cur.v%s', col.name, n);
        ins_cols := ins_cols || pg_catalog.format('%I', col.name);
        ins_vals := ins_vals || pg_catalog.format('new.v%s', n);
    END LOOP;
    -- the literals written only when tritonX creates the customer
    FOR col IN
        SELECT e.key AS name, e.value #>> '{}' AS value,
               sync._cast_type(a.atttypid) AS type
        FROM pg_catalog.jsonb_each(coalesce(cust -> 'create', '{}'::jsonb)) AS e
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = crel AND a.attname = e.key
        ORDER BY e.key
    LOOP
        ins_cols := ins_cols || pg_catalog.format('%I', col.name);
        ins_vals := ins_vals || pg_catalog.format('%L::%s', col.value, col.type);
    END LOOP;
    IF num_col IS NOT NULL THEN
        ins_cols := ins_cols || pg_catalog.format('%I', num_col);
        ins_vals := ins_vals || 'new.number'::text;
    END IF;
    IF ver_col IS NOT NULL THEN
        upd_sets := upd_sets || pg_catalog.format('%I = cur.version', ver_col);
        ins_cols := ins_cols || pg_catalog.format('%I', ver_col);
        ins_vals := ins_vals || 'new.version'::text;
    END IF;

    -- related tables the customer row points to (via customer_column)
    FOR rel IN
        SELECT x.value AS doc, x.ordinality AS i
        FROM pg_catalog.jsonb_array_elements(coalesce(p_document -> 'related', '[]'::jsonb))
             WITH ORDINALITY AS x
        ORDER BY x.ordinality
    LOOP
        -- a table the customer row points to that no tritonX field feeds (a billing address
        -- the shop keeps): the write leaves it and the pointer alone; merges and erasures
        -- follow it (sync._pointed_tables)
        CONTINUE WHEN sync._mapping_unfed(rel.doc);
        r := r + 1;
        rrel := pg_catalog.format('%I.%I', rel.doc ->> 'schema',
                                  rel.doc ->> 'table')::pg_catalog.regclass;
        rkey := rel.doc ->> 'key';
        ptr := rel.doc #>> '{via,customer_column}';
        rkeyexpr := sync._compile_key(rrel, rkey, rel.doc);
        rover := CASE WHEN (SELECT a.attidentity FROM pg_catalog.pg_attribute AS a
                            WHERE a.attrelid = rrel AND a.attname = rkey) = 'a'
                      THEN ' OVERRIDING SYSTEM VALUE' ELSE '' END;
        r_sets := ARRAY[]::text[];
        r_cols := ARRAY[]::text[];
        r_vals := ARRAY[]::text[];
        -- the mapped columns (written always), then the create literals (fresh rows only)
        FOR col IN SELECT * FROM sync._compile_columns(rrel, rel.doc -> 'columns', n) LOOP
            n := col.n;
            src_items := src_items || col.src_item;
            decls := decls || col.decl;
            checks := checks || col.check_stmt;
            r_sets := r_sets || pg_catalog.format('%I = cur.v%s', col.name, n);
            r_cols := r_cols || pg_catalog.format('%I', col.name);
            r_vals := r_vals || pg_catalog.format('v%s', n);
        END LOOP;
        -- the literals written only when a row is created (not into a copy: it keeps the
        -- shared row's own values)
        SELECT coalesce(pg_catalog.array_agg(pg_catalog.format('%I', e.key) ORDER BY e.key),
                        ARRAY[]::text[]),
               coalesce(pg_catalog.array_agg(pg_catalog.format(
                            '%L::%s', e.value #>> '{}', sync._cast_type(a.atttypid))
                            ORDER BY e.key), ARRAY[]::text[])
        INTO r_create_cols, r_create_vals
        FROM pg_catalog.jsonb_each(coalesce(rel.doc -> 'create', '{}'::jsonb)) AS e
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = rrel AND a.attname = e.key;
        IF ptr IS NULL THEN
            -- the related row points to the customer (via.column), one per customer (and
            -- kind): updated in place when it exists, created when it does not
            kind := '';
            r_cols := ARRAY[pg_catalog.format('%I', rel.doc #>> '{via,column}')] || r_cols;
            r_vals := ARRAY['key'] || r_vals;
            IF rel.doc #> '{via,kind}' IS NOT NULL THEN
                -- the kind's literal, cast to its column's type
                SELECT pg_catalog.format('%L::%s', rel.doc #>> '{via,kind,value}',
                                         sync._cast_type(a.atttypid))
                INTO kind
                FROM pg_catalog.pg_attribute AS a
                WHERE a.attrelid = rrel AND a.attname = rel.doc #>> '{via,kind,column}';
                r_create_cols := ARRAY[pg_catalog.format('%I', rel.doc #>> '{via,kind,column}')]
                                 || r_create_cols;
                r_create_vals := ARRAY[kind] || r_create_vals;
                kind := pg_catalog.format(' AND r.%I = %s', rel.doc #>> '{via,kind,column}',
                                          kind);
            END IF;
            IF pg_catalog.cardinality(r_sets) > 0 THEN
                ctes_old := ctes_old || pg_catalog.format(
                    'r%1$s_in_place AS (UPDATE %2$s AS r SET %3$s FROM cur '
                    'WHERE r.%4$I = cur.key AND r.%4$I = ANY (ARRAY(SELECT cur.key FROM cur))'
                    '%5$s)',
                    r, rrel, pg_catalog.array_to_string(r_sets, ', '),
                    rel.doc #>> '{via,column}', kind);
            END IF;
            ctes_old := ctes_old || pg_catalog.format(
                'r%1$s_fresh AS (INSERT INTO %2$s (%3$I, %4$s)%5$s SELECT %6$s, %7$s FROM cur '
                'WHERE (SELECT 1 FROM %2$s AS r WHERE r.%8$I = cur.key%9$s LIMIT 1) IS NULL)',
                r, rrel, rkey, pg_catalog.array_to_string(r_cols || r_create_cols, ', '),
                rover, rkeyexpr,
                pg_catalog.array_to_string(
                    ARRAY(SELECT 'cur.' || v FROM pg_catalog.unnest(r_vals) AS v)
                    || r_create_vals, ', '),
                rel.doc #>> '{via,column}', kind);
            -- after the customer's insert: only for the customers it created
            ctes_late := ctes_late || pg_catalog.format(
                'r%1$s_created AS (INSERT INTO %2$s (%3$I, %4$s)%5$s SELECT %6$s, %7$s FROM new '
                'WHERE new.key IN (SELECT inserted.key FROM inserted))',
                r, rrel, rkey, pg_catalog.array_to_string(r_cols || r_create_cols, ', '),
                rover, rkeyexpr,
                pg_catalog.array_to_string(
                    ARRAY(SELECT 'new.' || v FROM pg_catalog.unnest(r_vals) AS v)
                    || r_create_vals, ', '));
            CONTINUE;
        END IF;
        -- shared: another customer points to the row, or any other row refers to it by a
        -- foreign key (partitions' cloned keys are their parent's). Customers of this page that
        -- share a row nobody else uses leave it as one after the other would: the one with the
        -- lowest key keeps it (updated in place), the others get copies; were they all copied,
        -- the row would stay behind with nobody pointing to it, holding the old address.
        SELECT pg_catalog.format(
                   'EXISTS (SELECT FROM %1$s AS o WHERE o.%2$I = c.%2$I AND o.%3$I <> c.%3$I '
                   'AND (o.%3$I < c.%3$I OR NOT EXISTS (SELECT FROM src AS s2 '
                   'JOIN syncmap.customer_map AS m2 ON m2.customer_number = s2.number '
                   'WHERE m2.customer_key = o.%3$I AND NOT s2.is_new '
                   'AND (m2.version IS NULL OR m2.version < s2.version))))',
                   crel, ptr, ckey)
               -- every other foreign key to the table (sync._related_foreign_keys: composite
               -- ones by their first column pair, which finds every real reference); one to
               -- another column than the key (a unique public code) through the row holding it.
               -- Another pointer of the customer row itself (shipped where it is billed) is this
               -- customer's use: only another customer's row makes it shared.
               || coalesce(pg_catalog.string_agg(
                      CASE WHEN u.referenced = rkey
                           THEN pg_catalog.format(
                                    ' OR EXISTS (SELECT FROM %s AS o WHERE o.%I = c.%I%s)',
                                    u.relation, u.col, ptr,
                                    CASE WHEN u.relation = crel
                                         THEN pg_catalog.format(' AND o.%1$I <> c.%1$I', ckey)
                                         ELSE '' END)
                           ELSE pg_catalog.format(
                                    ' OR EXISTS (SELECT FROM %1$s AS o JOIN %2$s AS x '
                                    'ON x.%3$I = o.%4$I WHERE x.%5$I = c.%6$I)',
                                    u.relation, rrel, u.referenced, u.col, rkey, ptr) END,
                      '' ORDER BY u.relation::text, u.col), '')
        INTO shared
        FROM sync._related_foreign_keys(rrel) AS u
        WHERE NOT (u.relation = crel AND u.col = ptr);
        cur_items := cur_items || pg_catalog.format('c.%I AS p%s', ptr, r)
                     || pg_catalog.format('CASE WHEN c.%I IS NULL OR %s THEN %s END AS k%s',
                                          ptr, shared, rkeyexpr, r);
        upd_sets := upd_sets || pg_catalog.format('%1$I = coalesce(cur.k%2$s, c.%1$I)', ptr, r);
        new_items := new_items || pg_catalog.format('%s AS k%s', rkeyexpr, r);
        ins_cols := ins_cols || pg_catalog.format('%I', ptr);
        ins_vals := ins_vals || pg_catalog.format('new.k%s', r);
        ctes_old := ctes_old
            -- only this customer points to it: updated in place
            || pg_catalog.format(
                   'r%1$s_in_place AS (UPDATE %2$s AS r SET %3$s FROM cur '
                   'WHERE r.%4$I = cur.p%1$s AND cur.k%1$s IS NULL AND r.%4$I = ANY (ARRAY('
                   'SELECT cur.p%1$s FROM cur WHERE cur.k%1$s IS NULL)) RETURNING 1)',
                   r, rrel, pg_catalog.array_to_string(r_sets, ', '), rkey)
            -- shared: a copy of it, the shared row untouched
            || pg_catalog.format(
                   'r%1$s_copied AS (INSERT INTO %2$s (%3$I%4$s)%5$s SELECT cur.k%1$s%6$s '
                   'FROM cur JOIN %2$s AS r ON r.%3$I = cur.p%1$s WHERE cur.k%1$s IS NOT NULL '
                   'AND r.%3$I = ANY (ARRAY(SELECT cur.p%1$s FROM cur WHERE cur.k%1$s IS NOT '
                   'NULL)) RETURNING 1)',
                   r, rrel, rkey,
                   (SELECT pg_catalog.string_agg(', ' || pg_catalog.format('%I', a.attname), ''
                                                 ORDER BY a.attnum)
                    FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = rrel AND a.attnum > 0 AND NOT a.attisdropped
                      AND a.attgenerated = '' AND a.attname <> rkey
                      AND (pg_catalog.format('%I', a.attname) = ANY (r_cols)
                           OR NOT a.attname = ANY (sync._copy_leaves(rrel, rkey)))),
                   rover,
                   (SELECT pg_catalog.string_agg(
                               ', ' || coalesce(
                                   (SELECT pg_catalog.format('cur.%s', m.v)
                                    FROM ROWS FROM (pg_catalog.unnest(r_cols),
                                                    pg_catalog.unnest(r_vals)) AS m (c, v)
                                    WHERE m.c = pg_catalog.format('%I', a.attname)),
                                   pg_catalog.format('r.%I', a.attname)),
                               '' ORDER BY a.attnum)
                    FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = rrel AND a.attnum > 0 AND NOT a.attisdropped
                      AND a.attgenerated = '' AND a.attname <> rkey
                      -- a column of a unique index of its own: its default, not the shared
                      -- row's value (sync._copy_leaves)
                      AND (pg_catalog.format('%I', a.attname) = ANY (r_cols)
                           OR NOT a.attname = ANY (sync._copy_leaves(rrel, rkey)))))
            -- the customer points to nothing yet: a fresh row
            || pg_catalog.format(
                   'r%1$s_fresh AS (INSERT INTO %2$s (%3$I%4$s)%5$s SELECT cur.k%1$s%6$s '
                   'FROM cur WHERE cur.k%1$s IS NOT NULL AND cur.p%1$s IS NULL RETURNING 1)',
                   r, rrel, rkey,
                   pg_catalog.array_to_string(
                       ARRAY['']::text[] || r_cols || r_create_cols, ', '),
                   rover,
                   pg_catalog.array_to_string(
                       ARRAY['']::text[]
                       || ARRAY(SELECT 'cur.' || v FROM pg_catalog.unnest(r_vals) AS v)
                       || r_create_vals, ', '));
        ctes_new := ctes_new || pg_catalog.format(
            'r%1$s_created AS (INSERT INTO %2$s (%3$I%4$s)%5$s SELECT new.k%1$s%6$s FROM new '
            'RETURNING 1)',
            r, rrel, rkey,
            pg_catalog.array_to_string(ARRAY['']::text[] || r_cols || r_create_cols, ', '),
            rover,
            pg_catalog.array_to_string(
                ARRAY['']::text[]
                || ARRAY(SELECT 'new.' || v FROM pg_catalog.unnest(r_vals) AS v)
                || r_create_vals, ', '));
        -- every row the customer rows will point to was written: a shop's trigger that skipped
        -- one (returned NULL) is SY031 naming its table, before the customer's foreign key to it
        -- (if any) is checked at the statement's end; without one, the customer would point to
        -- nothing, or to its row with the old values
        guards := guards || pg_catalog.format(
            'sync._related_rows_written(%1$L::pg_catalog.regclass, (SELECT count(*) FROM '
            'r%2$s_in_place) + (SELECT count(*) FROM r%2$s_copied) + (SELECT count(*) FROM '
            'r%2$s_fresh) + (SELECT count(*) FROM r%2$s_created), (SELECT count(*) FROM cur '
            'JOIN %1$s AS r ON r.%3$I = cur.p%2$s AND r.%3$I = ANY (ARRAY(SELECT cur.p%2$s '
            'FROM cur))) + (SELECT count(*) FROM cur WHERE cur.k%2$s '
            'IS NOT NULL AND cur.p%2$s IS NULL) + (SELECT count(*) FROM new))',
            rrel, r, rkey);
    END LOOP;

    -- existing customers are matched by the number column when nothing else is needed, else by
    -- their key through the view (and the customer row, for the related pointers)
    by_number := num_col IS NOT NULL AND r = 0;
    ctes := ARRAY[pg_catalog.format(
        'src AS (SELECT u.number, u.version, u.is_new%1$s FROM ROWS FROM ('
        'pg_catalog.unnest(p_numbers), pg_catalog.unnest(p_versions), '
        'pg_catalog.unnest(p_snapshots), pg_catalog.unnest(p_new)) '
        'AS u (number, version, snapshot, is_new) CROSS JOIN LATERAL '
        'pg_catalog.jsonb_populate_record(NULL::sync.customer_snapshot, u.snapshot) AS s)',
        pg_catalog.array_to_string(ARRAY['']::text[] || src_items, ', '))];
    IF by_number THEN
        ctes := ctes || 'cur AS (SELECT src.* FROM src WHERE NOT src.is_new)'::text;
    ELSE
        -- one probe by number per staged row (LIMIT 1: never a join the planner could turn
        -- into a scan of the whole customer table, whose cost grows with the table, not the page)
        ctes := ctes || pg_catalog.format(
            'cur AS MATERIALIZED (SELECT src.*, m.* FROM src CROSS JOIN LATERAL ('
            'SELECT m.customer_key AS key%1$s FROM syncmap.customer_map AS m%2$s '
            'WHERE m.customer_number = src.number '
            'AND (m.version IS NULL OR m.version < src.version) LIMIT 1) AS m '
            'WHERE NOT src.is_new)',
            pg_catalog.array_to_string(ARRAY['']::text[] || cur_items, ', '),
            CASE WHEN r > 0 THEN pg_catalog.format(' JOIN %s AS c ON c.%I = m.customer_key',
                                                   crel, ckey) ELSE '' END);
    END IF;
    ctes := ctes || ctes_old;
    -- the rows to update are reached through their index by the page's own keys (= ANY of
    -- the array), not by joining the page to a scan of the whole table
    ctes := ctes || pg_catalog.format(
        'updated AS (UPDATE %1$s AS c SET %2$s FROM cur WHERE %3$s%4$s '
        'RETURNING c.%5$I AS key, cur.number, cur.version)',
        crel, pg_catalog.array_to_string(upd_sets, ', '),
        CASE WHEN by_number THEN pg_catalog.format(
                 'c.%1$I = cur.number AND c.%1$I = ANY (ARRAY(SELECT cur.number FROM cur))',
                 num_col)
             ELSE pg_catalog.format(
                 'c.%1$I = cur.key AND c.%1$I = ANY (ARRAY(SELECT cur.key FROM cur))', ckey)
        END,
        CASE WHEN ver_col IS NOT NULL
             THEN pg_catalog.format(' AND (c.%1$I IS NULL OR c.%1$I < cur.version)', ver_col)
             ELSE '' END,
        ckey);
    ctes := ctes || pg_catalog.format(
        'new AS MATERIALIZED (SELECT src.*, %1$s AS key%2$s FROM src WHERE src.is_new)',
        keyexpr, pg_catalog.array_to_string(ARRAY['']::text[] || new_items, ', '));
    ctes := ctes || ctes_new;
    ctes := ctes || pg_catalog.format(
        'inserted AS (INSERT INTO %1$s AS c (%2$I, %3$s)%4$s SELECT new.key, %5$s FROM new%6$s '
        'RETURNING c.%2$I AS key)',
        crel, ckey, pg_catalog.array_to_string(ins_cols, ', '), over,
        pg_catalog.array_to_string(ins_vals, ', '),
        CASE WHEN num_col IS NOT NULL
             THEN pg_catalog.format(' ON CONFLICT (%I) DO NOTHING', num_col) ELSE '' END);
    ctes := ctes || ctes_late;
    written := '(SELECT count(*) FROM updated)';
    created := '(SELECT count(*) FROM inserted)';
    IF linked THEN
        -- the link holds the guard (version) and/or the number: what it took is what counts
        ctes := ctes || pg_catalog.format(
            'link_updated AS (INSERT INTO sync.customer_link AS l (customer_key, '
            'customer_number, version) SELECT updated.key::text, %1$s, %2$s FROM updated '
            'ON CONFLICT (customer_key) DO UPDATE SET version = excluded.version '
            'WHERE l.version IS NULL OR l.version < excluded.version RETURNING 1)',
            CASE WHEN num_col IS NULL THEN 'updated.number' ELSE 'NULL::text' END,
            CASE WHEN ver_col IS NULL THEN 'updated.version' ELSE 'NULL::integer' END);
        ctes := ctes || pg_catalog.format(
            'link_created AS (INSERT INTO sync.customer_link AS l (customer_key, '
            'customer_number, version) SELECT new.key::text, %1$s, %2$s FROM new '
            'WHERE new.key IN (SELECT inserted.key FROM inserted) %3$s RETURNING 1)',
            CASE WHEN num_col IS NULL THEN 'new.number' ELSE 'NULL::text' END,
            CASE WHEN ver_col IS NULL THEN 'new.version' ELSE 'NULL::integer' END,
            -- a number whose customer row the shop deleted: the link moves to the new row
            -- (tritonX is leading, as on a shop column); a live customer holding the number is
            -- a concurrent creator, counted as a mismatch (the page retries)
            CASE WHEN num_col IS NULL THEN pg_catalog.format(
                     'ON CONFLICT (customer_number) DO UPDATE SET customer_key = '
                     'excluded.customer_key, version = excluded.version WHERE NOT EXISTS '
                     '(SELECT FROM %1$s AS c WHERE c.%2$I = l.customer_key::%3$s)',
                     crel, ckey, ckeytype)
                 ELSE 'ON CONFLICT DO NOTHING' END);
        IF ver_col IS NULL THEN
            written := '(SELECT count(*) FROM link_updated)';
        END IF;
        -- a version-only link of a new customer is counted by the customer's insert
        IF num_col IS NULL THEN
            created := '(SELECT count(*) FROM link_created)';
        END IF;
    END IF;
    body := 'WITH ' || pg_catalog.array_to_string(ctes, E',\n        ')
            || pg_catalog.format(E'\n    SELECT %1$s + %2$s%3$s, %2$s', written, created,
                                 pg_catalog.array_to_string(
                                     ARRAY['']::text[] || guards, ' + '));

    RETURN pg_catalog.concat_ws(E';\n',
        'REVOKE ALL ON SCHEMA syncmap FROM PUBLIC',
        'DROP VIEW IF EXISTS syncmap.customer_map',
        view_sql,
        pg_catalog.format(
            E'CREATE OR REPLACE FUNCTION syncmap.write_customers(\n'
            '    p_numbers text[], p_versions integer[], p_snapshots jsonb[], p_new boolean[])\n'
            'RETURNS TABLE (rows_written bigint, rows_created bigint)\n'
            'LANGUAGE plpgsql\nVOLATILE\nSECURITY INVOKER\n'
            'SET search_path = pg_catalog, pg_temp\n'
            -- planned for each page's arrays: from a session's sixth call on, PL/pgSQL would
            -- otherwise keep a generic plan, which for a write with related rows (an address
            -- table) ran ten times slower than the page's own (4.2 s against 0.4 s a page)
            'SET plan_cache_mode = force_custom_plan\nAS %L',
            E'\nBEGIN\n    RETURN QUERY\n    ' || body || E';\nEND\n'),
        pg_catalog.format(
            E'CREATE OR REPLACE FUNCTION syncmap.snapshot_defect(p_snapshot jsonb)\n'
            'RETURNS text\nLANGUAGE plpgsql\nSTABLE\nSECURITY INVOKER\n'
            'SET search_path = pg_catalog, pg_temp\nAS %L',
            E'\nDECLARE\n    s sync.customer_snapshot;\n'
            || pg_catalog.array_to_string(
                   ARRAY(SELECT '    ' || d || ';' FROM pg_catalog.unnest(decls) AS d), E'\n')
            || E'\nBEGIN\n    BEGIN\n        s := pg_catalog.jsonb_populate_record('
               'NULL::sync.customer_snapshot, p_snapshot);\n'
               '    EXCEPTION WHEN data_exception THEN RETURN NULL; END;\n'
            || pg_catalog.array_to_string(checks, E'\n')
            || E'\n    RETURN NULL;\nEND\n'),
        -- the engine's generic steps (merge, anonymisation, delete) name a customer by its key
        -- as text (the key's own text form): these look it up and lock it with the key's type
        pg_catalog.format(
            E'CREATE OR REPLACE FUNCTION syncmap.key_of(p_number text)\n'
            'RETURNS text\nLANGUAGE sql\nSTABLE\nSECURITY INVOKER\n'
            'SET search_path = pg_catalog, pg_temp\nAS %L',
            'SELECT m.customer_key::text FROM syncmap.customer_map AS m '
            'WHERE m.customer_number = p_number'),
        pg_catalog.format(
            E'CREATE OR REPLACE FUNCTION syncmap.number_of(p_key text)\n'
            'RETURNS text\nLANGUAGE sql\nSTABLE\nSECURITY INVOKER\n'
            'SET search_path = pg_catalog, pg_temp\nAS %L',
            pg_catalog.format('SELECT m.customer_number FROM syncmap.customer_map AS m '
                              'WHERE m.customer_key = p_key::%s', ckeytype)),
        pg_catalog.format(
            E'CREATE OR REPLACE FUNCTION syncmap.lock_customers(p_keys text[])\n'
            'RETURNS void\nLANGUAGE plpgsql\nVOLATILE\nSECURITY INVOKER\n'
            'SET search_path = pg_catalog, pg_temp\nAS %L',
            pg_catalog.format(E'\nBEGIN\n    PERFORM FROM %1$s AS c WHERE c.%2$I = ANY (p_keys::%3$s[])\n'
                              '    ORDER BY c.%2$I FOR UPDATE;\nEND\n',
                              crel, ckey, ckeytype)),
        -- a login for a number never seen (sync.login_key): the write of a new customer from
        -- an empty snapshot and no version (older than any): the key, the number, the create
        -- literals, null_as values, and the related rows it points to. The new key; NULL when
        -- no row was created (the feed created the customer first, or a trigger skipped it)
        pg_catalog.format(
            E'CREATE OR REPLACE FUNCTION syncmap.create_stub(p_number text)\n'
            'RETURNS text\nLANGUAGE plpgsql\nVOLATILE\nSECURITY INVOKER\n'
            'SET search_path = pg_catalog, pg_temp\nAS %L',
            E'\nDECLARE\n    made bigint;\nBEGIN\n'
            '    SELECT w.rows_created INTO made FROM syncmap.write_customers(ARRAY[p_number], '
            'ARRAY[NULL::integer], ARRAY[''{}''::jsonb], ARRAY[true]) AS w;\n'
            '    IF made = 0 THEN\n        RETURN NULL;\n    END IF;\n'
            '    RETURN syncmap.key_of(p_number);\nEND\n'),
        -- what the code above was made from (sync._write_is_current compares it)
        pg_catalog.format(
            E'CREATE OR REPLACE FUNCTION syncmap.write_fingerprint()\n'
            'RETURNS text\nLANGUAGE sql\nIMMUTABLE\nSECURITY INVOKER\n'
            'SET search_path = pg_catalog, pg_temp\nAS %L',
            pg_catalog.format('SELECT %L::text', sync._write_fingerprint(p_document))),
        'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA syncmap FROM PUBLIC',
        'REVOKE ALL ON ALL TABLES IN SCHEMA syncmap FROM PUBLIC') || E';\n';
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Installing
-- ---------------------------------------------------------------------------------------------

-- Refuse (SY060) a mapping document sync.mapping_defects finds a defect in that is not a
-- warning, naming the first defect's path and problem; return otherwise. Without
-- p_privileges, the owner role's missing privileges and row-level security policies are left
-- to the caller (the reinstall of the active document: they do not change what compiles).
CREATE OR REPLACE FUNCTION sync._refuse_defective_mapping(p_document jsonb,
                                                          p_privileges boolean)
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner_role text := sync.role_name('owner');
    defect     record;
BEGIN
    SELECT d.path, d.problem INTO defect
    FROM sync.mapping_defects(p_document) AS d
    WHERE d.problem NOT LIKE 'warning: %'
      AND (p_privileges
           OR NOT (d.problem LIKE owner_role || ' lacks %'
                   OR d.problem LIKE '%has row-level security and no policy lets%'))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY060',
            MESSAGE = pg_catalog.format('mapping refused: %s: %s', defect.path, defect.problem);
    END IF;
END
$$;

-- Check, compile and install a mapping document; returns its version number. Refused (SY060,
-- naming the first defect's path and problem) when sync.mapping_defects reports a defect that is
-- not a warning. The generated SQL is executed here, as the owner role (SY024 otherwise), so
-- schema syncmap and everything in it belong to the owner; the new version becomes the only
-- active one and one audit row records it (no personal data: the version, the document's
-- sha256, the installing role). The document that is active already is compiled again from
-- today's catalog, the compiled moves too, and the triggers bound again
-- (gdpr._bind_local_consents, sync._bind_shop_key_changes); its version is returned, no new
-- version, no audit row; refused (SY060, its first defect) when the catalog no longer fits it,
-- not for the owner role's privileges (the bindings warn of those). Either way the consent triggers and the shop's key-change triggers follow the mapped
-- table. p_source says where it came from (a file name),
-- never its content.
CREATE OR REPLACE FUNCTION sync.install_mapping(p_document jsonb, p_source text)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner_role text := sync.role_name('owner');
    digest     text := sync._digest(p_document::text);
    installed  integer;
BEGIN
    IF current_user <> owner_role THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY024',
            MESSAGE = pg_catalog.format('mappings are installed as %s (SET ROLE %I)',
                                        owner_role, owner_role);
    END IF;
    -- one installation at a time; the feed's apply waits for the new code
    LOCK TABLE sync.mapping_version IN EXCLUSIVE MODE;
    SELECT v.version INTO installed
    FROM sync.mapping_version AS v
    WHERE v.active AND v.sha256 = digest;
    IF installed IS NOT NULL THEN
        -- checked and compiled again from today's catalog (a foreign key the shop added to a
        -- related table since, say), the compiled moves too; the same version, no audit row.
        -- A privilege revoked since does not refuse it (the bindings below warn of it)
        PERFORM sync._refuse_defective_mapping(p_document, false);
        EXECUTE sync.compile_mapping(p_document);
        PERFORM gdpr._bind_local_consents();  -- a GRANT since may let them on (docs/mapping.md)
        PERFORM sync._bind_shop_key_changes();
        PERFORM sync._moves_current(true);
        RETURN installed;
    END IF;
    PERFORM sync._refuse_defective_mapping(p_document, true);
    EXECUTE sync.compile_mapping(p_document);
    SELECT coalesce(max(v.version), 0) + 1 INTO installed FROM sync.mapping_version AS v;
    UPDATE sync.mapping_version AS v SET active = false WHERE v.active;
    INSERT INTO sync.mapping_version (version, document, sha256, source, installed_by, active)
    VALUES (installed, p_document, digest, p_source,
            CASE WHEN sync.is_identifier(session_user) THEN session_user ELSE 'dba' END, true);
    -- local changes of a column holding a tritonX consent field (sql/83_gdpr_consent.sql)
    PERFORM gdpr._bind_local_consents();
    -- the shop's own deletes and key changes of customers (sql/73_shop_key_changes.sql)
    PERFORM sync._bind_shop_key_changes();
    -- merges, anonymisations and deletes on the new table (sql/57_moves_compile.sql)
    PERFORM sync._moves_current(true);
    INSERT INTO sync.audit (actor, action, outcome, version, counts, reason)
    VALUES (CASE WHEN sync.is_identifier(session_user) THEN session_user ELSE 'dba' END,
            'mapping.installed', 'applied', installed,
            pg_catalog.jsonb_build_object('mapping_version', installed),
            'sha256 ' || digest);
    RETURN installed;
END
$$;
