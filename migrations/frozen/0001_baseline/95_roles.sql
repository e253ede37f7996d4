-- Least privilege. Four group roles, all NOLOGIN (a DBA grants them to login roles):
--   <prefix>_owner       owns every object syncctl creates; SECURITY DEFINER functions run as
--                        it. Never a superuser, never the installing login. Migrations run under
--                        SET ROLE <prefix>_owner (syncctl.roles prepares that).
--   <prefix>_controller  the daemon: stages into the inbox, moves its cursor, serves refreshes and
--                        the outbox, repairs links, runs the daily GDPR job; through the
--                        functions listed below, which run as the owner and audit the actor.
--   <prefix>_webshop     the shop: its own columns of the shop tables plus the SQL API (functions
--                        registered in sync.webshop_function, SECURITY DEFINER in their source).
--   <prefix>_reporting   the report views only.
-- PUBLIC gets nothing. docs/security.md holds the same grants as a matrix, and a test compares
-- it with the catalog: a change here changes the docs in the same commit.
-- The prefix is chosen at the first installation (syncctl.role_prefix, which the migration
-- environment sets from `-x role_prefix=...` or SYNCCTL_ROLE_PREFIX) and kept in sync.setting;
-- later sessions cannot change it. Re-runnable.

-- Settings the engine keeps about itself (the role prefix chosen at the first installation).
CREATE TABLE IF NOT EXISTS sync.setting (
    key                   text PRIMARY KEY,
    value                 text NOT NULL
);

INSERT INTO sync.setting (key, value)
VALUES ('role_prefix',
        coalesce(NULLIF(pg_catalog.current_setting('syncctl.role_prefix', true), ''), 'syncctl'))
ON CONFLICT (key) DO NOTHING;

