-- Consent per customer and policy. gdpr.consent is an append-only history: a trigger refuses
-- every change but the engine's own (a merge re-points rows to the survivor; a delete of the
-- customer removes them), checked at commit: the customer the rows leave must be gone by then.
-- The current state is the latest row (gdpr.current_consent). Customers are named by the mapped
-- key as text, on any mapped schema. Sources:
--   - the shop and the back office call gdpr.record_consent;
--   - tritonX: a policy's consent_field (a boolean field of the snapshot) is recorded by the
--     apply path from the snapshots it has written, one INSERT per run of upserts
--     (gdpr._record_tritonx_consents), whether or not the mapping stores the field;
--   - local changes of a customer column that holds the field as is (the reference shop's
--     newsletter_opt_in): statement-level triggers on the mapped customer table, bound by
--     sync.install_mapping (gdpr._bind_local_consents);
--   - a merge combines both customers' consents per the policy's merge_rule (a trigger on
--     gdpr.consent sees the re-pointed rows) and appends the combined state (source merge).
-- Collection guard: gdpr.require_consent puts a trigger on a customer-linked table that refuses
-- rows (SY083) for a customer without a current granted consent for an active policy.
-- The triggers that read or write gdpr tables run as their owner (SECURITY DEFINER, search_path
-- pinned): the shop writes its own tables and holds no rights in gdpr. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Views and functions (public)
-- ---------------------------------------------------------------------------------------------

-- The current consent per customer and policy: the latest decision.
CREATE OR REPLACE VIEW gdpr.current_consent AS
SELECT DISTINCT ON (c.customer_key, c.policy_id)
       c.customer_key, c.policy_id, p.code AS policy_code, c.granted, c.decided_at, c.source,
       c.text_version, c.id AS consent_id
FROM gdpr.consent AS c
JOIN gdpr.policy AS p ON p.id = c.policy_id
ORDER BY c.customer_key, c.policy_id, c.decided_at DESC, c.id DESC;

