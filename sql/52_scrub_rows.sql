-- Scrubbing and deleting a local customer's rows, the building blocks of anonymise and delete
-- (sql/55_anonymise.sql) and of retention (sql/85_gdpr_retention.sql), on the mapped customer
-- table (sync.mapped_customer(), any schema and key type): personal data in the customer row and
-- in every customer-linked table (sync.customer_links(): foreign keys and declared references)
-- is overwritten per the PII registry (sql/40_registry.sql), the rows of delete_rows tables go,
-- transactions (orders, amounts, dates) stay. A row the customer points to (a [[related]] table
-- with via.customer_column, such as an address) is scrubbed when only this customer uses it,
-- detached (the customer's pointer set NULL) when another customer row or another foreign key
-- uses it too, and, when the pointer is NOT NULL, replaced by a scrubbed copy of the customer's
-- own: a household member's address is never touched. A delete of a customer with bookkeeping
-- rows (orders) is planned and carried out as an anonymisation; without, the customer, its
-- linked rows, the rows it alone points to and its sync.customer_link row are removed.
-- A customer is named by its key as text (the key's own text form, syncmap.key_of(number));
-- every statement on a shop table casts it back to the key's type ($1::<key type>), so the
-- key's index is used. Private: no decisions (tombstones, refusals, audit) here.
-- SQLSTATE: SY022 PII registry incomplete (refused: fails closed). Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Building blocks (private)
-- ---------------------------------------------------------------------------------------------

-- The SET list that scrubs the given columns (all classified ones when NULL) of a table per
-- their strategies (alias `t`), and the predicate "some of them differ from their scrubbed
-- value"; both NULL when no such column changes. A placeholder's {id} is the row's
-- single-column primary key, else the customer id in p_key_column. On a customer-linked table
-- p_key_column is the column that names the customer: a column that belongs to another of the
-- table's customer columns (sync.pii_column.belongs_to: a gift's buyer's e-mail, when the
-- recipient is erased) is not scrubbed.
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
          AND (p.belongs_to IS NULL OR p.belongs_to = p_key_column::text)
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


-- The key of the mapped customer that p_key names, in the key's own text form (the engine's
-- name of a customer: '042' gives '42', a uuid in capitals its lower-case form), or NULL when
-- p_key is not of the key's type or names nobody. For keys a caller hands in.
CREATE OR REPLACE FUNCTION sync._local_customer_key(p_key text)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped    record;
    local_key text;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SY061', MESSAGE = 'no mapping is installed';
    END IF;
    IF p_key IS NULL OR pg_catalog.octet_length(p_key) > sync._key_limit() THEN
        RETURN NULL;
    END IF;
    BEGIN
        EXECUTE pg_catalog.format('SELECT t.%1$I::text FROM %2$s AS t WHERE t.%1$I = $1::%3$s',
                                  mapped.key_column, mapped.relation, mapped.key_type)
            INTO local_key USING p_key;
    EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
        RETURN NULL;
    END;
    RETURN local_key;
END
$$;

-- Whether the mapped customer with key p_key (as text) exists.
CREATE OR REPLACE FUNCTION sync._customer_exists(p_key text)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync._local_customer_key(p_key) IS NOT NULL
$$;

