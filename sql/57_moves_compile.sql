-- The compiled moves: merging one customer into another, anonymising and deleting one, as
-- generated functions of schema syncmap with static SQL, one statement per linked table, so
-- that applying a merge, anonymise or delete event runs no dynamic SQL and reads no catalog.
-- What they do is what the building blocks say (sql/49_move_customer.sql for a merge,
-- sql/52_scrub_rows.sql for anonymise and delete, whose dry runs still read the catalog): the
-- generator asks those blocks for the customer-linked tables (sync.customer_links()), their
-- unique keys and merge rules, the related rows the customer points to, the survivor's columns
-- a merge fills, the scrub assignments and anonymise rules, and the number of unclassified
-- columns, and writes the answers into the functions' text.
--
-- What decides the text changes outside a mapping install: a table the shop gives a foreign
-- key to the customer, a new column, a merge rule or a classification declared. So before the
-- moves run, a fingerprint of those inputs (a few catalog probes, sync._moves_fingerprint) is
-- compared with the one the code was made from: once a page by the feed (sync.apply_inbox),
-- once a call by every other entry point (by-hand merges, anonymisations, retries of dead
-- letters, link repairs: sync._moves_current()). A different fingerprint makes the code again,
-- in the same transaction, as the owner role. Re-runnable.
--
-- SQLSTATE: SY010 unresolved unique conflict, SY011 a clashing row the merge rule would delete
-- is referenced by another table's rows, SY022 PII registry incomplete (raised by the generated
-- functions).

-- ---------------------------------------------------------------------------------------------
-- Generated code's helpers (private)
-- ---------------------------------------------------------------------------------------------

-- counts with p_rows added to the entry p_table ({table: rows}, as audit rows keep them).
CREATE OR REPLACE FUNCTION sync._add_count(p_counts jsonb, p_table text, p_rows bigint)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_counts || pg_catalog.jsonb_build_object(
        p_table, coalesce((p_counts ->> p_table)::bigint, 0) + p_rows)
$$;

-- A generated PL/pgSQL function's CREATE statement: p_signature (with OUT parameters when
-- p_returns is NULL), the declarations and the statements. The generators name no table or
-- column in a comment: a name may hold a line break, which ends a comment.
CREATE OR REPLACE FUNCTION sync._compiled_function(
    p_signature text, p_returns text, p_decls text[], p_body text[])
RETURNS text
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format(
        E'CREATE OR REPLACE FUNCTION %s\n%sLANGUAGE plpgsql\nVOLATILE\nSECURITY INVOKER\n'
        'SET search_path = pg_catalog, pg_temp\nAS %L',
        p_signature,
        CASE WHEN p_returns IS NOT NULL THEN 'RETURNS ' || p_returns || E'\n' ELSE '' END,
        E'\n' || CASE WHEN pg_catalog.cardinality(p_decls) > 0
                      THEN E'DECLARE\n' || pg_catalog.array_to_string(
                          ARRAY(SELECT '    ' || d || ';' FROM pg_catalog.unnest(p_decls) AS d),
                          E'\n') || E'\n'
                      ELSE '' END
        || E'BEGIN\n'
        -- not indented: a line break inside a quoted name or literal must stay as it is
        || pg_catalog.array_to_string(p_body, E'\n')
        || E'\nEND\n')
$$;

-- ---------------------------------------------------------------------------------------------
-- The generator (private)
-- ---------------------------------------------------------------------------------------------

-- The foreign keys that reference rows of p_relation (a partitioned table's once, a table's
-- own too): the referencing table, its name as counts give it, the constraint, and `matches`,
-- the predicate `x.<column> = $1.<referenced column> AND ...` with $1 for the referenced row's
-- alias.
CREATE OR REPLACE FUNCTION sync._referrers(p_relation regclass)
RETURNS TABLE (relation regclass, qualified_name text, constraint_name name, matches text)
LANGUAGE sql
STABLE
SECURITY INVOKER
ROWS 3
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.conrelid::pg_catalog.regclass, pg_catalog.concat_ws('.', n.nspname, r.relname),
           c.conname,
           (SELECT pg_catalog.string_agg(pg_catalog.format('x.%I = $1.%I', a.attname, f.attname),
                                         ' AND ' ORDER BY k.ord)
            FROM ROWS FROM (pg_catalog.unnest(c.conkey), pg_catalog.unnest(c.confkey))
                 WITH ORDINALITY AS k (col, ref, ord)
            JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.col
            JOIN pg_catalog.pg_attribute AS f ON f.attrelid = c.confrelid AND f.attnum = k.ref)
    FROM pg_catalog.pg_constraint AS c
    JOIN pg_catalog.pg_class AS r ON r.oid = c.conrelid
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    WHERE c.contype = 'f' AND c.confrelid = p_relation AND c.conparentid = 0
    ORDER BY c.conname, c.oid
$$;