-- Record a consent decision (granted or withdrawn) of customer p_customer_key (the mapped
-- customer key as text: '42', a uuid) for an active
-- policy, under its current text version, at p_at (at most sync._clock_skew() ahead of the
-- database's clock: a decision dated in the future would outlive every later one). Returns
-- the consent id. Raises SY020 (unknown customer), SY080 (unknown policy), SY081 (policy not
-- active), SY023 (actor, source or decision), SY025 (policy code longer than 64 bytes), SY026
-- (p_at in the future).
-- Example: SELECT gdpr.record_consent('42', 'newsletter', true, 'webshop', 'webshop');
CREATE OR REPLACE FUNCTION gdpr.record_consent(
    p_customer_key text,
    p_policy_code text,
    p_granted boolean,
    p_source text DEFAULT 'webshop',
    p_actor text DEFAULT 'webshop',
    p_at timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target   gdpr.policy;
    customer text;
    new_id   bigint;
BEGIN
    PERFORM sync._checked_length(p_policy_code, 64, 'policy code');
    PERFORM sync._checked_length(p_source, 64, 'source');
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_time(p_at, 'consent time');
    SELECT * INTO target FROM gdpr.policy AS p WHERE p.code = p_policy_code;
    IF NOT FOUND THEN
        PERFORM gdpr._policy(p_policy_code);  -- raises SY080
    END IF;
    IF target.state <> 'active' THEN
        RAISE EXCEPTION USING ERRCODE = 'SY081',
            MESSAGE = pg_catalog.format('policy %s is %s: it takes no consents',
                                        p_policy_code, target.state);
    END IF;
    -- the customer stays while the decision is recorded (a merge or delete waits)
    PERFORM syncmap.lock_customers(ARRAY[sync._local_customer_key(p_customer_key)]);
    customer := gdpr._customer_key(p_customer_key);
    IF p_granted IS NULL OR p_source IS NULL OR p_source NOT IN ('webshop', 'back_office', 'store') THEN
        RAISE EXCEPTION USING ERRCODE = 'SY023',
            MESSAGE = 'granted must be true or false and source webshop, back_office or store';
    END IF;
    INSERT INTO gdpr.consent (customer_key, policy_id, granted, decided_at, source,
                              text_version, actor)
    VALUES (customer, target.id, p_granted, coalesce(p_at, pg_catalog.now()), p_source,
            target.text_version, p_actor)
    RETURNING id INTO new_id;
    RETURN new_id;
END
$$;

-- The same for an integer key: p_customer_id is the mapped customer's key.
-- Example: SELECT gdpr.record_consent(42, 'newsletter', true, 'webshop', 'webshop');
CREATE OR REPLACE FUNCTION gdpr.record_consent(
    p_customer_id bigint,
    p_policy_code text,
    p_granted boolean,
    p_source text DEFAULT 'webshop',
    p_actor text DEFAULT 'webshop',
    p_at timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT gdpr.record_consent(p_customer_id::text, p_policy_code, p_granted, p_source, p_actor,
                               p_at)
$$;

-- Whether the customer p_customer_key (the key as text) holds a current granted consent for the
-- policy (false for a policy that is not active, and for a key that names nobody). Raises
-- SY025 for a policy code longer than 64 bytes.
-- Example: SELECT gdpr.has_consent('42', 'newsletter');
CREATE OR REPLACE FUNCTION gdpr.has_consent(p_customer_key text, p_policy_code text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM sync._checked_length(p_customer_key, sync._key_limit(), 'customer key');
    PERFORM sync._checked_length(p_policy_code, 64, 'policy code');
    RETURN coalesce(
        (SELECT c.granted
         FROM gdpr.consent AS c
         JOIN gdpr.policy AS p ON p.id = c.policy_id
         WHERE c.customer_key = sync._local_customer_key(p_customer_key)
           AND p.code = p_policy_code AND p.state = 'active'
         ORDER BY c.decided_at DESC, c.id DESC
         LIMIT 1),
        false);
END
$$;

-- The same for an integer key.
-- Example: SELECT gdpr.has_consent(42, 'newsletter');
CREATE OR REPLACE FUNCTION gdpr.has_consent(p_customer_id bigint, p_policy_code text)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT gdpr.has_consent(p_customer_id::text, p_policy_code)
$$;

-- ---------------------------------------------------------------------------------------------
-- Append-only history
-- ---------------------------------------------------------------------------------------------

-- Only the customer column may change (a merge re-points the history); TRUNCATE never.
CREATE OR REPLACE FUNCTION gdpr._consent_is_history()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE'
       OR (pg_catalog.to_jsonb(NEW) - 'customer_key')
          IS DISTINCT FROM (pg_catalog.to_jsonb(OLD) - 'customer_key') THEN
        RAISE EXCEPTION USING ERRCODE = 'SY084',
            MESSAGE = pg_catalog.format('gdpr.consent is append-only: %s refused', TG_OP),
            HINT = 'record a new decision with gdpr.record_consent';
    END IF;
    RETURN NEW;
END
$$;

-- At commit: rows may only have left (re-pointed or deleted) a customer that no longer exists,
-- as after a merge or a delete of the customer.
CREATE OR REPLACE FUNCTION gdpr._consent_left_a_gone_customer()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF sync._customer_exists(OLD.customer_key) THEN
        RAISE EXCEPTION USING ERRCODE = 'SY084',
            MESSAGE = pg_catalog.format(
                'gdpr.consent is append-only: %s of consent %s refused (its customer still '
                'exists)', TG_OP, OLD.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER consent_is_history
    BEFORE UPDATE ON gdpr.consent
    FOR EACH ROW
    EXECUTE FUNCTION gdpr._consent_is_history();

CREATE OR REPLACE TRIGGER consent_is_never_truncated
    BEFORE TRUNCATE ON gdpr.consent
    FOR EACH STATEMENT
    EXECUTE FUNCTION gdpr._consent_is_history();

DO $$
BEGIN
    -- constraint triggers have no CREATE OR REPLACE
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS t
                   WHERE t.tgrelid = 'gdpr.consent'::pg_catalog.regclass
                     AND t.tgname = 'consent_left_a_gone_customer') THEN
        CREATE CONSTRAINT TRIGGER consent_left_a_gone_customer
            AFTER UPDATE OF customer_key OR DELETE ON gdpr.consent
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW
            EXECUTE FUNCTION gdpr._consent_left_a_gone_customer();
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Merge: combine both customers' consents per policy
-- ---------------------------------------------------------------------------------------------

-- After a statement re-pointed consent rows (a merge moving the old customer's history to the
-- survivor; not a key the shop changed, sync.shop_key_change): per survivor and policy, the old customer's latest decision and the survivor's
-- own are combined by the policy's merge_rule, and the result is appended (source merge):
--   most_restrictive  withdrawn wins; a survivor without a decision takes the old one's
--   most_permissive   granted wins
--   survivor          the survivor's decision; without one, not granted
-- One audit row per survivor names the policies and rules (no data).
CREATE OR REPLACE FUNCTION gdpr._combine_merged_consents()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    WITH moved AS (
        SELECT n.id, n.customer_key AS survivor_key, n.policy_id, n.granted, n.decided_at,
               n.text_version
        FROM moved_after AS n
        JOIN moved_before AS o ON o.id = n.id
        WHERE o.customer_key <> n.customer_key
          -- a key the shop changed is the same person: its history moves, nothing combines
          -- (sql/73_shop_key_changes.sql)
          AND NOT EXISTS (SELECT FROM sync.shop_key_change AS k
                          WHERE k.backend_pid = pg_catalog.pg_backend_pid()
                            AND k.old_key = o.customer_key AND k.new_key = n.customer_key
                            AND k.transaction_id = pg_catalog.pg_current_xact_id())
    ),
    old_state AS (
        SELECT DISTINCT ON (m.survivor_key, m.policy_id) m.*
        FROM moved AS m
        ORDER BY m.survivor_key, m.policy_id, m.decided_at DESC, m.id DESC
    ),
    combined AS (
        SELECT o.survivor_key, o.policy_id, p.code, p.merge_rule,
               CASE p.merge_rule
                   WHEN 'most_restrictive' THEN coalesce(s.granted AND o.granted, o.granted)
                   WHEN 'most_permissive' THEN coalesce(s.granted, false) OR o.granted
                   ELSE coalesce(s.granted, false)
               END AS granted,
               GREATEST(pg_catalog.now(), o.decided_at, s.decided_at) AS decided_at,
               coalesce(s.text_version, o.text_version) AS text_version
        FROM old_state AS o
        JOIN gdpr.policy AS p ON p.id = o.policy_id
        LEFT JOIN LATERAL (
            SELECT c.granted, c.decided_at, c.text_version
            FROM gdpr.consent AS c
            WHERE c.customer_key = o.survivor_key AND c.policy_id = o.policy_id
              AND c.id NOT IN (SELECT m.id FROM moved AS m)
            ORDER BY c.decided_at DESC, c.id DESC
            LIMIT 1
        ) AS s ON true
    ),
    appended AS (
        INSERT INTO gdpr.consent (customer_key, policy_id, granted, decided_at, source,
                                  text_version, actor)
        SELECT c.survivor_key, c.policy_id, c.granted, c.decided_at, 'merge', c.text_version,
               'merge'
        FROM combined AS c
        RETURNING customer_key
    )
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts, reason,
                            customer_key)
    SELECT 'merge', 'consent.merged', 'applied', syncmap.number_of(c.survivor_key),
           (sync._key_ids(ARRAY[c.survivor_key]))[1],
           pg_catalog.jsonb_build_object('gdpr.consent', count(*)),
           'combined by rule: ' || pg_catalog.string_agg(c.code || ' ' || c.merge_rule, ', '
                                                         ORDER BY c.code),
           sync._shown_key(c.survivor_key)
    FROM combined AS c
    WHERE EXISTS (SELECT FROM appended)
    GROUP BY c.survivor_key;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER consent_merged
    AFTER UPDATE ON gdpr.consent
    REFERENCING OLD TABLE AS moved_before NEW TABLE AS moved_after
    FOR EACH STATEMENT
    EXECUTE FUNCTION gdpr._combine_merged_consents();

-- ---------------------------------------------------------------------------------------------
-- tritonX's consent fields (a policy's consent_field: a boolean field of the snapshot)
-- ---------------------------------------------------------------------------------------------

-- The boolean snapshot fields the active mapping stores in a column of the customer table, with
-- how the column states them (`as_is`: the column is the field; `true_value`: the literal that
-- reads as granted): sync._mapping_consent_columns of the active document.
CREATE OR REPLACE FUNCTION gdpr._stored_consent_fields()
RETURNS TABLE (field text, column_name name, as_is boolean, true_value text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.field, c.column_name, c.as_is, c.true_value
    FROM sync.mapping_version AS v
    JOIN sync.mapped_customer() AS m ON true
    CROSS JOIN LATERAL sync._mapping_consent_columns(v.document, m.relation) AS c
    WHERE v.active
$$;

-- tritonX's decisions, from the snapshots the feed has just written (called by the apply path,
-- sync._apply_upserts, once per run of upserts, after the write; p_numbers and p_snapshots are
-- the written events, one per customer): for every active policy with a consent_field, a
-- decision (source tritonx) where the snapshot's value differs from the customer's last
-- tritonX-sourced decision, or there is none and it is granted. A missing or null field reads as
-- not granted. Dated by the snapshot's updated_at, never later than now and never earlier than
-- the last tritonX-sourced decision (a later version of tritonX's supersedes an earlier one). One INSERT for the run, on any
-- mapped schema, whether or not the mapping stores the field. A local decision in between (the
-- back office, the webshop) stays the current one until tritonX's value changes.
CREATE OR REPLACE FUNCTION gdpr._record_tritonx_consents(p_numbers text[], p_snapshots jsonb[])
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM gdpr.policy AS p
                   WHERE p.state = 'active' AND p.consent_field IS NOT NULL) THEN
        RETURN;
    END IF;
    INSERT INTO gdpr.consent (customer_key, policy_id, granted, decided_at, source,
                              text_version, actor)
    SELECT m.customer_key::text, p.id, d.granted,
           GREATEST(LEAST(coalesce((u.snapshot ->> 'updated_at')::timestamptz, pg_catalog.now()),
                          pg_catalog.now()),
                    last.decided_at),
           'tritonx', p.text_version, 'tritonx'
    FROM ROWS FROM (pg_catalog.unnest(p_numbers), pg_catalog.unnest(p_snapshots))
         AS u (number, snapshot)
    -- one probe a customer (LIMIT 1), never a scan of the whole customer table every page
    CROSS JOIN LATERAL (
        SELECT c.customer_key FROM syncmap.customer_map AS c
        WHERE c.customer_number = u.number LIMIT 1) AS m
    CROSS JOIN gdpr.policy AS p
    CROSS JOIN LATERAL (
        SELECT coalesce((u.snapshot -> p.consent_field) = 'true'::jsonb, false) AS granted) AS d
    LEFT JOIN LATERAL (
        SELECT c.granted, c.decided_at
        FROM gdpr.consent AS c
        WHERE c.customer_key = m.customer_key::text AND c.policy_id = p.id
          AND c.source = 'tritonx'
        ORDER BY c.decided_at DESC, c.id DESC
        LIMIT 1
    ) AS last ON true
    WHERE p.state = 'active' AND p.consent_field IS NOT NULL
      AND d.granted IS DISTINCT FROM coalesce(last.granted, false);
END
$$;

-- Local changes of a column that holds a consent field as is (gdpr._stored_consent_fields():
-- the reference shop's newsletter_opt_in): a new customer who holds it, and every change of it,
-- are decisions of the session's gdpr.consent_source (the retention, erasure and rectification
-- jobs set it, a rectification with its actor; else back_office). The feed's own write is skipped (the apply path sets gdpr.consent_source
-- to tritonx around it: tritonX's decisions come from the snapshots,
-- gdpr._record_tritonx_consents). The statement-level INSERT and UPDATE triggers of the mapped
-- customer table; arguments: the key column, then pairs of snapshot field and column. One
-- INSERT per field named by an active policy, per statement.
-- The engine job changing the customer table in this transaction (gdpr.consent_context), with
-- the actor it acts for (a rectification's; NULL: the job's own name); no row for any other
-- change.
CREATE OR REPLACE FUNCTION gdpr._consent_context()
RETURNS TABLE (source text, actor text)
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.source, c.actor FROM gdpr.consent_context AS c
    WHERE c.backend_pid = pg_catalog.pg_backend_pid()
      AND c.transaction_id = pg_catalog.pg_current_xact_id()
$$;

-- Its name alone, NULL for any other change.
CREATE OR REPLACE FUNCTION gdpr._consent_source()
RETURNS text
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.source FROM gdpr._consent_context() AS c
$$;

-- Name (p_source, and the actor it acts for, p_actor) or clear (NULL) the engine job changing
-- the customer table in this transaction. Called by the engine's own functions, as the owner.
DROP FUNCTION IF EXISTS gdpr._set_consent_source(text);
CREATE OR REPLACE FUNCTION gdpr._set_consent_source(p_source text, p_actor text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_source IS NULL THEN
        DELETE FROM gdpr.consent_context AS c WHERE c.backend_pid = pg_catalog.pg_backend_pid();
        RETURN;
    END IF;
    INSERT INTO gdpr.consent_context AS c (backend_pid, transaction_id, source, actor)
    VALUES (pg_catalog.pg_backend_pid(), pg_catalog.pg_current_xact_id(), p_source, p_actor)
    ON CONFLICT (backend_pid) DO UPDATE
    SET transaction_id = EXCLUDED.transaction_id, source = EXCLUDED.source,
        actor = EXCLUDED.actor;
END
$$;

-- one function for both triggers now: the former pair goes, with its triggers
DROP FUNCTION IF EXISTS gdpr._record_inserted_consents() CASCADE;
DROP FUNCTION IF EXISTS gdpr._record_updated_consents() CASCADE;
CREATE OR REPLACE FUNCTION gdpr._record_local_consents()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    job    record;
    source text;
    actor  text;
BEGIN
    SELECT * INTO job FROM gdpr._consent_context();
    source := coalesce(job.source, 'back_office');
    actor := coalesce(job.actor, source);
    IF source = 'tritonx'
       OR NOT EXISTS (SELECT FROM gdpr.policy AS p
                      WHERE p.state = 'active' AND p.consent_field IS NOT NULL)
       OR TG_RELID IS DISTINCT FROM (SELECT m.relation::pg_catalog.oid
                                     FROM sync.mapped_customer() AS m) THEN
        RETURN NULL;
    END IF;
    FOR i IN 1 .. TG_NARGS - 1 BY 2 LOOP
        CONTINUE WHEN NOT EXISTS (SELECT FROM gdpr.policy AS p WHERE p.state = 'active'
                                                             AND p.consent_field = TG_ARGV[i]);
        -- a new row: set; a changed row: changed (NULL reads as not granted)
        EXECUTE pg_catalog.format(
            'INSERT INTO gdpr.consent (customer_key, policy_id, granted, decided_at, source, '
            'text_version, actor) '
            'SELECT n.%1$I::text, p.id, coalesce(n.%2$I, false), pg_catalog.now(), $1, '
            'p.text_version, $3 '
            'FROM snapshot_after AS n %3$s CROSS JOIN gdpr.policy AS p '
            'WHERE %4$s AND p.state = ''active'' AND p.consent_field = $2',
            TG_ARGV[0], TG_ARGV[i + 1],
            CASE WHEN TG_OP = 'UPDATE'
                 THEN pg_catalog.format('JOIN snapshot_before AS o ON o.%1$I = n.%1$I',
                                        TG_ARGV[0])
                 ELSE '' END,
            CASE WHEN TG_OP = 'UPDATE'
                 THEN pg_catalog.format('coalesce(n.%1$I, false) <> coalesce(o.%1$I, false)',
                                        TG_ARGV[i + 1])
                 ELSE pg_catalog.format('n.%I', TG_ARGV[i + 1]) END)
            USING source, TG_ARGV[i], actor;
    END LOOP;
    RETURN NULL;
END
$$;

-- Put the local-change triggers on the active mapping's customer table (called by
-- sync.install_mapping, as the owner role, and when this file runs again): when the mapping
-- stores a consent field as is, (re)created on the mapped table (customer_consent_inserted,
-- customer_consent_updated) with its key column and those columns; removed from every other
-- table (and from the mapped one when it stores none). The TRIGGER privilege this takes on the
-- mapped table is one sync.mapping_defects asks for (sync._owner_needs), so a mapping is not
-- installed without it; revoked since, a WARNING says that local changes of the column are not
-- recorded (decisions then come only through gdpr.record_consent); a trigger the owner role may not drop (not the table's
-- owner) stays with a WARNING, and records nothing while its table is not the mapped one.
CREATE OR REPLACE FUNCTION gdpr._bind_local_consents()
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped record;
    args   text;
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    IF FOUND THEN
        SELECT pg_catalog.string_agg(pg_catalog.format('%L, %L', f.field, f.column_name), ', '
                                     ORDER BY f.field, f.column_name)
        INTO args
        FROM gdpr._stored_consent_fields() AS f
        WHERE f.as_is;
    END IF;
    IF NOT sync._rebind_triggers(
               ARRAY['gdpr._record_local_consents()'::pg_catalog.regprocedure],
               CASE WHEN args IS NOT NULL THEN mapped.relation END, 'records nothing',
               'local changes of its consent columns are not recorded as consent') THEN
        RETURN;
    END IF;
    EXECUTE pg_catalog.format(
        'CREATE OR REPLACE TRIGGER customer_consent_inserted AFTER INSERT ON %1$s '
        'REFERENCING NEW TABLE AS snapshot_after FOR EACH STATEMENT '
        'EXECUTE FUNCTION gdpr._record_local_consents(%2$L, %3$s)',
        mapped.relation, mapped.key_column, args);
    EXECUTE pg_catalog.format(
        'CREATE OR REPLACE TRIGGER customer_consent_updated AFTER UPDATE ON %1$s '
        'REFERENCING OLD TABLE AS snapshot_before NEW TABLE AS snapshot_after FOR EACH STATEMENT '
        'EXECUTE FUNCTION gdpr._record_local_consents(%2$L, %3$s)',
        mapped.relation, mapped.key_column, args);
END
$$;

-- An installation that has a mapping: the triggers follow today's definition (an installation
-- without one gets them when a mapping is installed).
DO $$
BEGIN
    IF EXISTS (SELECT FROM sync.mapped_customer()) THEN
        PERFORM gdpr._bind_local_consents();
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Collection guard
-- ---------------------------------------------------------------------------------------------

