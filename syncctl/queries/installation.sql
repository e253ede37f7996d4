-- Before any schema change (syncctl.installation): the engine's roles, the owner's rights and
-- the role prefix an earlier installation chose. Catalog reads only; the statements that
-- create roles and grant rights name roles and databases, so they are composed with
-- psycopg.sql.Identifier in the Python.

-- name: setting_table_exists
-- whether an earlier installation left sync.setting (and so a role prefix)
-- (from the catalog: to_regclass refuses a login without USAGE on schema sync)
SELECT EXISTS (
    SELECT FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname = 'sync' AND c.relname = 'setting'
);

-- name: stored_role_prefix
-- the role prefix the first installation chose
SELECT value FROM sync.setting WHERE key = 'role_prefix';

-- name: engine_schema_owner
-- the owner role of an installed engine (whoever may connect may read the catalog)
SELECT n.nspowner::pg_catalog.regrole::text FROM pg_catalog.pg_namespace AS n
WHERE n.nspname = 'sync';

-- name: role_exists
-- whether a role of that name exists
SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %(role)s);

-- name: role_has_unsafe_attribute
-- whether a role holds an attribute its SECURITY DEFINER functions would lend to every caller
SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication
FROM pg_catalog.pg_roles WHERE rolname = %(role)s;

-- name: role_can_login
-- whether a role may log in (the owner role must not: its password would own everything)
SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = %(role)s;

-- name: role_memberships
-- the roles a role is a member of (whose rights its SECURITY DEFINER functions would lend)
SELECT pg_catalog.string_agg(m.roleid::pg_catalog.regrole::text, ', ' ORDER BY 1)
FROM pg_catalog.pg_auth_members AS m
WHERE m.member = (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = %(role)s);

-- name: session_login
-- the login this session authenticated as
SELECT session_user;

-- name: member_of_role
-- whether the current role may use the rights of a role (is a member of it)
SELECT pg_catalog.pg_has_role(current_user, %(role)s, 'USAGE');

-- name: current_database
-- the name of the database this session is connected to
SELECT pg_catalog.current_database();

-- name: role_may_create_schemas
-- whether a role may create schemas in this database
SELECT pg_catalog.has_database_privilege(%(role)s, pg_catalog.current_database(), 'CREATE');

-- name: role_may_create_temporary_tables
-- whether a role may create temporary tables in this database (the feed's page is one)
SELECT pg_catalog.has_database_privilege(%(role)s, pg_catalog.current_database(), 'TEMPORARY');

-- name: pin_role_prefix
-- the role prefix for the rest of the session (sql/95_roles.sql reads it)
SELECT pg_catalog.set_config('syncctl.role_prefix', %(prefix)s, false);

-- name: reference_shop_guard
-- the reference shop's collection guard: no newsletter subscription without the consent
SELECT gdpr.require_consent('shop.newsletter_subscription', 'newsletter');
