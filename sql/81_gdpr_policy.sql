-- Data policies: created as drafts, activated after review, retired when no longer in force.
-- A policy's text changes by revision (text_version + 1); consents record the version the
-- customer agreed to. Every change writes a sync.audit row (codes and counts, no data).
-- Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Building blocks (private)
-- ---------------------------------------------------------------------------------------------

-- An actor as the audit may hold it: an identifier (an operator id or a job name; SY023).
CREATE OR REPLACE FUNCTION gdpr._checked_actor(p_actor text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync._checked_identifier(p_actor, 'actor')
$$;

-- The policy with this code, locked; raises SY080 when there is none.
CREATE OR REPLACE FUNCTION gdpr._policy(p_code text)
RETURNS gdpr.policy
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found_policy gdpr.policy;
BEGIN
    SELECT * INTO found_policy FROM gdpr.policy AS p WHERE p.code = p_code FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SY080',
            MESSAGE = pg_catalog.format('no data policy %s',
                CASE WHEN sync.is_identifier(p_code) THEN p_code ELSE '(malformed code)' END);
    END IF;
    RETURN found_policy;
END
$$;

-- The customer that p_key names (the mapped customer key as text, in any text form of the key's
-- type), in the key's own text form, as the gdpr tables hold it. Raises SY020 when it is not
-- of the key's type or names nobody; the key is never echoed (a text key may be anything).
CREATE OR REPLACE FUNCTION gdpr._customer_key(p_key text)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    local_key text;
BEGIN
    PERFORM sync._checked_length(p_key, sync._key_limit(), 'customer key');
    local_key := sync._local_customer_key(p_key);
    IF local_key IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SY020', MESSAGE = 'no local customer has this key';
    END IF;
    RETURN local_key;
END
$$;

-- One audit row for a GDPR action (no personal data: keys, codes and counts): customer_id is
-- the key for an integer key (sync._key_ids), the number the customer's link.
DROP FUNCTION IF EXISTS gdpr._audit(text, text, bigint, jsonb, text);
CREATE OR REPLACE FUNCTION gdpr._audit(
    p_actor text, p_action text, p_customer_key text, p_counts jsonb, p_reason text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts, reason,
                            customer_key)
    VALUES (p_actor, p_action, 'applied',
            CASE WHEN p_customer_key IS NOT NULL THEN syncmap.number_of(p_customer_key) END,
            (sync._key_ids(ARRAY[p_customer_key]))[1], p_counts, p_reason,
            sync._shown_key(p_customer_key));
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Every policy with its categories ('schema.table' or 'schema.table.column', each name quoted
-- as PostgreSQL quotes it: sync._shown_name).
CREATE OR REPLACE VIEW gdpr.policy_overview AS
SELECT p.id, p.code, p.name, p.description, p.legal_basis, p.retention, p.retention_from,
       p.membership, p.customer_group, p.consent_field, p.merge_rule, p.state, p.text_version,
       p.created_at, p.activated_at, p.retired_at,
       ARRAY(SELECT sync._shown_name(c.table_schema, c.table_name, col.name)
             FROM gdpr.policy_category AS c
             LEFT JOIN LATERAL pg_catalog.unnest(c.columns) AS col (name) ON true
             WHERE c.policy_id = p.id
             ORDER BY 1) AS categories
FROM gdpr.policy AS p;

-- Create a draft policy. p_categories name registry tables ('sales.orders') or columns of
-- them and of the mapped customer table ('crm.customer.loyalty_card'), each either as the
-- catalog's names joined by dots, unquoted ('web.shop.customer', 'sales.Review') or as SQL
-- names ('"web.shop".customer', 'sales."Review".body', read by sync._name_parts; what
-- gdpr.policy_overview shows). Returns the policy id; raises SY082 on a bad definition.
-- Example: SELECT gdpr.create_policy('club', 'Customer club', 'Member offers', 'consent',
--          '1 year', 'last_activity', ARRAY['crm.customer.loyalty_card'], 'consent');
CREATE OR REPLACE FUNCTION gdpr.create_policy(
    p_code text,
    p_name text,
    p_description text,
    p_legal_basis text,
    p_retention interval,
    p_retention_from text,
    p_categories text[],
    p_membership text DEFAULT 'all',
    p_customer_group text DEFAULT NULL,
    p_consent_field text DEFAULT NULL,
    p_merge_rule text DEFAULT 'most_restrictive',
    p_actor text DEFAULT CURRENT_USER)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_id  bigint;
    unknown text;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    IF p_categories IS NULL OR pg_catalog.cardinality(p_categories) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'SY082', MESSAGE = 'a policy needs at least one category';
    END IF;
    -- a category is a customer table of the registry, or a classified column of one (not of
    -- a table that holds no customer's data, classified for the residue search, say)
    SELECT pg_catalog.string_agg(c.name, ', ') INTO unknown
    FROM pg_catalog.unnest(p_categories) AS c (name)
    CROSS JOIN LATERAL (SELECT sync._name_parts(c.name) AS parts) AS q
    WHERE NOT EXISTS (
              SELECT FROM sync.customer_tables() AS t
              WHERE t.qualified_name = c.name
                 OR q.parts = ARRAY[t.table_schema::text, t.table_name::text])
      AND NOT EXISTS (
              SELECT FROM sync.pii_column AS p
              JOIN sync.customer_tables() AS t
                  ON t.qualified_name = p.table_schema || '.' || p.table_name
              WHERE p.table_schema || '.' || p.table_name || '.' || p.column_name = c.name
                 OR q.parts = ARRAY[p.table_schema, p.table_name, p.column_name]);
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SY082',
            MESSAGE = pg_catalog.format('not a customer-linked table or classified column: %s',
                                        pg_catalog.left(unknown, 200));
    END IF;
    BEGIN
        INSERT INTO gdpr.policy (code, name, description, legal_basis, retention, retention_from,
                                 membership, customer_group, consent_field, merge_rule)
        VALUES (p_code, p_name, p_description, p_legal_basis, p_retention,
                coalesce(p_retention_from, 'last_activity'), coalesce(p_membership, 'all'),
                p_customer_group, p_consent_field, coalesce(p_merge_rule, 'most_restrictive'))
        RETURNING id INTO new_id;
    EXCEPTION
        WHEN check_violation OR not_null_violation OR unique_violation THEN
            RAISE EXCEPTION USING ERRCODE = 'SY082',
                MESSAGE = pg_catalog.format('invalid policy definition (%s)', SQLERRM);
    END;
    -- each name resolved to the registry's table (and column) it was checked against above,
    -- never split at its dots: a schema or table name may hold one ("web.shop".customer is
    -- web.shop.customer); the whole table first, where a name could be either
    INSERT INTO gdpr.policy_category (policy_id, table_schema, table_name, columns)
    SELECT new_id, r.table_schema, r.table_name,
           CASE WHEN pg_catalog.bool_or(r.column_name IS NULL) THEN NULL
                ELSE pg_catalog.array_agg(DISTINCT r.column_name ORDER BY r.column_name) END
    FROM pg_catalog.unnest(p_categories) AS c (name)
    CROSS JOIN LATERAL (SELECT sync._name_parts(c.name) AS parts) AS q
    CROSS JOIN LATERAL (
        SELECT x.table_schema, x.table_name, x.column_name
        FROM (SELECT 1 AS rank, t.table_schema::text, t.table_name::text,
                     NULL::text AS column_name
              FROM sync.customer_tables() AS t
              WHERE t.qualified_name = c.name
                 OR q.parts = ARRAY[t.table_schema::text, t.table_name::text]
              UNION ALL
              SELECT 2, p.table_schema, p.table_name, p.column_name
              FROM sync.pii_column AS p
              JOIN sync.customer_tables() AS t
                  ON t.qualified_name = p.table_schema || '.' || p.table_name
              WHERE p.table_schema || '.' || p.table_name || '.' || p.column_name = c.name
                 OR q.parts = ARRAY[p.table_schema, p.table_name, p.column_name])
             AS x
        ORDER BY x.rank
        LIMIT 1) AS r
    GROUP BY r.table_schema, r.table_name;
    PERFORM gdpr._audit(p_actor, 'policy.created', NULL, NULL,
                        pg_catalog.format('policy %s', p_code));
    RETURN new_id;
END
$$;

-- A new text for a draft or active policy: text_version + 1 (consents given from now on record
-- it). Returns the new version.
-- Example: SELECT gdpr.revise_policy('newsletter', 'Weekly e-mail with offers.', 'dpo');
CREATE OR REPLACE FUNCTION gdpr.revise_policy(
    p_code text, p_description text, p_actor text DEFAULT CURRENT_USER)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target  gdpr.policy := gdpr._policy(p_code);
    version integer;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    IF target.state = 'retired' THEN
        RAISE EXCEPTION USING ERRCODE = 'SY081',
            MESSAGE = pg_catalog.format('policy %s is retired', p_code);
    END IF;
    UPDATE gdpr.policy AS p
    SET description = coalesce(p_description, p.description), text_version = p.text_version + 1
    WHERE p.id = target.id
    RETURNING p.text_version INTO version;
    PERFORM gdpr._audit(p_actor, 'policy.revised', NULL, NULL,
                        pg_catalog.format('policy %s text version %s', p_code, version));
    RETURN version;
END
$$;

-- Put a draft policy in force. A policy stating a tritonX consent field takes the field's current
-- value of every customer of the mapped table who has no decision for it yet, when granted, as
-- a consent (source tritonx for a linked customer, back_office for a local one), on any mapped
-- schema: from the customer column that holds it (gdpr._stored_consent_fields(): as is, or as a
-- true/false literal), dated by the column holding the snapshot's updated_at when the mapping
-- stores it, else p_now; when the mapping does not store the field, from the latest applied
-- snapshot the inbox still holds for each linked customer (sync.drop_payloads drops them after
-- a few days: a customer whose snapshot is gone gets a decision when tritonX next sends one
-- granted). Returns {"state": "active", "consents": n, "consents_from": "column" |
-- "snapshots"} ("consents_from" only for a policy with a consent field).
-- Example: SELECT gdpr.activate_policy('newsletter', 'dpo');
CREATE OR REPLACE FUNCTION gdpr.activate_policy(
    p_code text, p_actor text DEFAULT CURRENT_USER, p_now timestamptz DEFAULT now())
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target   gdpr.policy := gdpr._policy(p_code);
    recorded bigint := 0;
    mapped   record;
    stored   record;
    dated    text;
    taken    text;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    IF target.state <> 'draft' THEN
        RAISE EXCEPTION USING ERRCODE = 'SY081',
            MESSAGE = pg_catalog.format('policy %s is %s: only a draft can be activated',
                                        p_code, target.state);
    END IF;
    UPDATE gdpr.policy AS p SET state = 'active', activated_at = p_now WHERE p.id = target.id;
    SELECT * INTO mapped FROM sync.mapped_customer();
    IF target.consent_field IS NOT NULL AND mapped.relation IS NOT NULL THEN
        SELECT * INTO stored FROM gdpr._stored_consent_fields() AS f
        WHERE f.field = target.consent_field
        ORDER BY f.as_is DESC, f.column_name
        LIMIT 1;
        IF FOUND THEN
            taken := 'column';
            -- the column holding the snapshot's updated_at, when the mapping stores it plainly
            SELECT pg_catalog.format('c.%I', a.attname) INTO dated
            FROM sync.mapping_version AS v
            CROSS JOIN LATERAL pg_catalog.jsonb_each(
                CASE WHEN pg_catalog.jsonb_typeof(v.document #> '{customer,columns}') = 'object'
                     THEN v.document #> '{customer,columns}' ELSE '{}' END) AS o
            JOIN pg_catalog.pg_attribute AS a
                ON a.attrelid = mapped.relation AND a.attname = o.key AND a.attnum > 0
               AND NOT a.attisdropped
            WHERE v.active
              AND (o.value = '"updated_at"'::jsonb OR o.value = '{"field": "updated_at"}'::jsonb)
              AND a.atttypid = 'pg_catalog.timestamptz'::pg_catalog.regtype
            ORDER BY o.key
            LIMIT 1;
            EXECUTE pg_catalog.format(
                'INSERT INTO gdpr.consent (customer_key, policy_id, granted, decided_at, source, '
                'text_version, actor) '
                'SELECT c.%1$I::text, $1, true, coalesce(%2$s, $2), w.source, $3, w.source '
                'FROM %3$s AS c '
                'CROSS JOIN LATERAL (SELECT CASE WHEN EXISTS (SELECT FROM syncmap.customer_map '
                'AS m WHERE m.customer_key = c.%1$I) THEN ''tritonx'' ELSE ''back_office'' END '
                'AS source) AS w '
                'WHERE %4$s AND NOT EXISTS (SELECT FROM gdpr.consent AS g '
                'WHERE g.customer_key = c.%1$I::text AND g.policy_id = $1)',
                mapped.key_column, coalesce(dated, 'NULL::timestamptz'), mapped.relation,
                CASE WHEN stored.as_is THEN pg_catalog.format('c.%I', stored.column_name)
                     ELSE pg_catalog.format('c.%I::text = %L', stored.column_name,
                                            stored.true_value) END)
                USING target.id, p_now, target.text_version;
        ELSE
            taken := 'snapshots';
            INSERT INTO gdpr.consent (customer_key, policy_id, granted, decided_at, source,
                                      text_version, actor)
            SELECT m.customer_key::text, target.id, true,
                   coalesce(CASE WHEN pg_catalog.jsonb_typeof(s.snapshot -> 'updated_at')
                                      = 'string'
                                 THEN (s.snapshot ->> 'updated_at')::timestamptz END, p_now),
                   'tritonx', target.text_version, 'tritonx'
            FROM (SELECT DISTINCT ON (i.customer_number) i.customer_number, i.version,
                         i.payload -> 'customer' AS snapshot
                  FROM sync.inbox AS i
                  WHERE i.event_type = 'customer.upserted' AND i.payload ? 'customer'
                    AND EXISTS (SELECT FROM sync.audit AS a
                                WHERE a.event_id = i.event_id AND a.inbox_id = i.id
                                  AND a.outcome = 'applied')
                  ORDER BY i.customer_number, i.version DESC, i.id DESC) AS s
            JOIN syncmap.customer_map AS m
                ON m.customer_number = s.customer_number AND m.version = s.version
            WHERE (s.snapshot -> target.consent_field) = 'true'::jsonb
              AND NOT EXISTS (SELECT FROM gdpr.consent AS g
                              WHERE g.customer_key = m.customer_key::text
                                AND g.policy_id = target.id);
        END IF;
        GET DIAGNOSTICS recorded = ROW_COUNT;
    END IF;
    PERFORM gdpr._audit(p_actor, 'policy.activated', NULL,
                        pg_catalog.jsonb_build_object('gdpr.consent', recorded),
                        pg_catalog.format('policy %s', p_code)
                        || coalesce(', consents from ' || taken, ''));
    RETURN pg_catalog.jsonb_build_object('state', 'active', 'consents', recorded)
           || CASE WHEN taken IS NOT NULL
                   THEN pg_catalog.jsonb_build_object('consents_from', taken)
                   ELSE '{}'::jsonb END;
END
$$;

-- Take an active policy out of force: it no longer holds data, nor releases it for retention,
-- and takes no new consents.
-- Example: SELECT gdpr.retire_policy('club', 'dpo');
CREATE OR REPLACE FUNCTION gdpr.retire_policy(
    p_code text, p_actor text DEFAULT CURRENT_USER, p_now timestamptz DEFAULT now())
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target gdpr.policy := gdpr._policy(p_code);
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    IF target.state <> 'active' THEN
        RAISE EXCEPTION USING ERRCODE = 'SY081',
            MESSAGE = pg_catalog.format('policy %s is %s: only an active policy can be retired',
                                        p_code, target.state);
    END IF;
    UPDATE gdpr.policy AS p SET state = 'retired', retired_at = p_now WHERE p.id = target.id;
    PERFORM gdpr._audit(p_actor, 'policy.retired', NULL, NULL,
                        pg_catalog.format('policy %s', p_code));
    RETURN pg_catalog.jsonb_build_object('state', 'retired');
END
$$;