-- The rows the customer p_key points to: per table of sync._pointed_tables(), the pointed-to
-- row's key as text (no row when the pointer is NULL) and whether the row is shared (another
-- customer row points to it, or a row of any other table refers to it by a single-column
-- foreign key: then it is not this customer's alone). p_own_rows: for an erasure, the
-- customer's own rows of its linked tables do not make it shared (sync._related_in_use).
DROP FUNCTION IF EXISTS sync._pointed_rows(text);
CREATE OR REPLACE FUNCTION sync._pointed_rows(p_key text, p_own_rows boolean DEFAULT false)
RETURNS TABLE (
    relation        regclass,
    qualified_name  text,
    key_column      name,
    key_type        regtype,
    pointer         name,
    target          text,
    shared          boolean,
    required        boolean,
    related         jsonb
)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped record;
    item   record;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    FOR item IN SELECT * FROM sync._pointed_tables() LOOP
        EXECUTE pg_catalog.format(
            'SELECT r.%1$I::text FROM %2$s AS t JOIN %3$s AS r ON r.%1$I = t.%4$I '
            'WHERE t.%5$I = $1::%6$s',
            item.key_column, mapped.relation, item.relation, item.pointer, mapped.key_column,
            mapped.key_type)
            INTO target USING p_key;
        CONTINUE WHEN target IS NULL;
        relation := item.relation;
        qualified_name := item.qualified_name;
        key_column := item.key_column;
        key_type := item.key_type;
        pointer := item.pointer;
        required := item.required;
        related := item.related;
        -- who else uses the row (sync._related_in_use)
        EXECUTE 'SELECT ' || sync._related_in_use(item.relation, item.key_column, item.key_type,
                                                  item.pointer, '$1', '$2',
                                                  p_own_rows => p_own_rows)
            INTO shared USING target, p_key;
        RETURN NEXT;
    END LOOP;
END
$$;

DROP FUNCTION IF EXISTS sync._lock_pointed_rows(text);

-- How many columns have no PII strategy, for an anonymisation: those coverage lists.
CREATE OR REPLACE FUNCTION sync._unclassified_count()
RETURNS bigint
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FROM sync.unclassified_columns()
$$;

DROP FUNCTION IF EXISTS sync._erasure_plan(bigint, boolean);
DROP FUNCTION IF EXISTS sync._has_bookkeeping(bigint);
DROP FUNCTION IF EXISTS sync._erase_rows(bigint, boolean);

-- The customer-linked tables an anonymisation or a delete goes through, in
-- sync.customer_links() order, each with its declared anonymise rule (`declared`: scrub by
-- default, delete_rows; `bookkeeping`: its rows make a delete an anonymisation): every linked
-- table but the customer table itself.
CREATE OR REPLACE FUNCTION sync._erasure_links()
RETURNS TABLE (relation regclass, table_schema name, table_name name, qualified_name text,
               fk_column name, column_type regtype, declared text, bookkeeping boolean)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 20
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.relation, l.table_schema, l.table_name, l.qualified_name, l.fk_column,
           l.column_type, coalesce(r.action, 'scrub'), coalesce(r.bookkeeping, false)
    FROM sync.customer_links() AS l
    LEFT JOIN sync.anonymise_rule AS r
        ON r.table_schema = l.table_schema AND r.table_name = l.table_name
    WHERE l.relation IS DISTINCT FROM (SELECT m.relation FROM sync.mapped_customer() AS m)
$$;

