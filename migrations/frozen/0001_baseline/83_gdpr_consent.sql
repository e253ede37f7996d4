-- Consent per customer and policy. gdpr.consent is an append-only history: a trigger refuses
-- every change but the engine's own (a merge re-points rows to the survivor; a delete of the
-- customer removes them), checked at commit: the customer the rows leave must be gone by then.
-- The current state is the latest row (gdpr.current_consent). Sources:
--   - the shop and the back office call gdpr.record_consent;
--   - tritonX snapshots: a statement-level trigger on shop.customer (transition tables, one
--     INSERT per batch) records newsletter_opt_in for the active policies whose consent_field
--     names it, when a new customer holds it or an update changes it;
--   - a merge combines both customers' consents per the policy's merge_rule (a trigger on
--     gdpr.consent sees the re-pointed rows) and appends the combined state (source merge).
-- Collection guard: shop.newsletter_subscription refuses rows (SY083) for a customer without a
-- current granted consent for the active newsletter policy.
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
    PERFORM sync._checked_length(p_policy_code, 64, 'policy code');
    RETURN coalesce(
        (SELECT c.granted
         FROM gdpr.consent AS c
         JOIN gdpr.policy AS p ON p.id = c.policy_id
         WHERE c.customer_key = sync._local_customer_key(p_customer_key) AND p.code = p_policy_code AND p.state = 'active'
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
-- survivor): per survivor and policy, the old customer's latest decision and the survivor's
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
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts, reason)
    SELECT 'merge', 'consent.merged', 'applied', syncmap.number_of(c.survivor_key),
           (sync._key_ids(ARRAY[c.survivor_key]))[1],
           pg_catalog.jsonb_build_object('gdpr.consent', count(*)),
           'combined by rule: ' || pg_catalog.string_agg(c.code || ' ' || c.merge_rule, ', '
                                                         ORDER BY c.code)
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
-- tritonX snapshots: newsletter_opt_in as consent
-- ---------------------------------------------------------------------------------------------

-- A new customer who opted in: granted (source tritonx for a snapshot, else the local source:
-- the session's gdpr.consent_source, which the retention and erasure jobs set, or back_office).
CREATE OR REPLACE FUNCTION gdpr._record_inserted_consents()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM gdpr.policy AS p
                   WHERE p.state = 'active' AND p.consent_field = 'newsletter_opt_in') THEN
        RETURN NULL;
    END IF;
    INSERT INTO gdpr.consent (customer_key, policy_id, granted, decided_at, source,
                              text_version, actor)
    SELECT n.id::text, p.id, true, coalesce(n.tritonx_updated_at, pg_catalog.now()), w.source,
           p.text_version, w.source
    FROM snapshot_after AS n
    CROSS JOIN LATERAL (
        SELECT CASE WHEN n.tritonx_version IS NOT NULL THEN 'tritonx'
                    ELSE coalesce(NULLIF(pg_catalog.current_setting('gdpr.consent_source', true),
                                         ''), 'back_office') END AS source) AS w
    CROSS JOIN gdpr.policy AS p
    WHERE n.newsletter_opt_in
      AND p.state = 'active' AND p.consent_field = 'newsletter_opt_in';
    RETURN NULL;
END
$$;

-- A changed opt-in: from tritonX when the snapshot version moved; any other change is local (the
-- back office, an anonymisation), unless the session names its source in gdpr.consent_source.
CREATE OR REPLACE FUNCTION gdpr._record_updated_consents()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM gdpr.policy AS p
                   WHERE p.state = 'active' AND p.consent_field = 'newsletter_opt_in') THEN
        RETURN NULL;
    END IF;
    INSERT INTO gdpr.consent (customer_key, policy_id, granted, decided_at, source,
                              text_version, actor)
    SELECT n.id::text, p.id, n.newsletter_opt_in,
           CASE WHEN w.from_tritonx THEN coalesce(n.tritonx_updated_at, pg_catalog.now())
                ELSE pg_catalog.now() END,
           w.source, p.text_version, w.source
    FROM snapshot_after AS n
    JOIN snapshot_before AS o ON o.id = n.id
    CROSS JOIN LATERAL (
        SELECT n.tritonx_version IS DISTINCT FROM o.tritonx_version AS from_tritonx,
               CASE WHEN n.tritonx_version IS DISTINCT FROM o.tritonx_version THEN 'tritonx'
                    ELSE coalesce(NULLIF(pg_catalog.current_setting('gdpr.consent_source', true),
                                         ''), 'back_office') END AS source) AS w
    CROSS JOIN gdpr.policy AS p
    WHERE n.newsletter_opt_in IS DISTINCT FROM o.newsletter_opt_in
      AND p.state = 'active' AND p.consent_field = 'newsletter_opt_in';
    RETURN NULL;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Collection guard
-- ---------------------------------------------------------------------------------------------

-- Refuses (SY083) new rows for customers without a current granted consent for the policy
-- named by the trigger's argument, while that policy is active. The table's customer column
-- must be called customer_id.
CREATE OR REPLACE FUNCTION gdpr._require_consent()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    policy_code text := TG_ARGV[0];
    refused     bigint;
    first_id    bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM gdpr.policy AS p
                   WHERE p.code = policy_code AND p.state = 'active') THEN
        RETURN NULL;
    END IF;
    SELECT count(*), min(a.customer_id) INTO refused, first_id
    FROM (SELECT DISTINCT r.customer_id FROM collected AS r) AS a
    WHERE NOT gdpr.has_consent(a.customer_id::text, policy_code);
    IF refused > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'SY083',
            MESSAGE = pg_catalog.format(
                '%s.%s: %s customer(s) (first id %s) have no granted consent for policy %s',
                TG_TABLE_SCHEMA, TG_TABLE_NAME, refused, first_id, policy_code),
            HINT = 'record the consent first: gdpr.record_consent';
    END IF;
    RETURN NULL;
END
$$;