-- The body of syncmap.move_customer(p_old text, p_survivor text, OUT counts jsonb, OUT reason
-- text): every customer-linked table re-pointed (unique conflicts first, per unique key, by the
-- table's merge rule; SY010 without one), the survivor's blank columns filled from the old row,
-- the old row removed with its sync.customer_link row (that first) and the related rows only it
-- used.
CREATE OR REPLACE FUNCTION sync._compile_move()
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped   record;
    cname    text;
    link     record;
    key      record;
    declared sync.merge_rule;
    related  record;
    fill     text;
    referrer record;
    decls    text[] := ARRAY['n bigint', 'clashes bigint', 'removed bigint',
                             'conflicts bigint', 'resolved text[] := ''{}'''];
    body     text[] := ARRAY['counts := ''{}'';'];
    after    text[] := '{}';
    i        integer := 0;
    linked   integer := 0;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    cname := sync._customer_table_name();
    decls := decls || pg_catalog.format('old_row %s%%ROWTYPE', mapped.relation);
    FOR link IN SELECT * FROM sync.customer_links() LOOP
        linked := linked + 1;
        body := body || pg_catalog.format(E'-- linked table %s\nn := 0;\nconflicts := 0;',
                                          linked);
        SELECT * INTO declared FROM sync.merge_rule AS m
        WHERE m.table_schema = link.table_schema AND m.table_name = link.table_name;
        FOR key IN SELECT * FROM sync._unique_keys(link.relation, link.fk_column) LOOP
            body := body || pg_catalog.format(
                E'SELECT count(*) INTO clashes FROM %1$s AS o WHERE o.%2$I = p_old::%4$s\n'
                '    AND EXISTS (SELECT FROM %1$s AS s WHERE s.%2$I = p_survivor::%4$s AND %3$s);\n'
                'IF clashes > 0 THEN',
                link.relation, link.fk_column, key.same_key, link.column_type);
            -- a clashing row the rule deletes must not be referenced by another table's rows
            -- (a payment of a rental): they would cascade away or block the delete
            FOR referrer IN SELECT * FROM sync._referrers(link.relation) LOOP
                IF NOT 'referenced bigint' = ANY (decls) THEN
                    decls := decls || 'referenced bigint'::text;
                END IF;
                body := body || pg_catalog.format(
                    E'    SELECT count(*) INTO referenced FROM %1$s AS o JOIN %1$s AS s\n'
                    '        ON s.%2$I = p_survivor::%4$s AND %3$s\n'
                    '    WHERE o.%2$I = p_old::%4$s\n'
                    '      AND (EXISTS (SELECT FROM %5$s AS x WHERE %6$s)%7$s);\n'
                    '    IF referenced > 0 THEN\n'
                    '        RAISE EXCEPTION USING ERRCODE = ''SY011'', MESSAGE = pg_catalog.format(\n'
                    '            ''merge refused: %%s clashing row(s) of %%s on %%s are referenced by '
                    '%%s (constraint %%s): the merge rule would delete them'', referenced, %8$L, '
                    '%9$L, %10$L, %11$L);\n'
                    '    END IF;',
                    link.relation, link.fk_column, key.same_key, link.column_type,
                    referrer.relation, pg_catalog.replace(referrer.matches, '$1', 'o'),
                    CASE WHEN declared.rule = 'keep_newest'
                         THEN pg_catalog.format(
                             ' OR EXISTS (SELECT FROM %s AS x WHERE %s)', referrer.relation,
                             pg_catalog.replace(referrer.matches, '$1', 's'))
                         ELSE '' END,
                    link.table_schema || '.' || link.table_name, key.key_name,
                    referrer.qualified_name, referrer.constraint_name);
            END LOOP;
            IF declared.rule IS NULL THEN
                body := body || pg_catalog.format(
                    E'    RAISE EXCEPTION USING ERRCODE = ''SY010'', MESSAGE = pg_catalog.format(\n'
                    '        ''unresolved merge conflict: %%s row(s) of %%s clash on %%s and the '
                    'table has no merge rule'', clashes, %1$L, %2$L),\n'
                    '        HINT = ''declare one in sync.merge_rule'';',
                    link.table_schema || '.' || link.table_name, key.key_name);
            ELSIF declared.rule = 'sum' THEN
                body := body || pg_catalog.format(
                    E'    UPDATE %1$s AS s SET %4$I = s.%4$I + o.%4$I FROM %1$s AS o\n'
                    '    WHERE s.%2$I = p_survivor::%5$s AND o.%2$I = p_old::%5$s AND %3$s;',
                    link.relation, link.fk_column, key.same_key, declared.quantity_column,
                    link.column_type);
            ELSIF declared.rule = 'keep_newest' THEN
                -- the survivor's row goes where the old customer's is newer; the old row moves
                body := body || pg_catalog.format(
                    E'    DELETE FROM %1$s AS s USING %1$s AS o\n'
                    '    WHERE s.%2$I = p_survivor::%5$s AND o.%2$I = p_old::%5$s AND %3$s\n'
                    '      AND o.%4$I > s.%4$I;',
                    link.relation, link.fk_column, key.same_key, declared.newest_column,
                    link.column_type);
            END IF;
            -- keep_survivor, union, sum, and keep_newest where the survivor's row is as new:
            -- the old customer's clashing row goes
            body := body || pg_catalog.format(
                E'    DELETE FROM %1$s AS o WHERE o.%2$I = p_old::%4$s\n'
                '      AND EXISTS (SELECT FROM %1$s AS s WHERE s.%2$I = p_survivor::%4$s AND %3$s);\n'
                '    GET DIAGNOSTICS removed = ROW_COUNT;\n'
                '    n := n + removed;\n'
                '    conflicts := conflicts + clashes;\n'
                'END IF;',
                link.relation, link.fk_column, key.same_key, link.column_type);
        END LOOP;
        body := body || pg_catalog.format(
            E'UPDATE %1$s AS t SET %2$I = p_survivor::%3$s WHERE t.%2$I = p_old::%3$s;\n'
            'GET DIAGNOSTICS removed = ROW_COUNT;\n'
            'n := n + removed;\n'
            'IF n > 0 THEN\n'
            '    counts := sync._add_count(counts, %4$L, n);\n'
            'END IF;\n'
            'IF conflicts > 0 THEN\n'
            '    resolved := resolved || pg_catalog.format(''%%s %%s'', %4$L, conflicts);\n'
            'END IF;',
            link.relation, link.fk_column, link.column_type, link.qualified_name);
    END LOOP;

    -- the related rows the old row points to, read before it goes; deleted after it when
    -- nothing else uses them (sync._related_tables)
    FOR related IN SELECT * FROM sync._related_tables() LOOP
        i := i + 1;
        decls := decls || pg_catalog.format('pointed_%s text', i);
        body := body || pg_catalog.format(
            'SELECT c.%1$I::text INTO pointed_%2$s FROM %3$s AS c WHERE c.%4$I = p_old::%5$s;',
            related.pointer, i, mapped.relation, mapped.key_column, mapped.key_type);
        after := after || pg_catalog.format(
            E'    IF pointed_%1$s IS NOT NULL THEN\n'
            '        DELETE FROM %2$s;\n'
            '        GET DIAGNOSTICS removed = ROW_COUNT;\n'
            '        IF removed > 0 THEN\n'
            '            counts := sync._add_count(counts, %3$L, removed);\n'
            '        END IF;\n'
            '    END IF;',
            i,
            sync._related_unused(related.relation, related.key_column, related.key_type,
                                 related.pointer, pg_catalog.format('pointed_%s', i),
                                 'p_old'),
            related.qualified_name);
    END LOOP;
    SELECT pg_catalog.string_agg(
               pg_catalog.format('%1$I = coalesce(s.%1$I, old_row.%1$I)', f.column_name),
               E',\n        ' ORDER BY f.attnum)
    INTO fill
    FROM sync._survivor_fill_columns() AS f;
    body := body || pg_catalog.format(
        -- the link row first: the shop's delete trigger then finds nothing of this customer's
        -- (sql/73_shop_key_changes.sql)
        E'DELETE FROM sync.customer_link AS l WHERE l.customer_key = p_old;\n'
        'DELETE FROM %1$s AS c WHERE c.%2$I = p_old::%3$s RETURNING c.* INTO old_row;\n'
        'IF FOUND THEN\n'
        '%4$s'
        '%5$s'
        'END IF;\n'
        'counts := counts || pg_catalog.jsonb_build_object(%6$L, 1);\n'
        'reason := ''merged'';\n'
        'IF pg_catalog.cardinality(resolved) > 0 THEN\n'
        '    reason := reason || ''; conflicts resolved by rule: ''\n'
        '        || pg_catalog.array_to_string(resolved, '', '');\n'
        'END IF;',
        mapped.relation, mapped.key_column, mapped.key_type,
        CASE WHEN fill IS NOT NULL THEN pg_catalog.format(
            E'    UPDATE %1$s AS s\n    SET %2$s\n    WHERE s.%3$I = p_survivor::%4$s;\n',
            mapped.relation, fill, mapped.key_column, mapped.key_type) ELSE '' END,
        coalesce(pg_catalog.array_to_string(after, E'\n') || E'\n', ''),
        cname);
    RETURN sync._compiled_function(
        'syncmap.move_customer(p_old text, p_survivor text, OUT counts jsonb, OUT reason text)',
        NULL, decls, body);
END
$$;

-- The per-key counts a generated statement adds to `counts` ({key: {table: rows}}): p_dml (an
-- UPDATE or DELETE, without RETURNING) returns p_returning as text for each row it changes,
-- and the rows are counted under p_table for the customer whose row that is: with p_pairs (a
-- SELECT of (customer key, returned value) pairs, several for a customer when it has several
-- rows) every customer of a pair gets an entry, its rows summed, 0 when none changed; without,
-- only the customers with changed rows (grouped by the returned key).
CREATE OR REPLACE FUNCTION sync._compiled_counts(
    p_dml text, p_returning text, p_table text, p_pairs text DEFAULT NULL)
RETURNS text
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format(
        E'WITH done AS (\n%1$s\nRETURNING %2$s::text AS k)\n'
        'SELECT sync._add_counts(counts, %3$L, (\n%4$s)) INTO counts;',
        p_dml, p_returning, p_table,
        CASE WHEN p_pairs IS NULL
             THEN '    SELECT pg_catalog.jsonb_object_agg(d.k, d.n) FROM (SELECT done.k, '
                  'pg_catalog.count(*) AS n FROM done GROUP BY done.k) AS d'
             ELSE pg_catalog.format(
                  '    SELECT pg_catalog.jsonb_object_agg(x.owner, x.n) FROM (SELECT w.owner, '
                  'pg_catalog.sum(coalesce(d.n, 0)) AS n FROM (%s) AS w (owner, k) LEFT JOIN '
                  '(SELECT done.k, pg_catalog.count(*) AS n FROM done GROUP BY done.k) AS d '
                  'ON d.k = w.k GROUP BY w.owner) AS x', p_pairs) END)
$$;

-- A counted statement of the set form on the rows of a related table that (customer, row)
-- pairs name: p_dml (`DELETE FROM <table> AS t`, `UPDATE <table> AS t SET ...`) where the row's
-- key p_key_column is one of p_pairs' (a SELECT of (customer key, row key) pairs, as text), its
-- rows counted under p_table for the customer of each pair (sync._compiled_counts).
CREATE OR REPLACE FUNCTION sync._compiled_pair_counts(
    p_dml text, p_key_column name, p_key_type regtype, p_table text, p_pairs text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync._compiled_counts(
        pg_catalog.format('%1$s WHERE t.%2$I = ANY (ARRAY(SELECT p.t FROM (%3$s) AS p (o, t))'
                          '::%4$s[])', p_dml, p_key_column, p_pairs, p_key_type),
        pg_catalog.format('t.%I', p_key_column), p_table, p_pairs)
$$;

-- {key: {table: rows}} with p_rows ({key: rows}) added to each key's entry p_table.
CREATE OR REPLACE FUNCTION sync._add_counts(p_all jsonb, p_table text, p_rows jsonb)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_all || coalesce(
        (SELECT pg_catalog.jsonb_object_agg(
                    e.key, sync._add_count(coalesce(p_all -> e.key, '{}'), p_table,
                                           e.value::bigint))
         FROM pg_catalog.jsonb_each_text(p_rows) AS e),
        '{}')
$$;

-- One counted statement of the per-key erasure: p_dml, then its row count added to `counts`
-- under p_table (always, or only when rows changed).
CREATE OR REPLACE FUNCTION sync._compiled_count(p_dml text, p_table text, p_always boolean)
RETURNS text
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.format(
        E'%1$s;\nGET DIAGNOSTICS changed = ROW_COUNT;\n%2$s', p_dml,
        CASE WHEN p_always
             THEN pg_catalog.format('counts := sync._add_count(counts, %L, changed);', p_table)
             ELSE pg_catalog.format(
                 E'IF changed > 0 THEN\n    counts := sync._add_count(counts, %L, changed);\n'
                 'END IF;', p_table) END)
$$;

-- The compiled erasure's statements that scrub the rows one foreign key further
-- (sync._further_links(): an order's addresses, order lines) per their classified columns,
-- reached through the customers' linked rows (the shop's index of its foreign key serves the
-- join): for the set form (the customers `keys`, counted per customer) and for the per-key form
-- (p_key). Run before the linked rows change, for a removed customer too (sync._further_steps).
CREATE OR REPLACE FUNCTION sync._compile_erase_further(
    OUT set_statements text[], OUT one_statements text[])
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    further record;
    scrub   text;
BEGIN
    set_statements := '{}';
    one_statements := '{}';
    FOR further IN SELECT * FROM sync._further_links() LOOP
        scrub := sync._scrub_assignments(further.relation, further.first_column);
        CONTINUE WHEN scrub IS NULL;
        set_statements := set_statements || sync._compiled_counts(
            pg_catalog.format('UPDATE %s AS t SET %s FROM %s AS p WHERE %s AND p.%I = ANY (keys::%s[])',
                              further.relation, scrub, further.link, further.joined,
                              further.fk_column, further.column_type),
            pg_catalog.format('p.%I', further.fk_column), further.qualified_name);
        one_statements := one_statements || sync._compiled_count(
            pg_catalog.format('UPDATE %s AS t SET %s FROM %s AS p WHERE %s AND p.%I = p_key::%s',
                              further.relation, scrub, further.link, further.joined,
                              further.fk_column, further.column_type),
            further.qualified_name, false);
    END LOOP;
END
$$;

-- The statement that makes a removed customer's row let go of its address book first: every
-- nullable pointer of the customer row into a table that is customer-linked as well
-- (sync._pointed_tables() and sync.customer_links(): a default address in the book) set NULL
-- on the rows of the customers p_keys names (the name of a text variable, `p_key`, or with
-- p_set of a text[] one, `removed`), before their linked rows are deleted; then neither foreign
-- key of a circular pair needs an action or to be deferred. Not counted: the row goes next.
-- A comment when there is no such pointer (a NOT NULL one needs its foreign key DEFERRABLE
-- INITIALLY DEFERRED: docs/own-database.md, "A platform schema").
CREATE OR REPLACE FUNCTION sync._release_book_pointers(p_keys text, p_set boolean)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(
        (SELECT pg_catalog.format(
                    'UPDATE %1$s AS t SET %2$s WHERE t.%3$I = %4$s AND (%5$s);',
                    m.relation,
                    pg_catalog.string_agg(pg_catalog.format('%I = NULL', p.pointer),
                                          ', ' ORDER BY p.pointer),
                    m.key_column,
                    CASE WHEN p_set THEN pg_catalog.format('ANY (%s::%s[])', p_keys, m.key_type)
                         ELSE pg_catalog.format('%s::%s', p_keys, m.key_type) END,
                    pg_catalog.string_agg(pg_catalog.format('t.%I IS NOT NULL', p.pointer),
                                          ' OR ' ORDER BY p.pointer))
         FROM sync.mapped_customer() AS m
         JOIN sync._pointed_tables() AS p ON NOT p.required
         WHERE EXISTS (SELECT FROM sync.customer_links() AS l WHERE l.relation = p.relation)
         GROUP BY m.relation, m.key_column, m.key_type),
        '-- no pointer into an address book')
$$;

-- The compiled erasure, in two forms made from the same steps: syncmap.erase_customers(p_keys
-- text[], p_delete boolean[]) RETURNS jsonb ({key: {table: rows}}) for the locked customers
-- p_keys (each anonymised, or deleted where its p_delete is true), one statement a table for
-- the whole set; and syncmap.erase_customer(p_key text, p_delete boolean) RETURNS jsonb
-- ({table: rows}), the same for one customer with plain statements (the one-by-one paths: the
-- feed's fallback, the back office, retention, erasure requests). The steps of
-- sync._erasure_steps: linked tables first, in sync._erasure_links() order (their anonymise
-- rule, or delete_rows for a removed customer); then, for a removed customer (a delete without
-- bookkeeping rows), its row, its sync.customer_link row and the related rows it alone pointed
-- to (scrubbed instead when erased customers' kept rows still point to them); for the others
-- the related rows (scrubbed when nothing but the customer, its own rows and the rows erased
-- customers keep uses them, detached or replaced by a scrubbed copy otherwise) and the
-- customer row scrubbed. Who uses a related row is decided before anything changes, for each
-- customer against every other row: two customers of a set pointing to one row, through one
-- pointer or through two pointers to the same table (a delivery and a billing address), or
-- whose rows name one row, are refused (SY096: one after the other, the first lets go of it
-- and the second scrubs it; together each would let go of it, leaving it with nobody pointing
-- to it and the personal data in it), and the caller erases them one by one.
-- Also syncmap.sharing_customers(p_keys text[]) RETURNS text[]: the customers of p_keys that
-- point to a row another customer of p_keys points to, by any pointer to that table (who must
-- not be erased as a set).
CREATE OR REPLACE FUNCTION sync._compile_erase()
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped     record;
    cname      text;
    link       record;
    pointed    record;
    scrub      text;
    refusal    text;
    copy       text;
    pairs      text;
    scrubbed   text;
    statement  text;
    new_key    text;
    columns    text;
    sources    text;
    missing    bigint := sync._unclassified_count();
    -- the set form: its declarations, statements, and the removed customers' and the others'
    decls      text[] := ARRAY['counts jsonb := ''{}''', 'keys text[]', 'removed text[]',
                               'kept text[]'];
    body       text[] := '{}';
    gone       text[] := '{}';
    removing   text[] := '{}';
    anonymised text[] := '{}';
    keeping    text[] := '{}';
    sharing    text[] := '{}';
    -- the per-key form, the same
    one_decls  text[] := ARRAY['changed bigint', 'counts jsonb := ''{}''', 'remove boolean'];
    one_body   text[] := '{}';
    one_gone   text[] := '{}';
    one_remove text[] := '{}';
    one_anon   text[] := '{}';
    one_keep   text[] := '{}';
    i          integer := 0;
    linked     integer := 0;
    -- the related table of each pointed entry so far (two pointers may name one table: a
    -- delivery and a billing address)
    relations  pg_catalog.regclass[] := '{}';
    j          integer;
    pointers   text;
    earlier    text;
    one_earlier text;
    -- the related tables the customers' linked rows reach (sync._reached_rows)
    reach      text;
    r          integer := 0;
    -- the rows one foreign key further (sync._compile_erase_further)
    further_set text[];
    further_one text[];
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    cname := sync._customer_table_name();
    -- keys in the key's own text form: how the counts name them
    body := body || pg_catalog.format(
        E'SELECT coalesce(pg_catalog.array_agg(k.key::%1$s::text ORDER BY k.ord), ''{}''),\n'
        '       coalesce(pg_catalog.array_agg(k.key::%1$s::text ORDER BY k.ord) FILTER (\n'
        '           WHERE k.del AND NOT syncmap.has_bookkeeping(k.key::%1$s::text)), ''{}'')\n'
        'INTO keys, removed\n'
        'FROM ROWS FROM (pg_catalog.unnest(p_keys), pg_catalog.unnest(p_delete))\n'
        '     WITH ORDINALITY AS k (key, del, ord);\n'
        'kept := ARRAY(SELECT k FROM pg_catalog.unnest(keys) AS k WHERE NOT k = ANY (removed));',
        mapped.key_type);
    one_body := one_body || 'remove := p_delete AND NOT syncmap.has_bookkeeping(p_key);'::text;
    IF missing > 0 THEN
        -- fails closed: only a delete that removes everything needs no strategy
        refusal := pg_catalog.format(
            E'    RAISE EXCEPTION USING ERRCODE = ''SY022'',\n'
            '        MESSAGE = ''anonymisation refused: %s column(s) have no PII strategy'',\n'
            '        HINT = ''run the coverage check (SELECT * FROM sync.unclassified_columns())'';\n'
            'END IF;',
            missing);
        body := body || (E'IF pg_catalog.cardinality(kept) > 0 THEN\n' || refusal);
        one_body := one_body || (E'IF NOT remove THEN\n' || refusal);
    END IF;
    -- the rows the customers point to: locked, then who else uses them, before any change
    FOR pointed IN SELECT * FROM sync._pointed_tables() LOOP
        i := i + 1;
        decls := decls || pg_catalog.format('owner_%s text[]', i)
                       || pg_catalog.format('target_%s text[]', i)
                       || pg_catalog.format('shared_%s boolean[]', i)
                       || pg_catalog.format('held_%s text[] := ''{}''', i);
        one_decls := one_decls || pg_catalog.format('target_%s text', i)
                               || pg_catalog.format('shared_%s boolean := false', i)
                               || pg_catalog.format('held_%s boolean := false', i);
        body := body || pg_catalog.format(
            E'PERFORM FROM %2$s AS t JOIN %3$s AS r ON r.%1$I = t.%4$I\n'
            'WHERE t.%5$I = ANY (keys::%6$s[]) ORDER BY r.%1$I FOR UPDATE OF r;\n'
            'SELECT coalesce(pg_catalog.array_agg(t.%5$I::text ORDER BY t.%5$I), ''{}''),\n'
            '       coalesce(pg_catalog.array_agg(r.%1$I::text ORDER BY t.%5$I), ''{}''),\n'
            '       coalesce(pg_catalog.array_agg((%8$s) ORDER BY t.%5$I), ''{}'')\n'
            'INTO owner_%7$s, target_%7$s, shared_%7$s\n'
            'FROM %2$s AS t JOIN %3$s AS r ON r.%1$I = t.%4$I WHERE t.%5$I = ANY (keys::%6$s[]);\n'
            'IF (SELECT pg_catalog.count(DISTINCT x) FROM pg_catalog.unnest(target_%7$s) AS x)\n'
            '   < pg_catalog.cardinality(target_%7$s) THEN\n'
            '    RAISE EXCEPTION USING ERRCODE = ''SY096'', MESSAGE = pg_catalog.format(\n'
            '        ''customers erased together point to one row of %%s: erase them one by one'','
            ' %9$L);\n'
            'END IF;\n'
            -- a removed customer's row that erased customers' kept rows use: scrubbed
            'IF pg_catalog.cardinality(removed) > 0 THEN\n'
            '    SELECT coalesce(pg_catalog.array_agg(w.t), ''{}'') INTO held_%7$s\n'
            '    FROM ROWS FROM (pg_catalog.unnest(owner_%7$s), pg_catalog.unnest(target_%7$s),\n'
            '                    pg_catalog.unnest(shared_%7$s)) AS w (o, t, s)\n'
            '    WHERE w.o = ANY (removed) AND NOT w.s AND (%10$s);\n'
            'END IF;',
            pointed.key_column, mapped.relation, pointed.relation, pointed.pointer,
            mapped.key_column, mapped.key_type, i,
            sync._related_in_use(pointed.relation, pointed.key_column, pointed.key_type,
                                 pointed.pointer, pg_catalog.format('r.%I::text',
                                                                    pointed.key_column),
                                 pg_catalog.format('t.%I::text', mapped.key_column),
                                 p_own_rows => true),
            pointed.qualified_name,
            sync._related_in_use(pointed.relation, pointed.key_column, pointed.key_type,
                                 pointed.pointer, 'w.t', 'w.o', p_own_rows => true,
                                 p_erased => false));
        one_body := one_body || pg_catalog.format(
            E'SELECT r.%1$I::text INTO target_%7$s FROM %2$s AS t JOIN %3$s AS r ON r.%1$I = t.%4$I\n'
            'WHERE t.%5$I = p_key::%6$s FOR UPDATE OF r;\n'
            'shared_%7$s := target_%7$s IS NOT NULL AND (%8$s);\n'
            'IF remove AND target_%7$s IS NOT NULL AND NOT shared_%7$s THEN\n'
            '    held_%7$s := %9$s;\n'
            'END IF;',
            pointed.key_column, mapped.relation, pointed.relation, pointed.pointer,
            mapped.key_column, mapped.key_type, i,
            sync._related_in_use(pointed.relation, pointed.key_column, pointed.key_type,
                                 pointed.pointer, pg_catalog.format('target_%s', i),
                                 'p_key', p_own_rows => true),
            sync._related_in_use(pointed.relation, pointed.key_column, pointed.key_type,
                                 pointed.pointer, pg_catalog.format('target_%s', i),
                                 'p_key', p_own_rows => true, p_erased => false));
        -- the same row through another pointer to the same table: another customer of the set
        -- pointing to it that way shares it as well
        FOR j IN 1 .. i - 1 LOOP
            CONTINUE WHEN relations[j] IS DISTINCT FROM pointed.relation;
            body := body || pg_catalog.format(
                E'IF EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest(owner_%1$s),\n'
                '                                  pg_catalog.unnest(target_%1$s)) AS a (o, t)\n'
                '           JOIN ROWS FROM (pg_catalog.unnest(owner_%2$s),\n'
                '                           pg_catalog.unnest(target_%2$s)) AS b (o, t)\n'
                '           ON b.t = a.t AND b.o <> a.o) THEN\n'
                '    RAISE EXCEPTION USING ERRCODE = ''SY096'', MESSAGE = pg_catalog.format(\n'
                '        ''customers erased together point to one row of %%s: erase them one by one'','
                ' %3$L);\n'
                'END IF;',
                i, j, pointed.qualified_name);
        END LOOP;
        -- a row an earlier pointer of the customer names too (billed to where it lives) is
        -- scrubbed or deleted once
        -- and one of its linked rows (an address book) is scrubbed or deleted as such
        earlier := ' AND NOT ' || sync._booked(pointed.relation, pointed.key_column,
                                               pointed.key_type, 'w.t', 'w.o');
        one_earlier := pg_catalog.format(
            ' AND NOT %s', sync._booked(pointed.relation, pointed.key_column, pointed.key_type,
                                        pg_catalog.format('target_%s', i), 'p_key'));
        FOR j IN 1 .. i - 1 LOOP
            CONTINUE WHEN relations[j] IS DISTINCT FROM pointed.relation;
            earlier := earlier || pg_catalog.format(
                ' AND NOT EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest(owner_%1$s), '
                'pg_catalog.unnest(target_%1$s)) AS v (o, t) WHERE v.o = w.o AND v.t = w.t)', j);
            one_earlier := one_earlier
                || pg_catalog.format(' AND target_%s IS DISTINCT FROM target_%s', i, j);
        END LOOP;
        relations := relations || pointed.relation;
        SELECT pg_catalog.string_agg(pg_catalog.format('o.%I = t.%I', p.pointer, pointed.pointer),
                                     ' OR ' ORDER BY p.pointer)
        INTO pointers
        FROM sync._pointed_tables() AS p
        WHERE p.relation = pointed.relation;
        sharing := sharing || pg_catalog.format(
            E'SELECT t.%1$I::text FROM %2$s AS t WHERE t.%1$I = ANY (p_keys::%3$s[])\n'
            '  AND EXISTS (SELECT FROM %2$s AS o WHERE (%4$s) AND o.%1$I <> t.%1$I\n'
            '              AND o.%1$I = ANY (p_keys::%3$s[]))',
            mapped.key_column, mapped.relation, mapped.key_type, pointers);
        -- (customer, its row) pairs of the set, those the condition %s names
        pairs := pg_catalog.format(
            'SELECT w.o, w.t FROM ROWS FROM (pg_catalog.unnest(owner_%1$s), '
            'pg_catalog.unnest(target_%1$s), pg_catalog.unnest(shared_%1$s)) AS w (o, t, s) '
            'WHERE %%s', i);
        -- a removed customer's row alone: deleted after the customer row (its foreign key
        -- holds it till then); a shared one stays; one that erased customers' kept rows use
        -- (held) is scrubbed
        scrub := sync._scrub_assignments(pointed.relation, pointed.key_column);
        removing := removing || sync._compiled_pair_counts(
            pg_catalog.format('DELETE FROM %s AS t', pointed.relation), pointed.key_column,
            pointed.key_type, pointed.qualified_name,
            pg_catalog.format(pairs, pg_catalog.format(
                'w.o = ANY (removed) AND NOT w.s AND NOT w.t = ANY (held_%s)', i) || earlier));
        one_remove := one_remove || pg_catalog.format(
            E'IF target_%1$s IS NOT NULL AND NOT shared_%1$s AND NOT held_%1$s%3$s THEN\n%2$s\nEND IF;',
            i,
            sync._compiled_count(
                pg_catalog.format('DELETE FROM %s AS t WHERE t.%I = target_%s::%s',
                                  pointed.relation, pointed.key_column, i, pointed.key_type),
                pointed.qualified_name, true), one_earlier);
        IF scrub IS NOT NULL THEN
            -- scrubbed in place: the row only this customer uses (kept), or a removed
            -- customer's row that erased customers' kept rows use (held)
            scrubbed := sync._compiled_count(
                pg_catalog.format('UPDATE %s AS t SET %s WHERE t.%I = target_%s::%s',
                                  pointed.relation, scrub, pointed.key_column, i,
                                  pointed.key_type),
                pointed.qualified_name, true);
            FOR j IN 1 .. 2 LOOP
                statement := sync._compiled_pair_counts(
                    pg_catalog.format('UPDATE %s AS t SET %s', pointed.relation, scrub),
                    pointed.key_column, pointed.key_type, pointed.qualified_name,
                    pg_catalog.format(pairs, CASE j
                        WHEN 1 THEN pg_catalog.format(
                            'w.o = ANY (removed) AND NOT w.s AND w.t = ANY (held_%s)', i)
                        ELSE 'w.o = ANY (kept) AND NOT w.s' END || earlier));
                IF j = 1 THEN
                    removing := removing || statement;
                ELSE
                    keeping := keeping || statement;
                END IF;
            END LOOP;
            one_remove := one_remove || pg_catalog.format(
                E'IF held_%1$s%3$s THEN\n%2$s\nEND IF;', i, scrubbed, one_earlier);
            one_keep := one_keep || pg_catalog.format(
                E'IF target_%1$s IS NOT NULL AND NOT shared_%1$s%3$s THEN\n%2$s\nEND IF;', i,
                scrubbed, one_earlier);
        END IF;
        IF NOT pointed.required THEN
            -- shared: detached
            keeping := keeping || sync._compiled_counts(
                pg_catalog.format(
                    'UPDATE %1$s AS t SET %2$I = NULL WHERE t.%3$I = ANY (ARRAY(SELECT p.o FROM (%4$s) '
                    'AS p (o, t))::%5$s[])',
                    mapped.relation, pointed.pointer, mapped.key_column,
                    pg_catalog.format(pairs, 'w.o = ANY (kept) AND w.s'), mapped.key_type),
                pg_catalog.format('t.%I', mapped.key_column), pointed.qualified_name,
                pg_catalog.format(pg_catalog.replace(pairs, 'w.o, w.t', 'w.o, w.o'),
                                  'w.o = ANY (kept) AND w.s'));
            one_keep := one_keep || pg_catalog.format(
                E'IF shared_%1$s THEN\n%2$s\nEND IF;', i,
                sync._compiled_count(
                    pg_catalog.format('UPDATE %s AS t SET %I = NULL WHERE t.%I = p_key::%s',
                                      mapped.relation, pointed.pointer, mapped.key_column,
                                      mapped.key_type),
                    pointed.qualified_name, true));
        ELSE
            -- shared: a copy of the row with a new key, scrubbed as the customer's own (a
            -- placeholder's {id} is the copy's key), then pointed to; in a set one customer
            -- at a time (rare: a household's address)
            new_key := sync._compile_key(pointed.relation, pointed.key_column, pointed.related);
            IF NOT 'copied text' = ANY (decls) THEN
                decls := decls || ARRAY['copied text', 'owner_key text', 'target_key text',
                                        'changed bigint'];
                one_decls := one_decls || ARRAY['copied text', 'owner_key text',
                                                'target_key text'];
            END IF;
            SELECT pg_catalog.string_agg(pg_catalog.format('%I', a.attname), ', '
                                         ORDER BY a.attnum),
                   pg_catalog.string_agg(
                       CASE WHEN a.attname = pointed.key_column THEN new_key
                            ELSE pg_catalog.format('t.%I', a.attname) END,
                       ', ' ORDER BY a.attnum)
            INTO columns, sources
            FROM pg_catalog.pg_attribute AS a
            WHERE a.attrelid = pointed.relation AND a.attnum > 0 AND NOT a.attisdropped
              AND a.attgenerated = ''
              AND CASE WHEN a.attname = pointed.key_column THEN new_key IS NOT NULL
                       ELSE a.attidentity = '' END
              -- a column of a unique index without the key (a label's code) would clash:
              -- the copy takes its default, or NULL (sync._copy_leaves)
              AND NOT a.attname = ANY (sync._copy_leaves(pointed.relation, pointed.key_column));
            -- the customer owner_key's copy of the row target_key
            copy := pg_catalog.format(
                E'    INSERT INTO %1$s (%2$s) OVERRIDING SYSTEM VALUE\n'
                '    SELECT %3$s FROM %1$s AS t WHERE t.%4$I = target_key::%5$s\n'
                '    RETURNING %4$I::text INTO copied;\n'
                '%6$s'
                '    UPDATE %7$s AS t SET %8$I = copied::%5$s WHERE t.%9$I = owner_key::%10$s;\n'
                '    GET DIAGNOSTICS changed = ROW_COUNT;\n',
                pointed.relation, columns, sources, pointed.key_column, pointed.key_type,
                CASE WHEN scrub IS NULL THEN '' ELSE pg_catalog.format(
                    E'    UPDATE %1$s AS t SET %2$s WHERE t.%3$I = copied::%4$s;\n',
                    pointed.relation, scrub, pointed.key_column, pointed.key_type) END,
                mapped.relation, pointed.pointer, mapped.key_column, mapped.key_type);
            keeping := keeping || pg_catalog.format(
                E'FOR owner_key, target_key IN %1$s LOOP\n%2$s'
                '    counts := sync._add_counts(counts, %3$L,\n'
                '                               pg_catalog.jsonb_build_object(owner_key, changed));\n'
                'END LOOP;',
                pg_catalog.format(pairs, 'w.o = ANY (kept) AND w.s'), copy,
                pointed.qualified_name);
            one_keep := one_keep || pg_catalog.format(
                E'IF shared_%1$s THEN\n    owner_key := p_key;\n    target_key := target_%1$s;\n'
                '%2$s    counts := sync._add_count(counts, %3$L, changed);\nEND IF;',
                i, copy, pointed.qualified_name);
        END IF;
    END LOOP;
    -- the rows only the customers' own linked rows reach (sync._reached_rows: an order's older
    -- delivery address): locked and decided with the rows above, scrubbed for the anonymised
    -- customers, deleted after the removed customers' rows. In a set, such a row another
    -- customer of the set points to, or that another customer of the set's rows name, is
    -- refused (SY096): one by one, the last of them to go scrubs it. A removed customer's row
    -- that erased customers' kept rows use as well (held) is scrubbed, not deleted.
    FOR pointed IN SELECT DISTINCT ON (p.relation) p.relation, p.qualified_name, p.key_column,
                          p.key_type, p.pointer
                   FROM sync._pointed_tables() AS p ORDER BY p.relation, p.pointer LOOP
        reach := sync._reached_rows(pointed.relation, 'keys');
        CONTINUE WHEN reach IS NULL;
        r := r + 1;
        decls := decls || pg_catalog.format('reach_owner_%s text[]', r)
                       || pg_catalog.format('reach_target_%s text[]', r)
                       || pg_catalog.format('reach_held_%s text[] := ''{}''', r);
        one_decls := one_decls || pg_catalog.format('reach_%s text[]', r)
                               || pg_catalog.format('reach_held_%s text[] := ''{}''', r);
        SELECT pg_catalog.string_agg(pg_catalog.format('c.%I = a.t::%s', p.pointer, p.key_type),
                                     ' OR ' ORDER BY p.pointer)
        INTO pointers
        FROM sync._pointed_tables() AS p
        WHERE p.relation = pointed.relation;
        body := body || pg_catalog.format(
            E'PERFORM FROM %1$s AS r WHERE r.%2$I = ANY (ARRAY(SELECT a.t FROM (%3$s) AS a)::%4$s[])\n'
            'ORDER BY r.%2$I FOR UPDATE OF r;\n'
            'SELECT coalesce(pg_catalog.array_agg(p.o ORDER BY p.o, p.t), ''{}''),\n'
            '       coalesce(pg_catalog.array_agg(p.t ORDER BY p.o, p.t), ''{}'')\n'
            'INTO reach_owner_%5$s, reach_target_%5$s FROM (%6$s) AS p;\n'
            'IF EXISTS (SELECT FROM (%3$s) AS a JOIN %7$s AS c ON (%8$s)\n'
            '           WHERE c.%9$I = ANY (keys::%10$s[]) AND c.%9$I <> a.o::%10$s) THEN\n'
            '    RAISE EXCEPTION USING ERRCODE = ''SY096'', MESSAGE = pg_catalog.format(\n'
            '        ''customers erased together point to one row of %%s: erase them one by one'','
            ' %11$L);\n'
            'END IF;\n'
            -- another customer of the set whose rows name it (its orders, a wish, a gift): one
            -- by one, the later of the two finds it its own
            'IF EXISTS (SELECT FROM (%3$s) AS a JOIN (%3$s) AS b ON b.t = a.t AND b.o <> a.o) THEN\n'
            '    RAISE EXCEPTION USING ERRCODE = ''SY096'', MESSAGE = pg_catalog.format(\n'
            '        ''customers erased together use one row of %%s: erase them one by one'','
            ' %11$L);\n'
            'END IF;\n'
            'IF pg_catalog.cardinality(removed) > 0 THEN\n'
            '    SELECT coalesce(pg_catalog.array_agg(DISTINCT w.t), ''{}'') INTO reach_held_%5$s\n'
            '    FROM ROWS FROM (pg_catalog.unnest(reach_owner_%5$s),\n'
            '                    pg_catalog.unnest(reach_target_%5$s)) AS w (o, t)\n'
            '    WHERE w.o = ANY (removed) AND (%12$s);\n'
            'END IF;',
            pointed.relation, pointed.key_column,
            sync._reached_rows(pointed.relation, 'keys', true), pointed.key_type, r, reach,
            mapped.relation, pointers, mapped.key_column, mapped.key_type,
            pointed.qualified_name,
            sync._related_in_use(pointed.relation, pointed.key_column, pointed.key_type,
                                 pointed.pointer, 'w.t', 'w.o', p_own_rows => true,
                                 p_erased => false));
        one_body := one_body || pg_catalog.format(
            E'PERFORM FROM %1$s AS r WHERE r.%2$I = ANY (ARRAY(SELECT a.t FROM (%3$s) AS a)::%4$s[])\n'
            'ORDER BY r.%2$I FOR UPDATE OF r;\n'
            'SELECT coalesce(pg_catalog.array_agg(DISTINCT p.t), ''{}'') INTO reach_%5$s\n'
            'FROM (%6$s) AS p;\n'
            'IF remove THEN\n'
            '    SELECT coalesce(pg_catalog.array_agg(w.t), ''{}'') INTO reach_held_%5$s\n'
            '    FROM pg_catalog.unnest(reach_%5$s) AS w (t) WHERE %7$s;\n'
            'END IF;',
            pointed.relation, pointed.key_column,
            sync._reached_rows(pointed.relation, 'ARRAY[p_key]', true), pointed.key_type, r,
            sync._reached_rows(pointed.relation, 'ARRAY[p_key]'),
            sync._related_in_use(pointed.relation, pointed.key_column, pointed.key_type,
                                 pointed.pointer, 'w.t', 'p_key', p_own_rows => true,
                                 p_erased => false));
        -- (customer, row) pairs of the set, those the condition %s names; each row one
        -- customer's (another customer's rows using it keep it out), counted per customer
        pairs := pg_catalog.format(
            'SELECT w.o, w.t FROM ROWS FROM (pg_catalog.unnest(reach_owner_%1$s), '
            'pg_catalog.unnest(reach_target_%1$s)) AS w (o, t) WHERE %%s', r);
        removing := removing || sync._compiled_pair_counts(
            pg_catalog.format('DELETE FROM %s AS t', pointed.relation), pointed.key_column,
            pointed.key_type, pointed.qualified_name,
            pg_catalog.format(pairs, pg_catalog.format(
                'w.o = ANY (removed) AND NOT w.t = ANY (reach_held_%s)', r)));
        one_remove := one_remove || sync._compiled_count(
            pg_catalog.format('DELETE FROM %1$s AS t WHERE t.%2$I = ANY (reach_%3$s::%4$s[])'
                              ' AND NOT t.%2$I = ANY (reach_held_%3$s::%4$s[])',
                              pointed.relation, pointed.key_column, r, pointed.key_type),
            pointed.qualified_name, false);
        scrub := sync._scrub_assignments(pointed.relation, pointed.key_column);
        CONTINUE WHEN scrub IS NULL;
        removing := removing || sync._compiled_pair_counts(
            pg_catalog.format('UPDATE %s AS t SET %s', pointed.relation, scrub),
            pointed.key_column, pointed.key_type, pointed.qualified_name,
            pg_catalog.format(pairs, pg_catalog.format(
                'w.o = ANY (removed) AND w.t = ANY (reach_held_%s)', r)));
        one_remove := one_remove || sync._compiled_count(
            pg_catalog.format('UPDATE %s AS t SET %s WHERE t.%I = ANY (reach_held_%s::%s[])',
                              pointed.relation, scrub, pointed.key_column, r, pointed.key_type),
            pointed.qualified_name, false);
        keeping := keeping || sync._compiled_pair_counts(
            pg_catalog.format('UPDATE %s AS t SET %s', pointed.relation, scrub),
            pointed.key_column, pointed.key_type, pointed.qualified_name,
            pg_catalog.format(pairs, 'w.o = ANY (kept)'));
        one_keep := one_keep || sync._compiled_count(
            pg_catalog.format('UPDATE %s AS t SET %s WHERE t.%I = ANY (reach_%s::%s[])',
                              pointed.relation, scrub, pointed.key_column, r, pointed.key_type),
            pointed.qualified_name, false);
    END LOOP;
    -- the removed customers (a delete without bookkeeping rows) and the others (anonymised),
    -- each group only when it has customers; a table's statements in the same order in both
    FOR link IN SELECT * FROM sync._erasure_links() LOOP
        scrub := sync._scrub_assignments(link.relation, link.fk_column);
        linked := linked + 1;
        gone := gone || pg_catalog.format(E'-- linked table %s', linked)
                     || sync._compiled_counts(
                            pg_catalog.format('DELETE FROM %s AS t WHERE t.%I = ANY (removed::%s[])',
                                              link.relation, link.fk_column, link.column_type),
                            pg_catalog.format('t.%I', link.fk_column), link.qualified_name);
        one_gone := one_gone || pg_catalog.format(E'-- linked table %s', linked)
                             || sync._compiled_count(
                                    pg_catalog.format('DELETE FROM %s AS t WHERE t.%I = p_key::%s',
                                                      link.relation, link.fk_column,
                                                      link.column_type),
                                    link.qualified_name, false);
        IF link.declared = 'delete_rows' THEN
            anonymised := anonymised || pg_catalog.format(E'-- linked table %s', linked)
                || sync._compiled_counts(
                       pg_catalog.format('DELETE FROM %s AS t WHERE t.%I = ANY (kept::%s[])',
                                         link.relation, link.fk_column, link.column_type),
                       pg_catalog.format('t.%I', link.fk_column), link.qualified_name);
            one_anon := one_anon || pg_catalog.format(E'-- linked table %s', linked)
                || sync._compiled_count(
                       pg_catalog.format('DELETE FROM %s AS t WHERE t.%I = p_key::%s',
                                         link.relation, link.fk_column, link.column_type),
                       link.qualified_name, false);
        ELSIF scrub IS NOT NULL THEN
            anonymised := anonymised || pg_catalog.format(E'-- linked table %s', linked)
                || sync._compiled_counts(
                       pg_catalog.format('UPDATE %s AS t SET %s WHERE t.%I = ANY (kept::%s[])',
                                         link.relation, scrub, link.fk_column, link.column_type),
                       pg_catalog.format('t.%I', link.fk_column), link.qualified_name);
            one_anon := one_anon || pg_catalog.format(E'-- linked table %s', linked)
                || sync._compiled_count(
                       pg_catalog.format('UPDATE %s AS t SET %s WHERE t.%I = p_key::%s',
                                         link.relation, scrub, link.fk_column,
                                         link.column_type),
                       link.qualified_name, false);
        END IF;
    END LOOP;
    -- the rows one foreign key further, scrubbed before the linked rows change
    SELECT f.set_statements, f.one_statements INTO further_set, further_one
    FROM sync._compile_erase_further() AS f;
    body := body || further_set;
    one_body := one_body || further_one;
    -- the removed customers: their rows, links and the related rows only they used
    -- the link rows before the customer rows (see sync._compile_move: the shop's delete
    -- trigger then finds nothing of the engine's left to count)
    body := body || ARRAY[E'IF pg_catalog.cardinality(removed) > 0 THEN',
                          sync._release_book_pointers('removed', true)] || gone
        || 'DELETE FROM sync.customer_link AS l WHERE l.customer_key = ANY (removed);'::text
        || sync._compiled_counts(
               pg_catalog.format('DELETE FROM %s AS t WHERE t.%I = ANY (removed::%s[])',
                                 mapped.relation, mapped.key_column, mapped.key_type),
               pg_catalog.format('t.%I', mapped.key_column), cname,
               'SELECT k, k FROM pg_catalog.unnest(removed) AS k')
        || removing || 'END IF;'::text;
    one_body := one_body || ARRAY[E'IF remove THEN', sync._release_book_pointers('p_key', false)]
        || one_gone
        || 'DELETE FROM sync.customer_link AS l WHERE l.customer_key = p_key;'::text
        || sync._compiled_count(
               pg_catalog.format('DELETE FROM %s AS t WHERE t.%I = p_key::%s',
                                 mapped.relation, mapped.key_column, mapped.key_type),
               cname, true)
        || one_remove || 'ELSE'::text;
    -- the others: the related rows, then the customer rows scrubbed
    scrub := sync._scrub_assignments(mapped.relation, mapped.key_column);
    body := body || E'IF pg_catalog.cardinality(kept) > 0 THEN'::text || anonymised || keeping;
    one_body := one_body || one_anon || one_keep;
    IF scrub IS NOT NULL THEN
        body := body || sync._compiled_counts(
            pg_catalog.format('UPDATE %s AS t SET %s WHERE t.%I = ANY (kept::%s[])',
                              mapped.relation, scrub, mapped.key_column, mapped.key_type),
            pg_catalog.format('t.%I', mapped.key_column), cname,
            'SELECT k, k FROM pg_catalog.unnest(kept) AS k');
        one_body := one_body || sync._compiled_count(
            pg_catalog.format('UPDATE %s AS t SET %s WHERE t.%I = p_key::%s',
                              mapped.relation, scrub, mapped.key_column, mapped.key_type),
            cname, true);
    END IF;
    body := body || ARRAY['END IF;', 'RETURN counts;'];
    one_body := one_body || ARRAY['END IF;', 'RETURN counts;'];
    RETURN pg_catalog.concat_ws(E';\n',
        sync._compiled_function(
            'syncmap.erase_customers(p_keys text[], p_delete boolean[])', 'jsonb', decls, body),
        sync._compiled_function(
            'syncmap.erase_customer(p_key text, p_delete boolean)', 'jsonb', one_decls,
            one_body),
        sync._compiled_function(
            'syncmap.sharing_customers(p_keys text[])', 'text[]', '{}',
            ARRAY['RETURN ARRAY(' || coalesce(
                NULLIF(pg_catalog.array_to_string(sharing, E'\nUNION\n'), ''),
                'SELECT NULL::text WHERE false') || ');']));
END
$$;

-- The body of syncmap.has_bookkeeping(p_key text): whether the customer has rows in a
-- bookkeeping table (anonymise_rule.bookkeeping: orders); then a delete anonymises.
CREATE OR REPLACE FUNCTION sync._compile_bookkeeping()
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync._compiled_function(
        'syncmap.has_bookkeeping(p_key text)', 'boolean', '{}',
        ARRAY['RETURN ' || coalesce(
            pg_catalog.string_agg(
                pg_catalog.format('EXISTS (SELECT FROM %s AS t WHERE t.%I = p_key::%s)',
                                  l.relation, l.fk_column, l.column_type),
                E'\n    OR ' ORDER BY l.table_schema, l.table_name, l.fk_column),
            'false') || ';'])
    FROM sync._erasure_links() AS l
    WHERE l.bookkeeping
$$;

-- sha256 of a text, in hex: how a mapping document and the compiled moves' inputs are
-- recognised.
CREATE OR REPLACE FUNCTION sync._digest(p_text text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(p_text, 'UTF8')), 'hex')
$$;

-- The SQL that (re)creates the compiled moves for the active mapping and today's catalog and
-- registry (not executed; sync._moves_current() does); NULL without a mapping.
CREATE OR REPLACE FUNCTION sync.compile_moves()
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM sync.mapped_customer()) THEN
        RETURN NULL;
    END IF;
    RETURN pg_catalog.concat_ws(E';\n',
        sync._compile_bookkeeping(),
        sync._compile_move(),
        sync._compile_erase(),
        sync._compiled_function('syncmap.unclassified_count()', 'bigint', '{}',
                                ARRAY[pg_catalog.format('RETURN %s;',
                                                        sync._unclassified_count())])) || E';\n';
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Keeping them current (private)
-- ---------------------------------------------------------------------------------------------

-- The tables whose catalog entries the compiled moves are made from: the customer table, the
-- linked and pointed-to tables (sync.customer_tables()), the other users of the pointed-to
-- rows (sync._related_users) and the tables that reference a linked table's rows
-- (sync._referrers; a partition's own foreign key by its partitioned parent too, through which
-- the rows one foreign key further are scrubbed: sync._further_links).
CREATE OR REPLACE FUNCTION sync._moves_relations()
RETURNS oid[]
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.array_agg(DISTINCT r.relid ORDER BY r.relid)
    FROM (
        SELECT t.relation::pg_catalog.oid AS relid FROM sync.customer_tables() AS t
        UNION ALL
        SELECT u.relation::pg_catalog.oid
        FROM sync._pointed_tables() AS p
        CROSS JOIN LATERAL sync._related_users(p.relation, p.pointer, p.key_column) AS u
        UNION ALL
        SELECT f.relation::pg_catalog.oid
        FROM sync.customer_links() AS l
        CROSS JOIN LATERAL sync._referrers(l.relation) AS f
        UNION ALL
        -- a partition's own foreign key: the rows are scrubbed through its parent
        SELECT f.relation::pg_catalog.oid FROM sync._further_links() AS f
    ) AS r
$$;

-- A digest of everything the compiled moves are made from, given the tables they were made
-- for (p_relations): the active mapping's version and how its declared references resolve; the
-- foreign keys to those tables (a table the shop links later has one; a detached partition's
-- loses its parent); their names, partition parents, columns (names, types, defaults) and
-- indexes; the merge rules, anonymise rules and the PII registry. Each part a jsonb array, so
-- no two inputs read alike. A few index scans of the catalog: what the feed pays per page to
-- know that the compiled code is current.
CREATE OR REPLACE FUNCTION sync._moves_fingerprint(p_relations oid[])
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync._digest(pg_catalog.jsonb_build_array(
        (SELECT v.version FROM sync.mapping_version AS v WHERE v.active),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                    d.path, d.relation::pg_catalog.oid, d.column_name, d.problem)
                    ORDER BY d.path)
         FROM sync._declared_references() AS d),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                    c.oid, c.conname, c.conrelid, c.conrelid::pg_catalog.regclass::text,
                    c.confrelid, c.conparentid, c.conkey, c.confkey)
                    ORDER BY c.oid)
         FROM pg_catalog.pg_constraint AS c
         WHERE c.contype = 'f' AND c.confrelid = ANY (p_relations)),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                    r.oid, r.oid::pg_catalog.regclass::text, r.relkind, r.relispartition,
                    (SELECT pg_catalog.array_agg(h.inhparent ORDER BY h.inhparent)
                     FROM pg_catalog.pg_inherits AS h WHERE h.inhrelid = r.oid))
                    ORDER BY r.oid)
         FROM pg_catalog.pg_class AS r
         WHERE r.oid = ANY (p_relations)),
        sync._catalog_columns(p_relations),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                    x.indexrelid, x.indexrelid::pg_catalog.regclass::text, x.indisunique,
                    x.indisprimary, x.indkey::text, x.indnkeyatts, x.indnullsnotdistinct,
                    x.indpred IS NULL, x.indexprs IS NULL,
                    (SELECT k.conname FROM pg_catalog.pg_constraint AS k
                     WHERE k.conindid = x.indexrelid AND k.contype IN ('p', 'u')))
                    ORDER BY x.indexrelid)
         FROM pg_catalog.pg_index AS x
         WHERE x.indrelid = ANY (p_relations)),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(m) ORDER BY m::text)
         FROM sync.merge_rule AS m),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(r) ORDER BY r::text)
         FROM sync.anonymise_rule AS r),
        (SELECT pg_catalog.jsonb_agg(pg_catalog.to_jsonb(p) ORDER BY p::text)
         FROM sync.pii_column AS p))::text)
