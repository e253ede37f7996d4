-- Least privilege. Four group roles (NOLOGIN; DBAs grant them to login roles):
--   <prefix>_owner       the DBA: everything
--   <prefix>_controller  the daemon: stages into the inbox, moves the cursor, applies (the apply
--                        runs as the caller, so it may change shop and sync tables)
--   <prefix>_webshop     the shop: its shop tables plus the SQL API functions, which run as
--                        their owner (SECURITY DEFINER, search_path pinned)
--   <prefix>_reporting   the report views only
-- The prefix is `syncctl` unless the session sets syncctl.role_prefix (the migration takes it
-- from `-x role_prefix=...` or SYNCCTL_ROLE_PREFIX). PUBLIC gets nothing. Every revision that
-- adds objects calls sync.apply_privileges() last; one that adds a function for the shop
-- registers it in sync.webshop_function first. Re-runnable.

-- Settings the engine keeps about itself (the role prefix chosen at the first migration).
CREATE TABLE IF NOT EXISTS sync.setting (
    key                   text PRIMARY KEY,
    value                 text NOT NULL
);

-- The name of a role: the session's syncctl.role_prefix, else the one chosen before, else
-- `syncctl`.
CREATE OR REPLACE FUNCTION sync.role_name(p_kind text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(NULLIF(pg_catalog.current_setting('syncctl.role_prefix', true), ''),
                    (SELECT s.value FROM sync.setting AS s WHERE s.key = 'role_prefix'),
                    'syncctl') || '_' || p_kind
$$;

-- The functions the shop calls, by signature as to_regprocedure reads it. They run as their
-- owner (SECURITY DEFINER), so the shop needs no rights on the engine's tables; each must pin
-- its search_path. A revision that adds one inserts it here, then calls sync.apply_privileges().
CREATE TABLE IF NOT EXISTS sync.webshop_function (
    function_signature    text PRIMARY KEY
);

INSERT INTO sync.webshop_function (function_signature) VALUES
    ('sync.login(text, text)'),
    ('sync.request_refresh(text)'),
    ('sync.resolve_customer(text)'),
    ('sync.resolve_customer_number(text)'),
    ('sync.anonymise_from_backoffice(bigint, text, text)'),
    ('gdpr.record_consent(bigint, text, boolean, text, text, timestamptz)'),
    ('gdpr.has_consent(bigint, text)'),
    ('gdpr.subject_data(bigint, timestamptz)'),
    ('gdpr.rectify(bigint, jsonb, text)'),
    ('gdpr.receive_erasure(bigint, text, timestamptz)'),
    ('gdpr.verify_erasure(bigint, text, timestamptz)'),
    ('gdpr.schedule_erasure(bigint, text, interval, timestamptz)'),
    ('gdpr.cancel_erasure(bigint, text, timestamptz)')
ON CONFLICT (function_signature) DO NOTHING;

-- The shop's functions that exist (a registered one may come with a later revision).
CREATE OR REPLACE FUNCTION sync.webshop_api()
RETURNS TABLE (function_signature regprocedure)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.to_regprocedure(w.function_signature)
    FROM sync.webshop_function AS w
    WHERE pg_catalog.to_regprocedure(w.function_signature) IS NOT NULL
    ORDER BY 1
$$;

-- (Re)create the roles and (re)grant everything by convention, in the schemas shop, sync,
-- report and gdpr (when it exists). Idempotent; every revision calls it last.
CREATE OR REPLACE FUNCTION sync.apply_privileges()
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    owner_role      text := sync.role_name('owner');
    controller_role text := sync.role_name('controller');
    webshop_role    text := sync.role_name('webshop');
    reporting_role  text := sync.role_name('reporting');
    role_name       text;
    api             regprocedure;
    schema_name     text;
BEGIN
    INSERT INTO sync.setting (key, value)
    VALUES ('role_prefix', pg_catalog.left(owner_role, -pg_catalog.length('_owner')))
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
    FOREACH role_name IN ARRAY ARRAY[owner_role, controller_role, webshop_role, reporting_role]
    LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.rolname = role_name) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', role_name);
        END IF;
    END LOOP;

    -- functions created later: nothing for PUBLIC until they are granted here
    EXECUTE 'ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC';

    -- gdpr arrives with a later revision: the schemas that exist now
    FOR schema_name IN
        SELECT n.nspname FROM pg_catalog.pg_namespace AS n
        WHERE n.nspname IN ('shop', 'sync', 'report', 'gdpr')
        ORDER BY n.nspname
    LOOP
        -- PUBLIC: nothing
        EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', schema_name);
        EXECUTE pg_catalog.format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC',
                                  schema_name);
        EXECUTE pg_catalog.format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM PUBLIC',
                                  schema_name);
        EXECUTE pg_catalog.format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM PUBLIC',
                                  schema_name);
        -- owner: everything
        EXECUTE pg_catalog.format('GRANT ALL ON SCHEMA %I TO %I', schema_name, owner_role);
        EXECUTE pg_catalog.format('GRANT ALL ON ALL TABLES IN SCHEMA %I TO %I',
                                  schema_name, owner_role);
        EXECUTE pg_catalog.format('GRANT ALL ON ALL SEQUENCES IN SCHEMA %I TO %I',
                                  schema_name, owner_role);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %I',
                                  schema_name, owner_role);
        CONTINUE WHEN schema_name = 'report';
        -- controller: the engine's work (shop, sync, gdpr), as itself; webshop: USAGE only
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO %I, %I',
                                  schema_name, controller_role, webshop_role);
        EXECUTE pg_catalog.format(
            'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO %I',
            schema_name, controller_role);
        EXECUTE pg_catalog.format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO %I',
                                  schema_name, controller_role);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %I',
                                  schema_name, controller_role);
    END LOOP;

    -- the controller refuses to run against another schema revision, so it reads alembic's
    -- version table (absent in a database built from sql/ without migrations)
    IF pg_catalog.to_regclass('public.alembic_version') IS NOT NULL THEN
        EXECUTE pg_catalog.format('GRANT SELECT ON public.alembic_version TO %I',
                                  controller_role);
    END IF;

    -- the audit is append-only for everyone but the owner (the trigger refuses changes too)
    EXECUTE pg_catalog.format('REVOKE UPDATE, DELETE, TRUNCATE ON sync.audit FROM %I',
                              controller_role);

    -- webshop: its tables and the API, which runs as its owner with a pinned search_path
    EXECUTE pg_catalog.format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA shop TO %I', webshop_role);
    EXECUTE pg_catalog.format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA shop TO %I', webshop_role);
    FOR api IN SELECT w.function_signature FROM sync.webshop_api() AS w LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_proc AS p,
                                   pg_catalog.unnest(p.proconfig) AS c(setting)
                       WHERE p.oid = api AND c.setting LIKE 'search\_path=%') THEN
            RAISE EXCEPTION USING
                ERRCODE = 'SY024',
                MESSAGE = pg_catalog.format('%s does not pin its search_path: it cannot run '
                                            'as SECURITY DEFINER for the webshop', api);
        END IF;
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SECURITY DEFINER', api);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', api, webshop_role);
    END LOOP;
    -- used in shop.customer's login index: whoever writes a customer evaluates it
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION sync.normalise_email(text) TO %I',
                              webshop_role);

    -- reporting: the report views, nothing else
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA report TO %I', reporting_role);
    EXECUTE pg_catalog.format('GRANT SELECT ON ALL TABLES IN SCHEMA report TO %I',
                              reporting_role);
    EXECUTE pg_catalog.format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA report TO %I',
                              reporting_role);
END
$$;

SELECT sync.apply_privileges();