-- The name of one of the engine's roles (owner, controller, webshop, reporting). Reads only the
-- stored prefix: no session setting can redirect a grant.
CREATE OR REPLACE FUNCTION sync.role_name(p_kind text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.value || '_' || p_kind FROM sync.setting AS s WHERE s.key = 'role_prefix'
$$;

-- The functions the shop calls, by signature as to_regprocedure reads it. Each must be SECURITY
-- DEFINER in its source and pin its search_path; sync.apply_privileges() refuses one that is not
-- and grants the rest to the webshop role.
CREATE TABLE IF NOT EXISTS sync.webshop_function (
    function_signature    text PRIMARY KEY
);

INSERT INTO sync.webshop_function (function_signature) VALUES
    ('sync.login(text, text)'), ('sync.login_key(text, text)'),
    ('sync.request_refresh(text)'),
    ('sync.resolve_customer(text)'),
    ('sync.resolve_customer_key(text)'),
    ('sync.resolve_customer_number(text)'),
    ('sync.anonymise_from_backoffice(bigint, text, text)'),
    ('sync.anonymise_from_backoffice_key(text, text, text)'),
    -- the customer by its key as text (any key type), and by id for integer keys
    ('gdpr.record_consent(text, text, boolean, text, text, timestamptz)'),
    ('gdpr.record_consent(bigint, text, boolean, text, text, timestamptz)'),
    ('gdpr.has_consent(text, text)'),
    ('gdpr.has_consent(bigint, text)'),
    ('gdpr.subject_data(text, timestamptz)'),
    ('gdpr.subject_data(bigint, timestamptz)'),
    ('gdpr.rectify(text, jsonb, text)'),
    ('gdpr.rectify(bigint, jsonb, text)'),
    ('gdpr.receive_erasure(text, text, timestamptz)'),
    ('gdpr.receive_erasure(bigint, text, timestamptz)'),
    ('gdpr.verify_erasure(bigint, text, timestamptz)'),
    ('gdpr.schedule_erasure(bigint, text, interval, timestamptz)'),
    ('gdpr.cancel_erasure(bigint, text, timestamptz)')
ON CONFLICT (function_signature) DO NOTHING;

-- The shop's functions that exist.
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

-- How inbox payloads stand, for `syncctl status`: the controller reads this, never a payload.
CREATE OR REPLACE VIEW sync.payload_holding AS
SELECT count(*) AS payloads, pg_catalog.min(i.received_at) AS oldest_received_at
FROM sync.inbox AS i
WHERE i.payload IS NOT NULL;

-- Functions of syncctl's schemas that break the security rules: not owned by the owner role,
-- no pinned search_path of exactly pg_catalog then pg_temp, or (for the shop's API) not SECURITY
-- DEFINER. Empty on a sound installation; sync.apply_privileges() refuses to grant otherwise.
CREATE OR REPLACE FUNCTION sync.function_defects()
RETURNS TABLE (function_signature text, defect text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH own AS (
        SELECT p.oid, p.oid::pg_catalog.regprocedure::text AS signature, p.proowner,
               p.prosecdef, p.proconfig
        FROM pg_catalog.pg_proc AS p
        JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
        WHERE n.nspname IN ('sync', 'gdpr', 'report', 'syncmap')
          AND p.prokind IN ('f', 'p')
    )
    SELECT o.signature, 'not owned by ' || sync.role_name('owner')
    FROM own AS o
    WHERE o.proowner IS DISTINCT FROM (SELECT r.oid FROM pg_catalog.pg_roles AS r
                                        WHERE r.rolname = sync.role_name('owner'))
    UNION ALL
    SELECT o.signature, 'does not pin search_path = pg_catalog, pg_temp'
    FROM own AS o
    WHERE NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (o.proconfig), false)
    UNION ALL
    SELECT o.signature, 'is in sync.webshop_function but not SECURITY DEFINER'
    FROM own AS o
    WHERE NOT o.prosecdef
      AND o.oid IN (SELECT w.function_signature FROM sync.webshop_api() AS w)
    ORDER BY 1, 2
$$;

-- Grant exactly what docs/security.md lists, after taking everything back from PUBLIC and the
-- three roles. Runs as the owner (it owns what it grants); creates no role and sets no function
-- attribute: a missing role or a function that breaks the rules is refused (SY024).
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
    kind            text;
    schema_name     text;
    signature       text;
    defect          record;
BEGIN
    IF current_user <> owner_role THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY024',
            MESSAGE = pg_catalog.format('privileges are applied as %s (SET ROLE %I)',
                                        owner_role, owner_role);
    END IF;
    FOREACH kind IN ARRAY ARRAY['controller', 'webshop', 'reporting'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS r
                       WHERE r.rolname = sync.role_name(kind)) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'SY024',
                MESSAGE = pg_catalog.format('role %s does not exist: CREATE ROLE %I NOLOGIN',
                                            sync.role_name(kind), sync.role_name(kind));
        END IF;
    END LOOP;
    FOR defect IN SELECT * FROM sync.function_defects() LOOP
        RAISE EXCEPTION USING
            ERRCODE = 'SY024',
            MESSAGE = pg_catalog.format('%s %s', defect.function_signature, defect.defect);
    END LOOP;

    -- functions the owner creates later: nothing for PUBLIC until granted here
    EXECUTE 'ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC';

    -- from zero: PUBLIC and the three roles hold nothing in syncctl's schemas
    FOREACH schema_name IN ARRAY ARRAY['sync', 'gdpr', 'report'] LOOP
        EXECUTE pg_catalog.format(
            'REVOKE ALL ON SCHEMA %1$I FROM PUBLIC, %2$I, %3$I, %4$I;'
            'REVOKE ALL ON ALL TABLES IN SCHEMA %1$I FROM PUBLIC, %2$I, %3$I, %4$I;'
            'REVOKE ALL ON ALL SEQUENCES IN SCHEMA %1$I FROM PUBLIC, %2$I, %3$I, %4$I;'
            'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %1$I FROM PUBLIC, %2$I, %3$I, %4$I',
            schema_name, controller_role, webshop_role, reporting_role);
    END LOOP;

    -- controller: the feed, refreshes, the outbox, links, dead letters, the daily GDPR job
    -- (the inbox's sequence: the ids of the page it stages, which sync.open_page's page draws)
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA sync, gdpr TO %I', controller_role);
    EXECUTE pg_catalog.format(
        'GRANT SELECT, INSERT, UPDATE ON sync.cursor, gdpr.job_run TO %1$I;'
        'GRANT INSERT (source, seq, event_id, event_type, customer_number, version,'
        '              occurred_at, payload, raw) ON sync.inbox TO %1$I;'
        'GRANT SELECT (id, source, seq, event_id, event_type, customer_number, version,'
        '              occurred_at, received_at) ON sync.inbox TO %1$I;'
        'GRANT USAGE ON SEQUENCE sync.inbox_id_seq TO %1$I;'
        'GRANT SELECT ON sync.inbox_status, sync.payload_holding, sync.dead_letter, sync.audit,'
        '                sync.outbox, sync.refresh_request, sync.redirect,'
        '                sync.link_anomaly, sync.adoptable_customer TO %1$I',
        controller_role);
    FOREACH signature IN ARRAY ARRAY[
        'sync.open_page()',
        'sync.stage_page(boolean, boolean)',
        'sync.claim_refresh_requests(integer, interval)',
        'sync.refresh_done(text, timestamptz)',
        'sync.release_refresh(text[])',
        'sync.requeue_refresh(text, integer, text)',
        'sync.claim_outbox(integer)',
        'sync.outbox_delivered(bigint)',
        'sync.outbox_failed(bigint, text, boolean, interval)',
        'sync.retry_outbox(bigint)',
        'sync.drop_payloads(interval, integer)',
        'sync.adopt_local_customer(bigint, bigint, text)',
        'sync.adopt_local_customer_key(text, text, text)',
        'sync.link_counts()',
        -- the metrics' reading of the events not decided (syncctl.status.PendingTracker): it
        -- reads only what the role may read (sync.inbox's ids and event ids, the audit, the
        -- dead letters)
        'sync._range_status(bigint, bigint)',
        'sync.misdirected_links()',
        'sync.sample_linked_numbers(integer)',
        'sync.repair_redirected_link(text, text)',
        'sync.record_adoption_conflicts()',
        'sync.adopt_for_number(text, text)',
        'sync.adoptable_customers()',
        'sync.retry_dead_letter(bigint)',
        'sync.discard_dead_letter(bigint, text)',
        'sync.normalise_email(text)',
        'sync.shown_key(text)',
        'gdpr.purge_batch(timestamptz, text, integer, text)',
        'gdpr.retention_warnings(timestamptz, interval)',
        'gdpr.execute_due_erasures(text, timestamptz)'
    ] LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I',
                                  signature::pg_catalog.regprocedure, controller_role);
    END LOOP;
    -- the controller refuses to run against another schema revision: it reads alembic's table
    IF pg_catalog.to_regclass('syncctl.alembic_version') IS NOT NULL THEN
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA syncctl TO %1$I;'
                                  'GRANT SELECT ON syncctl.alembic_version TO %1$I',
                                  controller_role);
    END IF;

    -- webshop: the SQL API (its rights on the shop's own tables are the shop's: the reference
    -- shop's are in sql/reference_shop/50_privileges.sql)
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA sync, gdpr TO %I', webshop_role);
    FOR signature IN SELECT w.function_signature::text FROM sync.webshop_api() AS w LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %I', signature, webshop_role);
    END LOOP;
    -- evaluated by a login index on the customer table whenever the shop writes a customer
    EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION sync.normalise_email(text) TO %I',
                              webshop_role);

    -- reporting: the report views (and the functions they call), nothing else
    EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA report TO %1$I;'
                              'GRANT SELECT ON ALL TABLES IN SCHEMA report TO %1$I;'
                              'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA report TO %1$I',
                              reporting_role);
END
$$;

SELECT sync.apply_privileges();