$$;

-- Whether the compiled moves were made from what the catalog and the registry hold now.
CREATE OR REPLACE FUNCTION sync._moves_are_current()
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.to_regprocedure('syncmap.moves_fingerprint()') IS NULL THEN
        RETURN false;
    END IF;
    RETURN syncmap.moves_fingerprint() = sync._moves_fingerprint(syncmap.moves_relations());
END
$$;

-- Make the feed's compiled write current: compiled again from the active document when the
-- catalog it was made from changed (sync._write_is_current: a foreign key the shop added to a
-- related table decides copy or update in place) and the document still fits today's catalog;
-- else it stays as it is (`mapping check` names the defect) and the feed goes on; the session
-- then checks the document again only once the catalog changes again (syncctl.write_unfit:
-- the catalog's fingerprint it did not fit). As the owner role, one session at a time. The
-- feed calls it on every page (sync.apply_inbox), every other path with the moves
-- (sync._moves_current). Without a mapping it does nothing.
CREATE OR REPLACE FUNCTION sync._write_current()
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    active jsonb;
    today  text;
BEGIN
    IF sync._write_is_current() THEN
        RETURN;
    END IF;
    active := (SELECT v.document FROM sync.mapping_version AS v WHERE v.active);
    today := sync._write_fingerprint(active);
    IF today = pg_catalog.current_setting('syncctl.write_unfit', true) THEN
        RETURN;
    END IF;
    -- one replacement at a time (a mapping install takes EXCLUSIVE: it waits, and is waited for)
    LOCK TABLE sync.mapping_version IN SHARE UPDATE EXCLUSIVE MODE;
    IF sync._write_is_current() THEN
        RETURN;
    END IF;
    -- the active document of now (an install may have come before the lock)
    active := (SELECT v.document FROM sync.mapping_version AS v WHERE v.active);
    today := sync._write_fingerprint(active);
    BEGIN
        PERFORM sync._refuse_defective_mapping(active, false);
        EXECUTE sync.compile_mapping(active);
    EXCEPTION WHEN SQLSTATE 'SY060' THEN
        PERFORM pg_catalog.set_config('syncctl.write_unfit', today, false);
    END;
END
$$;

-- Make the compiled moves current: when what they were made from changed (or p_force: a new
-- mapping, an upgrade of the engine's compiler), generate them again and replace them, with the
-- tables and the fingerprint they were made from (syncmap.moves_relations(),
-- syncmap.moves_fingerprint()), as the owner role, one session at a time. Every path that
-- merges, anonymises or deletes calls it first (the feed once a page). The feed's write is
-- made current first (sync._write_current). Without a mapping it does nothing.
DROP FUNCTION IF EXISTS sync._moves_current();
CREATE OR REPLACE FUNCTION sync._moves_current(p_force boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    relations oid[];
BEGIN
    PERFORM sync._write_current();
    IF NOT p_force AND sync._moves_are_current() THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM sync.mapped_customer()) THEN
        RETURN;
    END IF;
    -- one replacement at a time (a mapping install takes EXCLUSIVE: it waits, and is waited for)
    LOCK TABLE sync.mapping_version IN SHARE UPDATE EXCLUSIVE MODE;
    IF NOT p_force AND sync._moves_are_current() THEN
        RETURN;
    END IF;
    relations := sync._moves_relations();
    EXECUTE sync.compile_moves()
        || sync._compiled_function('syncmap.moves_relations()', 'oid[]', '{}',
                                   ARRAY[pg_catalog.format('RETURN %L::oid[];', relations)])
        || E';\n'
        || sync._compiled_function('syncmap.moves_fingerprint()', 'text', '{}',
                                   ARRAY[pg_catalog.format('RETURN %L;',
                                                           sync._moves_fingerprint(relations))])
        || E';\nREVOKE ALL ON ALL FUNCTIONS IN SCHEMA syncmap FROM PUBLIC';
END
$$;