-- The steps of scrubbing the customer p_key's rows one foreign key further
-- (sync._further_links(): an order's addresses, order lines), reached through its linked rows:
-- (table, action, rows) as sync._erasure_steps gives them, one per foreign key with classified
-- columns to scrub and rows to scrub, phase 1, before the linked rows change. They are
-- scrubbed for a removed customer too, before its linked rows are deleted: the shop's foreign
-- key action then decides what becomes of them (ON DELETE CASCADE deletes them, SET NULL keeps
-- them scrubbed, NO ACTION refuses the delete), and none is left holding personal data.
CREATE OR REPLACE FUNCTION sync._further_steps(p_key text)
RETURNS TABLE (table_name text, action text, rows bigint, relation regclass, key_column name,
               key_type regtype, target text, pointer name, related jsonb, phase integer)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    further record;
BEGIN
    FOR further IN SELECT * FROM sync._further_links() LOOP
        CONTINUE WHEN sync._scrub_assignments(further.relation, further.first_column) IS NULL;
        EXECUTE pg_catalog.format(
            'SELECT count(*) FROM %s AS t JOIN %s AS p ON %s WHERE p.%I = $1::%s',
            further.relation, further.link, further.joined, further.fk_column,
            further.column_type)
            INTO rows USING p_key;
        CONTINUE WHEN rows = 0;
        table_name := further.qualified_name;
        action := 'scrub';
        relation := further.relation;
        key_column := further.first_column;
        key_type := NULL;
        target := p_key;
        pointer := NULL;
        related := NULL;
        phase := 1;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Whether the row of the related table p_relation that p_target names is one of customer
-- p_customer's linked rows (the table is the customer's address book too: a foreign key or a
-- declared reference to the customer), as a boolean SQL expression ('false' when the table is
-- not linked); p_target and p_customer are text SQL expressions. Such a row is scrubbed or
-- deleted with the customer's linked rows, not again as a row it points to or reaches.
CREATE OR REPLACE FUNCTION sync._booked(
    p_relation regclass, p_key_column name, p_key_type regtype, p_target text,
    p_customer text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN pg_catalog.count(*) = 0 THEN 'false' ELSE
        pg_catalog.format('EXISTS (SELECT FROM %s AS b WHERE b.%I = (%s)::%s AND (%s))',
                          p_relation, p_key_column, p_target, p_key_type,
                          pg_catalog.string_agg(pg_catalog.format('b.%I = (%s)::%s',
                                                                  l.fk_column, p_customer,
                                                                  l.column_type),
                                                ' OR ' ORDER BY l.fk_column)) END
    FROM sync.customer_links() AS l
    WHERE l.relation = p_relation
$$;

-- The rows of the related table p_relation (one the customer row points to: an address) that
-- the customers p_keys reach only through their own linked rows: a row a linked table's
-- single-column foreign key names (an order's delivery address) on a row of the customer,
-- that the customer row does not point to (sync._erasure_steps handles that one) and that
-- nothing but the customer, its own rows and the rows erased customers keep uses
-- (sync._related_in_use with p_own_rows: the address an order was delivered to before the
-- customer moved, also when an erased household member's orders keep it). As a query of
-- (o, t): the customer's key and the row's key, as text; p_keys is a text[] SQL expression.
-- With p_candidates, every such row the linked rows name, used or not (what is locked before
-- the decision). NULL when no linked table refers to p_relation. p_gone: the customers erased
-- before in the same run (sync._related_in_use), for the dry run of several.
DROP FUNCTION IF EXISTS sync._reached_rows(regclass, text, boolean);
DROP FUNCTION IF EXISTS sync._reached_rows(regclass, text, boolean, text, text);
CREATE OR REPLACE FUNCTION sync._reached_rows(
    p_relation regclass, p_keys text, p_candidates boolean DEFAULT false,
    p_gone text DEFAULT NULL)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH related AS (
        SELECT p.key_column, p.key_type,
               pg_catalog.min(p.pointer) AS pointer,
               pg_catalog.string_agg(pg_catalog.format('c.%I = w.t::%s', p.pointer, p.key_type),
                                     ' OR ' ORDER BY p.pointer) AS pointed
        FROM sync._pointed_tables() AS p
        WHERE p.relation = p_relation
        GROUP BY p.key_column, p.key_type
    ),
    reached AS (
        SELECT pg_catalog.string_agg(
                   pg_catalog.format(
                       'SELECT l.%1$I::text, l.%2$I::text FROM %3$s AS l '
                       'WHERE l.%1$I = ANY ((%4$s)::%5$s[]) AND l.%2$I IS NOT NULL',
                       l.fk_column, a.attname, l.relation, p_keys, l.column_type),
                   ' UNION ' ORDER BY l.qualified_name, l.fk_column, a.attname) AS pairs
        FROM sync._erasure_links() AS l
        JOIN pg_catalog.pg_constraint AS c
            ON c.conrelid = l.relation AND c.contype = 'f' AND c.confrelid = p_relation
           AND c.conparentid = 0 AND pg_catalog.cardinality(c.conkey) = 1
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN pg_catalog.pg_attribute AS k ON k.attrelid = c.confrelid AND k.attnum = c.confkey[1]
        JOIN related AS r ON r.key_column = k.attname
    )
    SELECT pg_catalog.format(
               'SELECT w.o, w.t FROM (%1$s) AS w (o, t) '
               'WHERE NOT EXISTS (SELECT FROM %2$s AS c WHERE c.%3$I = w.o::%4$s AND (%5$s))%6$s%7$s',
               x.pairs, m.relation, m.key_column, m.key_type, r.pointed,
               CASE WHEN p_candidates THEN ''
                    ELSE ' AND NOT (' || sync._related_in_use(
                        p_relation, r.key_column, r.key_type, r.pointer, 'w.t', 'w.o',
                        p_own_rows => true, p_gone => p_gone) || ')' END,
               ' AND NOT ' || sync._booked(p_relation, r.key_column, r.key_type, 'w.t', 'w.o'))
    FROM reached AS x, related AS r, sync.mapped_customer() AS m
    WHERE x.pairs IS NOT NULL
$$;

-- Whether the customer p_key has rows in a bookkeeping table (orders): then a delete
-- anonymises.
CREATE OR REPLACE FUNCTION sync._has_bookkeeping(p_key text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    link     record;
    found    boolean;
BEGIN
    FOR link IN SELECT * FROM sync._erasure_links() AS l WHERE l.bookkeeping LOOP
        EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM %s AS t WHERE t.%I = $1::%s)',
                                  link.relation, link.fk_column, link.column_type)
            INTO found USING p_key;
        IF found THEN
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;

-- The steps of anonymising (p_delete false) or deleting (p_delete true) the customer p_key:
-- (table, action, rows), what carrying a step out needs, and its phase (they run by phase,
-- then in the order given). Actions: scrub (for a removed customer too: a row it points to or
-- its rows reach that only erased customers' kept rows use besides, sync._related_in_use),
-- delete_rows (a linked table's rows, or the row the customer alone points to), detach (the
-- customer's pointer to a shared row set NULL; the row is untouched), scrubbed copy (a NOT NULL
-- pointer to a shared row: a copy of it, scrubbed, becomes the customer's own), delete (the
-- customer row). A delete of a customer with bookkeeping rows is planned as an anonymisation.
-- Linked tables first (1), then (anonymise) the pointed-to rows (3) and the customer row (4), or
-- (delete) the customer row (2) and then the rows it alone pointed to (its foreign key holds
-- them till then).
-- p_let_go ({pointed table: n}) plans the customer's turn in a run that erases several: n rows
-- that use the row the customer points to (customers erased before it in the same run) will
-- have let go of it by then; when nothing else uses it, it is the customer's alone (scrubbed
-- in place, not copied or detached). p_before: the customers that run erases before this one
-- (anonymised: sync._anonymisations_plan): they have let go of a row this customer's rows use
-- (their pointer to it is a copy or NULL by then) and their wishes are gone, so a row the
-- customer points to or its rows reach may be its alone by its turn.
DROP FUNCTION IF EXISTS sync._erasure_steps(text, boolean);
DROP FUNCTION IF EXISTS sync._erasure_steps(text, boolean, jsonb);
CREATE OR REPLACE FUNCTION sync._erasure_steps(
    p_key text, p_delete boolean, p_let_go jsonb DEFAULT '{}', p_before text[] DEFAULT '{}')
RETURNS TABLE (table_name text, action text, rows bigint, relation regclass, key_column name,
               key_type regtype, target text, pointer name, related jsonb, phase integer)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped   record;
    link     record;
    pointed  record;
    remove   boolean := p_delete AND NOT sync._has_bookkeeping(p_key);
    shared   boolean;
    -- a removed customer's row that only erased customers' kept rows use besides its own:
    -- scrubbed, not deleted (sync._related_in_use without p_erased)
    kept     boolean;
    kept_rows bigint;
    gone_rows bigint;
    users    bigint;
    reach    text;
    -- the rows scrubbed or deleted so far through a pointer: a row two pointers name (billed
    -- to where it lives) changes once
    done     text[] := '{}';
    -- the row is one of its linked rows (an address book): scrubbed or deleted as such
    booked   boolean;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    -- the rows one foreign key further, before their linked rows change
    RETURN QUERY SELECT * FROM sync._further_steps(p_key);
    FOR link IN SELECT * FROM sync._erasure_links() LOOP
        action := CASE WHEN remove THEN 'delete_rows' ELSE link.declared END;
        CONTINUE WHEN action = 'scrub'
                      AND sync._scrub_assignments(link.relation, link.fk_column) IS NULL;
        EXECUTE pg_catalog.format('SELECT count(*) FROM %s AS t WHERE t.%I = $1::%s',
                                  link.relation, link.fk_column, link.column_type)
            INTO rows USING p_key;
        CONTINUE WHEN rows = 0;
        table_name := link.qualified_name;
        relation := link.relation;
        key_column := link.fk_column;
        key_type := link.column_type;
        target := p_key;
        pointer := NULL;
        related := NULL;
        phase := 1;
        RETURN NEXT;
    END LOOP;
    FOR pointed IN SELECT * FROM sync._pointed_rows(p_key, true) LOOP
        shared := pointed.shared;
        IF shared AND (p_let_go ->> pointed.qualified_name)::bigint > 0 THEN
            EXECUTE 'SELECT ' || sync._related_in_use(pointed.relation, pointed.key_column,
                                                      pointed.key_type, pointed.pointer, '$1',
                                                      '$2', true, true)
                INTO users USING pointed.target, p_key;
            shared := users > (p_let_go ->> pointed.qualified_name)::bigint;
        END IF;
        IF shared AND pg_catalog.cardinality(p_before) > 0 THEN
            EXECUTE 'SELECT ' || sync._related_in_use(pointed.relation, pointed.key_column,
                                                      pointed.key_type, pointed.pointer, '$1',
                                                      '$2', p_own_rows => true, p_gone => '$3')
                INTO shared USING pointed.target, p_key, p_before;
        END IF;
        kept := false;
        IF remove AND NOT shared THEN
            EXECUTE 'SELECT ' || sync._related_in_use(
                        pointed.relation, pointed.key_column, pointed.key_type, pointed.pointer,
                        '$1', '$2', p_own_rows => true, p_erased => false,
                        p_gone => CASE WHEN pg_catalog.cardinality(p_before) > 0 THEN '$3' END)
                INTO kept USING pointed.target, p_key, p_before;
        END IF;
        action := CASE
            WHEN remove AND shared THEN NULL
            WHEN remove AND kept THEN 'scrub'
            WHEN remove THEN 'delete_rows'
            WHEN NOT shared THEN 'scrub'
            WHEN pointed.required THEN 'scrubbed copy'
            ELSE 'detach'
        END;
        IF action IN ('scrub', 'delete_rows') THEN
            EXECUTE 'SELECT ' || sync._booked(pointed.relation, pointed.key_column,
                                              pointed.key_type, '$1', '$2')
                INTO booked USING pointed.target, p_key;
        END IF;
        CONTINUE WHEN action IS NULL
                      OR (action = 'scrub'
                          AND sync._scrub_assignments(pointed.relation, pointed.key_column)
                              IS NULL)
                      OR (action IN ('scrub', 'delete_rows')
                          AND (booked
                               OR pointed.relation::text || ':' || pointed.target = ANY (done)));
        IF action IN ('scrub', 'delete_rows') THEN
            done := done || (pointed.relation::text || ':' || pointed.target);
        END IF;
        table_name := pointed.qualified_name;
        rows := 1;
        relation := pointed.relation;
        key_column := pointed.key_column;
        key_type := pointed.key_type;
        target := pointed.target;
        pointer := pointed.pointer;
        related := pointed.related;
        phase := 3;
        RETURN NEXT;
    END LOOP;
    -- the rows only its own linked rows reach (sync._reached_rows): scrubbed, or deleted after
    -- a removed customer's rows
    -- (for a removed customer, those erased customers' kept rows use as well are scrubbed)
    FOR pointed IN SELECT DISTINCT ON (p.relation) p.relation, p.qualified_name, p.key_column,
                          p.key_type, p.related, p.pointer
                   FROM sync._pointed_tables() AS p ORDER BY p.relation, p.pointer LOOP
        reach := sync._reached_rows(pointed.relation, 'ARRAY[$1]', false,
                                    CASE WHEN pg_catalog.cardinality(p_before) > 0
                                         THEN '$2' END);
        CONTINUE WHEN reach IS NULL;
        EXECUTE pg_catalog.format(
            'SELECT count(DISTINCT p.t) FILTER (WHERE %1$s), '
            'count(DISTINCT p.t) FILTER (WHERE NOT (%1$s)) FROM (%2$s) AS p',
            CASE WHEN remove THEN sync._related_in_use(
                     pointed.relation, pointed.key_column, pointed.key_type, pointed.pointer,
                     'p.t', 'p.o', p_own_rows => true, p_erased => false,
                     p_gone => CASE WHEN pg_catalog.cardinality(p_before) > 0 THEN '$2' END)
                 ELSE 'true' END,
            reach)
            INTO kept_rows, gone_rows USING p_key, p_before;
        table_name := pointed.qualified_name;
        relation := pointed.relation;
        key_column := pointed.key_column;
        key_type := pointed.key_type;
        target := NULL;
        pointer := NULL;
        related := pointed.related;
        phase := 3;
        IF kept_rows > 0
           AND sync._scrub_assignments(pointed.relation, pointed.key_column) IS NOT NULL THEN
            action := 'scrub';
            rows := kept_rows;
            RETURN NEXT;
        END IF;
        CONTINUE WHEN gone_rows = 0;
        action := 'delete_rows';
        rows := gone_rows;
        RETURN NEXT;
    END LOOP;
    -- the customer row last: a delete runs before the pointed-to rows' (phase 2)
    RETURN QUERY
    SELECT pg_catalog.concat_ws('.', n.nspname, r.relname),
           CASE WHEN remove THEN 'delete' ELSE 'scrub' END, 1::bigint, mapped.relation,
           mapped.key_column, mapped.key_type, p_key, NULL::name, NULL::jsonb,
           CASE WHEN remove THEN 2 ELSE 4 END
    FROM pg_catalog.pg_class AS r
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    WHERE r.oid = mapped.relation;
END
$$;

-- What anonymising (p_delete false) or deleting (p_delete true) the local customer p_key does
-- per table: (table, action, rows), as sync._erasure_steps (p_let_go: its turn in a run that
-- erases several; p_before: the customers it erases before this one).
DROP FUNCTION IF EXISTS sync._erasure_plan(text, boolean);
DROP FUNCTION IF EXISTS sync._erasure_plan(text, boolean, jsonb);
CREATE OR REPLACE FUNCTION sync._erasure_plan(
    p_key text, p_delete boolean, p_let_go jsonb DEFAULT '{}', p_before text[] DEFAULT '{}')
RETURNS TABLE (table_name text, action text, rows bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    -- a table reached by two steps (a billing and a delivery address, an order's older
    -- address) once, its rows summed: the counts the run reports are per table
    SELECT s.table_name, pg_catalog.string_agg(DISTINCT s.action, ', '),
           pg_catalog.sum(s.rows)::bigint
    FROM sync._erasure_steps(p_key, p_delete, p_let_go, p_before) WITH ORDINALITY AS s
    GROUP BY s.table_name
    ORDER BY pg_catalog.min(s.phase), pg_catalog.min(s.ordinality)
$$;

-- Carrying the steps out is compiled: syncmap.erase_customer (sql/57_moves_compile.sql).
DROP FUNCTION IF EXISTS sync._erase_rows(text, boolean);