-- Refuses (SY083) new rows for customers without a current granted consent for the policy
-- while it is active. Installed by gdpr.require_consent; trigger arguments: the policy code,
-- the table's customer column and the mapped key's type (the column's values are read as keys
-- of that type, in the key's own text form, as gdpr.consent holds them). The message names the
-- table, the count and, for an integer key, the first customer id; never a key of another type.
CREATE OR REPLACE FUNCTION gdpr._require_consent()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    policy_code text := TG_ARGV[0];
    -- a guard created with the policy code alone read customer_id, a bigint key
    customer    text := coalesce(TG_ARGV[1], 'customer_id');
    key_type    pg_catalog.regtype := coalesce(TG_ARGV[2], 'bigint')::pg_catalog.regtype;
    target      gdpr.policy;
    refused     bigint;
    first_key   text;
BEGIN
    SELECT * INTO target FROM gdpr.policy AS p WHERE p.code = policy_code AND p.state = 'active';
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    EXECUTE pg_catalog.format(
        'SELECT count(*), (pg_catalog.array_agg(a.k::text ORDER BY a.k))[1] '
        'FROM (SELECT DISTINCT r.%1$I::text::%2$s AS k '
        'FROM collected AS r WHERE r.%1$I IS NOT NULL) AS a '
        'WHERE NOT coalesce((SELECT c.granted FROM gdpr.consent AS c '
        'WHERE c.customer_key = a.k::text AND c.policy_id = $1 '
        'ORDER BY c.decided_at DESC, c.id DESC LIMIT 1), false)',
        customer, key_type)
        INTO refused, first_key USING target.id;
    IF refused > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'SY083',
            MESSAGE = pg_catalog.format(
                '%s.%s: %s customer(s)%s have no granted consent for policy %s',
                TG_TABLE_SCHEMA, TG_TABLE_NAME, refused,
                CASE WHEN key_type IN ('smallint'::pg_catalog.regtype,
                                       'integer'::pg_catalog.regtype,
                                       'bigint'::pg_catalog.regtype)
                     THEN ' (first id ' || first_key || ')' ELSE '' END,
                policy_code),
            HINT = 'record the consent first: gdpr.record_consent';
    END IF;
    RETURN NULL;
END
$$;

-- Guard a customer-linked table (one of sync.customer_links(), not the engine's own: a
-- partitioned table as a whole) for a policy: while the policy is active, a statement inserting
-- rows for a customer without a current granted consent for it is refused (SY083). The trigger
-- (needs_consent_<code>) reads the link's own customer column; installing it again replaces it.
-- Run as the owner role (it needs the TRIGGER privilege on a table it does not own). Raises
-- SY080 (unknown policy), SY082 (not a customer-linked table). Returns the trigger's name.
-- Example: SELECT gdpr.require_consent('shop.newsletter_subscription', 'newsletter');
CREATE OR REPLACE FUNCTION gdpr.require_consent(p_table pg_catalog.regclass, p_policy_code text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target  gdpr.policy;
    link    record;
    trigger text;
BEGIN
    PERFORM sync._checked_length(p_policy_code, 64, 'policy code');
    SELECT * INTO target FROM gdpr.policy AS p WHERE p.code = p_policy_code;
    IF NOT FOUND THEN
        PERFORM gdpr._policy(p_policy_code);  -- raises SY080
    END IF;
    SELECT l.fk_column, m.key_type INTO link
    FROM sync.customer_links() AS l
    CROSS JOIN sync.mapped_customer() AS m
    WHERE l.relation = p_table AND l.known_by <> 'engine'
    ORDER BY l.fk_column
    LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SY082',
            MESSAGE = pg_catalog.format(
                '%s is not a customer-linked table of the shop (sync.customer_links())', p_table);
    END IF;
    trigger := 'needs_consent_' || target.code;
    IF pg_catalog.octet_length(trigger) > 63 THEN
        trigger := pg_catalog.left(trigger, 54) || '_'
                   || pg_catalog.left(pg_catalog.md5(target.code), 8);
    END IF;
    EXECUTE pg_catalog.format(
        'CREATE OR REPLACE TRIGGER %1$I AFTER INSERT ON %2$s REFERENCING NEW TABLE AS collected '
        'FOR EACH STATEMENT EXECUTE FUNCTION gdpr._require_consent(%3$L, %4$L, %5$L)',
        trigger, p_table, target.code, link.fk_column, link.key_type);
    RETURN trigger;
END
$$;
