-- The shop's own deletes and key changes of the mapped customer table. The engine names a
-- customer by its key as text, with no foreign key into the shop's table: sync.customer_link
-- (the number and version, when the mapping keeps them there) and the engine's own
-- customer-linked tables (sync.customer_links(), known_by engine: gdpr.consent,
-- gdpr.erasure_request). When the shop deletes customer rows itself (its back office, a cleanup
-- script), those rows go with them, as they go when the engine deletes a customer; when it
-- changes a customer's key, they follow the customer to its new key. Without this a key used
-- again (a login name, a customer code) would hand the old person's tritonX number and consents
-- to the new one: tritonX's next snapshot of the old number would overwrite the new customer.
-- The tritonX number is not tombstoned: tritonX still knows the person, and its next snapshot
-- makes a new customer row, as for any number that has no row here.
--
-- Triggers on the mapped customer table, bound by sync.install_mapping next to the consent
-- triggers (sync._bind_shop_key_changes), owned by the owner role:
--   customer_deleted_by_shop   AFTER DELETE, statement level, transition table;
--   customer_truncated_by_shop AFTER TRUNCATE, statement level: every key the engine holds;
--   zz_customer_key_changing   BEFORE UPDATE OF <key>, row level, only for rows whose key
--                              changes (WHEN): it notes the old and new key (named to fire
--                              after the shop's own BEFORE triggers, which fire in name order);
--                              a key change that moves the row to another partition fires no
--                              AFTER UPDATE row trigger, only this one;
--   customer_key_changed       AFTER UPDATE OF <key>, row level, only for rows whose key
--                              changed (WHEN): it confirms the old and new key as written;
--   customer_keys_changed      AFTER UPDATE OF <key>, statement level: moves what the noted
--                              keys hold, set-based.
-- On a partitioned table the three statement triggers are on each partition too (a statement
-- naming a partition fires only the partition's); the row triggers are cloned there.
-- Neither fires on the feed's upserts (they insert, and update columns other than the key).
-- The engine's own deletes (a tritonX delete, an erasure that removes, a merge removing the old
-- customer) remove the customer's link row and move or remove its consents and requests before
-- the customer row (sql/57_moves_compile.sql), so the trigger finds nothing of theirs and
-- writes nothing. One audit row per statement that removed or moved anything (actor shop),
-- counts only. Re-runnable.

-- The old and new keys of the customers whose key a statement changed, until the statement's
-- trigger has moved what they hold (customer_keys_changed); also how the consent merge trigger
-- tells a key change (the same person) from a merge (gdpr._combine_merged_consents). Written only
-- by the owner role's trigger functions. A row holds for its transaction only; unlogged: a crash
-- ends every transaction it could speak for.
-- `confirmed`: noted after the row was written (customer_key_changed); a pair noted before it
-- only (zz_customer_key_changing) is a row that moved to another partition, or one a shop
-- trigger firing after the engine's skipped.
CREATE UNLOGGED TABLE IF NOT EXISTS sync.shop_key_change (
    backend_pid           integer NOT NULL,
    transaction_id        xid8 NOT NULL,
    old_key               text NOT NULL,
    new_key               text NOT NULL,
    confirmed             boolean NOT NULL DEFAULT true,
    PRIMARY KEY (backend_pid, old_key)
);

-- The rows of p_table, one of the engine's tables keyed by a customer key as text
-- (customer_key, its primary key), for customers the shop removed (p_new NULL: they go) or
-- re-keyed (p_new[i] the new key of p_old[i]: each row moves to the new key, the rest of it
-- along; a row a new key held already names no customer, the key was free until this
-- statement, and goes). Returns the rows removed or moved.
CREATE OR REPLACE FUNCTION sync._follow_keys_in(p_table regclass, p_old text[], p_new text[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rest    text;
    changed bigint;
BEGIN
    IF p_new IS NULL THEN
        EXECUTE pg_catalog.format('DELETE FROM %s AS t WHERE t.customer_key = ANY ($1)',
                                  p_table)
            USING p_old;
        GET DIAGNOSTICS changed = ROW_COUNT;
        RETURN changed;
    END IF;
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
    INTO rest
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attname <> 'customer_key';
    EXECUTE pg_catalog.format('DELETE FROM %s AS t '
                              'WHERE t.customer_key = ANY ($2) AND t.customer_key <> ALL ($1)',
                              p_table)
        USING p_old, p_new;
    -- one statement: a key given to another customer of the same statement (a swap) is free
    -- again by the time its new rows are inserted
    EXECUTE pg_catalog.format(
        'WITH gone AS (DELETE FROM %1$s AS t '
        'USING ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS p (old_key, new_key) '
        'WHERE t.customer_key = p.old_key RETURNING p.new_key AS moved_to, t.*) '
        'INSERT INTO %1$s (customer_key, %2$s) SELECT g.moved_to, %2$s FROM gone AS g',
        p_table, rest)
        USING p_old, p_new;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END
$$;

-- What the engine keeps by key, for customers the shop removed (p_new NULL) or re-keyed (p_new[i]
-- the new key of p_old[i], keys as text): the sync.customer_link rows, the keys' erased marks
-- (sync.erased_key: a key given again is a new customer's) and the rows of the engine's own
-- customer-linked tables (sync.customer_links(), known_by engine) are removed, or moved to the
-- new key (sync._follow_keys_in). Returns {table: rows}, tables with rows only.
CREATE OR REPLACE FUNCTION sync._follow_shop_keys(p_old text[], p_new text[])
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    counts  jsonb := '{}'::jsonb;
    keyed   regclass;
    link    record;
    changed bigint;
BEGIN
    FOREACH keyed IN ARRAY ARRAY['sync.customer_link'::regclass, 'sync.erased_key'::regclass]
    LOOP
        changed := sync._follow_keys_in(keyed, p_old, p_new);
        IF changed > 0 THEN
            counts := sync._add_count(counts, keyed::text, changed);
        END IF;
    END LOOP;
    FOR link IN SELECT * FROM sync.customer_links() AS l WHERE l.known_by = 'engine' LOOP
        IF p_new IS NULL THEN
            EXECUTE pg_catalog.format('DELETE FROM %s AS t WHERE t.%I = ANY ($1)',
                                      link.relation, link.fk_column)
                USING p_old;
        ELSE
            EXECUTE pg_catalog.format(
                'UPDATE %1$s AS t SET %2$I = p.new_key '
                'FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) '
                'AS p (old_key, new_key) WHERE t.%2$I = p.old_key',
                link.relation, link.fk_column)
                USING p_old, p_new;
        END IF;
        GET DIAGNOSTICS changed = ROW_COUNT;
        IF changed > 0 THEN
            counts := sync._add_count(counts, link.qualified_name, changed);
        END IF;
    END LOOP;
    RETURN counts;
END
$$;

-- The audit row of a shop's statement (p_action) that removed or moved what the engine kept for
-- the customers p_keys (as text; for a key change the new keys), with its counts ({table: rows}):
-- none when nothing was (the engine's own deletes, customers the engine held nothing of).
-- Names the customer (its tritonX number, id and key as sync._shown_key shows it) when the
-- statement concerned one; counts the customers otherwise.
CREATE OR REPLACE FUNCTION sync._audit_shop_keys(
    p_action text, p_keys text[], p_numbers text[], p_counts jsonb)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts, reason,
                            customer_key)
    SELECT 'shop', p_action, 'applied',
           CASE WHEN pg_catalog.cardinality(p_keys) = 1 THEN p_numbers[1] END,
           CASE WHEN pg_catalog.cardinality(p_keys) = 1 THEN (sync._key_ids(p_keys))[1] END,
           p_counts || pg_catalog.jsonb_build_object(sync._customer_table_name(),
                                                     pg_catalog.cardinality(p_keys)),
           CASE p_action
               WHEN 'customer.deleted_by_shop' THEN pg_catalog.format(
                   '%s customer(s) deleted by the shop: link, consents and erasure requests '
                   'removed; tritonX numbers not tombstoned', pg_catalog.cardinality(p_keys))
               WHEN 'customer.truncated_by_shop' THEN pg_catalog.format(
                   'customer table truncated by the shop: link, consents and erasure requests '
                   'of %s customer key(s) removed; tritonX numbers not tombstoned',
                   pg_catalog.cardinality(p_keys))
               ELSE pg_catalog.format(
                   '%s customer key(s) changed by the shop: link, consents and erasure requests '
                   'moved to the new key', pg_catalog.cardinality(p_keys))
           END,
           CASE WHEN pg_catalog.cardinality(p_keys) = 1 THEN sync._shown_key(p_keys[1]) END
    WHERE p_counts <> '{}'::jsonb
$$;

-- What the engine keeps for the customers p_keys (keys as text) that the shop removed goes
-- (sync._follow_shop_keys), with one audit row p_action when anything went; p_numbers: their
-- tritonX numbers, when the removed rows held them; else read from the link table before its
-- rows go. Shared by the shop's DELETE and TRUNCATE triggers.
CREATE OR REPLACE FUNCTION sync._forget_shop_customers(
    p_action text, p_keys text[], p_numbers text[])
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    numbers text[] := p_numbers;
BEGIN
    IF numbers IS NULL THEN
        SELECT pg_catalog.array_agg(l.customer_number) INTO numbers
        FROM sync.customer_link AS l
        WHERE l.customer_key = ANY (p_keys) AND l.customer_number IS NOT NULL;
    END IF;
    PERFORM sync._audit_shop_keys(p_action, p_keys, numbers,
                                  sync._follow_shop_keys(p_keys, NULL));
END
$$;

-- Whether p_relation is the mapped customer table or one of its partitions (a statement naming
-- a partition fires that partition's statement triggers, not the partitioned table's: the
-- engine's statement triggers are bound on each partition too, sync._bind_shop_key_changes).
CREATE OR REPLACE FUNCTION sync._is_mapped_customer_table(p_relation oid)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    -- pg_partition_tree has no row for a table that is not partitioned
    SELECT EXISTS (SELECT FROM sync.mapped_customer() AS m
                   WHERE m.relation = p_relation
                      OR p_relation IN (SELECT p.relid
                                        FROM pg_catalog.pg_partition_tree(m.relation) AS p))
$$;

-- AFTER DELETE, statement level, on the mapped customer table (customer_deleted_by_shop);
-- argument: the key column. The deleted customers' link rows, consents and erasure requests go
-- (sync._follow_shop_keys); one audit row (customer.deleted_by_shop) when anything went.
CREATE OR REPLACE FUNCTION sync._customers_deleted_by_shop()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keys    text[];
    numbers text[];
    number  text := (SELECT v.document #>> '{customer,number,column}'
                     FROM sync.mapping_version AS v WHERE v.active);
BEGIN
    IF NOT sync._is_mapped_customer_table(TG_RELID) THEN
        RETURN NULL;
    END IF;
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.array_agg(DISTINCT d.%I::text) FROM shop_deleted AS d', TG_ARGV[0])
        INTO keys;
    IF keys IS NULL THEN
        RETURN NULL;
    END IF;
    -- the deleted customers' tritonX numbers, for the audit: from the deleted rows, or from
    -- the link table (sync._forget_shop_customers)
    IF number IS NOT NULL THEN
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.array_agg(d.%1$I::text) FROM shop_deleted AS d '
            'WHERE d.%1$I IS NOT NULL', number)
            INTO numbers;
    END IF;
    PERFORM sync._forget_shop_customers('customer.deleted_by_shop', keys, numbers);
    RETURN NULL;
END
$$;

-- AFTER TRUNCATE, statement level, on the mapped customer table (customer_truncated_by_shop):
-- every customer is gone, so every key the engine holds goes: its link rows, consents and
-- erasure requests (sync._follow_shop_keys); one audit row (customer.truncated_by_shop) when
-- anything went. On a partition (bound there too): the keys the engine holds that no row of
-- the mapped table has any more (one index probe a key held).
CREATE OR REPLACE FUNCTION sync._customers_truncated_by_shop()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    held    text;
    keys    text[];
    mapped  record;
BEGIN
    IF NOT sync._is_mapped_customer_table(TG_RELID) THEN
        RETURN NULL;
    END IF;
    SELECT * INTO mapped FROM sync.mapped_customer();
    -- every key the link table, the erased marks and the engine's own customer-linked tables
    -- hold
    SELECT pg_catalog.string_agg(pg_catalog.format(' UNION SELECT t.%I::text FROM %s AS t',
                                                   l.fk_column, l.relation), ''
                                 ORDER BY l.qualified_name)
    INTO held
    FROM sync.customer_links() AS l
    WHERE l.known_by = 'engine';
    EXECUTE 'SELECT pg_catalog.array_agg(k.key ORDER BY k.key) FROM (SELECT l.customer_key '
            'FROM sync.customer_link AS l UNION SELECT e.customer_key FROM sync.erased_key AS e'
            || coalesce(held, '') || ') AS k (key) '
            'WHERE k.key IS NOT NULL'
            -- a partition: only the keys whose row is gone
            || CASE WHEN TG_RELID <> mapped.relation::pg_catalog.oid THEN
                   pg_catalog.format(' AND NOT EXISTS (SELECT FROM %s AS c WHERE c.%I = '
                                     'k.key::%s)', mapped.relation, mapped.key_column,
                                     mapped.key_type)
                   ELSE '' END
        INTO keys;
    IF keys IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM sync._forget_shop_customers('customer.truncated_by_shop', keys, NULL);
    RETURN NULL;
END
$$;

-- UPDATE OF <key>, row level, WHEN the key changes: notes the old and the new key (in the key's
-- own text form) for the statement's trigger; argument: the key column. BEFORE
-- (zz_customer_key_changing): noted unconfirmed, the row unchanged; AFTER
-- (customer_key_changed): confirmed as written.
CREATE OR REPLACE FUNCTION sync._customer_key_changed()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key_was text := pg_catalog.to_jsonb(OLD) ->> TG_ARGV[0];
    key_now text := pg_catalog.to_jsonb(NEW) ->> TG_ARGV[0];
    written boolean := TG_WHEN = 'AFTER';
BEGIN
    INSERT INTO sync.shop_key_change AS k (backend_pid, transaction_id, old_key, new_key,
                                           confirmed)
    VALUES (pg_catalog.pg_backend_pid(), pg_catalog.pg_current_xact_id(), key_was, key_now,
            written)
    ON CONFLICT (backend_pid, old_key) DO UPDATE
    SET transaction_id = EXCLUDED.transaction_id, new_key = EXCLUDED.new_key,
        confirmed = EXCLUDED.confirmed;
    RETURN CASE WHEN written THEN NULL ELSE NEW END;
END
$$;

-- AFTER UPDATE OF <key>, statement level (customer_keys_changed): the keys the statement changed
-- (noted by customer_key_changed, or before the write by zz_customer_key_changing for a row that
-- moved to another partition) take the link rows, consents and erasure requests of their old
-- keys (sync._follow_shop_keys); one audit row (customer.key_changed_by_shop) when anything
-- moved. A pair noted before the write only, whose old key is still there and new key is not,
-- was skipped by a shop trigger firing after the engine's: nothing moves for it. A statement
-- that changed no key reads one index page and returns.
CREATE OR REPLACE FUNCTION sync._customer_keys_changed()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    olds    text[];
    news    text[];
    numbers text[];
    counts  jsonb;
    mapped  record;
BEGIN
    IF EXISTS (SELECT FROM sync.shop_key_change AS k
               WHERE k.backend_pid = pg_catalog.pg_backend_pid() AND NOT k.confirmed)
       AND sync._is_mapped_customer_table(TG_RELID) THEN
        SELECT * INTO mapped FROM sync.mapped_customer();
        EXECUTE pg_catalog.format(
            'DELETE FROM sync.shop_key_change AS k '
            'WHERE k.backend_pid = pg_catalog.pg_backend_pid() AND NOT k.confirmed '
            'AND EXISTS (SELECT FROM %1$s AS c WHERE c.%2$I = k.old_key::%3$s) '
            'AND NOT EXISTS (SELECT FROM %1$s AS c WHERE c.%2$I = k.new_key::%3$s)',
            mapped.relation, mapped.key_column, mapped.key_type);
    END IF;
    SELECT pg_catalog.array_agg(k.old_key ORDER BY k.old_key),
           pg_catalog.array_agg(k.new_key ORDER BY k.old_key)
    INTO olds, news
    FROM sync.shop_key_change AS k
    WHERE k.backend_pid = pg_catalog.pg_backend_pid()
      AND k.transaction_id = pg_catalog.pg_current_xact_id_if_assigned();
    IF olds IS NULL THEN
        RETURN NULL;
    END IF;
    IF sync._is_mapped_customer_table(TG_RELID) THEN
        -- the noted pairs stay while the consents move: gdpr._combine_merged_consents reads
        -- them (a key change is no merge)
        counts := sync._follow_shop_keys(olds, news);
        -- the customers' tritonX numbers, for the audit (a number column or the moved link)
        SELECT pg_catalog.array_agg(n.number) INTO numbers
        FROM pg_catalog.unnest(news) AS k (key)
        CROSS JOIN LATERAL (SELECT syncmap.number_of(k.key) AS number) AS n
        WHERE n.number IS NOT NULL;
        PERFORM sync._audit_shop_keys('customer.key_changed_by_shop', news, numbers, counts);
    END IF;
    DELETE FROM sync.shop_key_change AS k WHERE k.backend_pid = pg_catalog.pg_backend_pid();
    RETURN NULL;
END
$$;

-- The engine's triggers on the shop's tables that call one of p_functions (their own, not the
-- clones PostgreSQL makes on partitions), dropped from every table but p_keep and its
-- partitions (from every table
-- when p_keep is NULL); whether they may be put on p_keep: the owner role (current_user, as
-- the binders run) needs the TRIGGER privilege there, else a WARNING says what is then lost
-- (p_lost) and how to grant it. A trigger the owner role may not drop (not the table's owner)
-- stays with a WARNING saying it does nothing there (p_idle: `records nothing`) while its table
-- is not the mapped one. Shared by gdpr._bind_local_consents and sync._bind_shop_key_changes.
CREATE OR REPLACE FUNCTION sync._rebind_triggers(
    p_functions regprocedure[], p_keep regclass, p_idle text, p_lost text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bound record;
BEGIN
    FOR bound IN
        SELECT t.tgname, t.tgrelid::pg_catalog.regclass AS relation
        FROM pg_catalog.pg_trigger AS t
        WHERE t.tgfoid = ANY (p_functions::pg_catalog.oid[])
          AND t.tgparentid = 0
          -- p_keep's partitions keep theirs (the statement triggers bound on each)
          AND (p_keep IS NULL
               OR (t.tgrelid <> p_keep
                   AND t.tgrelid NOT IN (SELECT p.relid
                                         FROM pg_catalog.pg_partition_tree(p_keep) AS p)))
    LOOP
        BEGIN
            EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', bound.tgname, bound.relation);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING USING MESSAGE = pg_catalog.format(
                'trigger %s on %s stays: only the table''s owner may drop it; it %s while %s '
                'is not the mapped customer table',
                bound.tgname, bound.relation, p_idle, bound.relation);
        END;
    END LOOP;
    IF p_keep IS NULL THEN
        RETURN false;
    END IF;
    IF NOT pg_catalog.has_table_privilege(p_keep, 'TRIGGER') THEN
        RAISE WARNING USING MESSAGE = pg_catalog.format(
            '%s: no TRIGGER privilege for %s, so %s', p_keep, current_user, p_lost),
            HINT = pg_catalog.format('GRANT TRIGGER ON %s TO %I and install the mapping again',
                                     p_keep, current_user);
        RETURN false;
    END IF;
    RETURN true;
END
$$;

-- Put the three triggers on the active mapping's customer table (called by
-- sync.install_mapping next to gdpr._bind_local_consents, as the owner role, and when this file
-- runs again) and remove them from every other table (sync._rebind_triggers). They take the
-- TRIGGER privilege on the mapped table; without it a WARNING says that customers the shop
-- deletes or re-keys keep what the engine holds under the old key (GRANT TRIGGER and install
-- the mapping again).
CREATE OR REPLACE FUNCTION sync._bind_shop_key_changes()
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped record;
    part   regclass;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    IF NOT sync._rebind_triggers(
               ARRAY['sync._customers_deleted_by_shop()'::pg_catalog.regprocedure,
                     'sync._customers_truncated_by_shop()'::pg_catalog.regprocedure,
                     'sync._customer_key_changed()'::pg_catalog.regprocedure,
                     'sync._customer_keys_changed()'::pg_catalog.regprocedure],
               mapped.relation, 'does nothing',
               'customers the shop deletes or re-keys itself keep their tritonX link, consents '
               'and erasure requests under the old key') THEN
        RETURN;
    END IF;
    -- a row trigger on a partitioned table is cloned onto every partition; a statement
    -- trigger is not, and a statement naming a partition (DELETE FROM, TRUNCATE or UPDATE of
    -- one partition) fires only that partition's: the three statement triggers are put on
    -- each partition too (one attached later gets them when the mapping is installed again).
    -- That takes the TRIGGER privilege on each of them.
    BEGIN
        FOR part IN
            SELECT mapped.relation
            UNION ALL
            (SELECT p.relid FROM pg_catalog.pg_partition_tree(mapped.relation) AS p
             WHERE p.level > 0
             ORDER BY p.level, p.relid::pg_catalog.regclass::text)
        LOOP
            EXECUTE pg_catalog.format(
                'CREATE OR REPLACE TRIGGER customer_deleted_by_shop AFTER DELETE ON %1$s '
                'REFERENCING OLD TABLE AS shop_deleted FOR EACH STATEMENT '
                'EXECUTE FUNCTION sync._customers_deleted_by_shop(%2$L)',
                part, mapped.key_column);
            EXECUTE pg_catalog.format(
                'CREATE OR REPLACE TRIGGER customer_truncated_by_shop AFTER TRUNCATE ON %s '
                'FOR EACH STATEMENT EXECUTE FUNCTION sync._customers_truncated_by_shop()',
                part);
            EXECUTE pg_catalog.format(
                'CREATE OR REPLACE TRIGGER customer_keys_changed AFTER UPDATE OF %2$I ON %1$s '
                'FOR EACH STATEMENT EXECUTE FUNCTION sync._customer_keys_changed()',
                part, mapped.key_column);
        END LOOP;
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE TRIGGER customer_key_changed AFTER UPDATE OF %2$I ON %1$s '
            'FOR EACH ROW WHEN (OLD.%2$I IS DISTINCT FROM NEW.%2$I) '
            'EXECUTE FUNCTION sync._customer_key_changed(%2$L)',
            mapped.relation, mapped.key_column);
        -- BEFORE: the one row trigger a move to another partition fires
        EXECUTE pg_catalog.format(
            'CREATE OR REPLACE TRIGGER zz_customer_key_changing BEFORE UPDATE OF %2$I ON %1$s '
            'FOR EACH ROW WHEN (OLD.%2$I IS DISTINCT FROM NEW.%2$I) '
            'EXECUTE FUNCTION sync._customer_key_changed(%2$L)',
            mapped.relation, mapped.key_column);
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING USING MESSAGE = pg_catalog.format(
            '%s: %s, so customers the shop deletes or re-keys itself keep their tritonX link, '
            'consents and erasure requests under the old key', mapped.relation, SQLERRM),
            HINT = pg_catalog.format('GRANT TRIGGER on the table and each of its partitions '
                                     'TO %I and install the mapping again', current_user);
    END;
END
$$;

-- An installation that has a mapping: the triggers follow today's definition (an installation
-- without one gets them when a mapping is installed).
DO $$
BEGIN
    IF EXISTS (SELECT FROM sync.mapped_customer()) THEN
        PERFORM sync._bind_shop_key_changes();
    END IF;
END
$$;
