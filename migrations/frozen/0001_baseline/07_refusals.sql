-- What of an error the engine may keep (a dead letter's reason, an erasure request's error, an
-- audit row): only its own refusals say more than their SQLSTATE. A shop's trigger runs inside
-- the engine's writes and may raise a SQLSTATE of class SY, or set its error's message, table,
-- schema or constraint to a customer's value; the engine repeats none of that. Re-runnable.

-- The message of an error when it is one of the engine's own refusals: a SQLSTATE of class SY
-- raised by a function of the engine's schemas (the first line of the error's context,
-- PG_EXCEPTION_CONTEXT, names the function that raised it, schema-qualified: the engine's
-- functions pin a search path without their schemas). NULL for any other error.
-- Example: sync._own_refusal(RETURNED_SQLSTATE, MESSAGE_TEXT, PG_EXCEPTION_CONTEXT)
CREATE OR REPLACE FUNCTION sync._own_refusal(p_sqlstate text, p_message text, p_context text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    -- no quote before the name: a function of another schema named "x sync.f(" is quoted
    SELECT CASE
        WHEN p_sqlstate LIKE 'SY%'
             AND pg_catalog.split_part(p_context, E'\n', 1)
                 ~ '^[^"]* (sync|gdpr|syncmap)\.[a-z_][a-z0-9_]*\('
            THEN p_message
    END
$$;

-- The message to pass on for an error the shop's tables raised inside the engine's work (a
-- trigger's RAISE, a constraint, an index, a value that does not fit, a missing privilege):
-- what happened by SQLSTATE, and where by the names of objects that exist, never the error's
-- message, detail or hint, nor a table, schema or constraint field that names no object (a
-- trigger may set those to anything). The engine's own refusals keep their message
-- (sync._own_refusal). NULL for a transient error (class 08 connection, 25 transaction state,
-- 40 serialisation or deadlock, 53 resources, 55 lock not available, 57 cancel or shutdown,
-- 58 and XX system errors): pass it on as it is, to be retried.
-- Example (in an exception handler):
--   why := sync._error_without_values(RETURNED_SQLSTATE, MESSAGE_TEXT, SCHEMA_NAME, TABLE_NAME,
--                                     CONSTRAINT_NAME, PG_EXCEPTION_CONTEXT);
--   IF why IS NULL THEN RAISE; END IF;
--   RAISE EXCEPTION USING ERRCODE = RETURNED_SQLSTATE, MESSAGE = why;
CREATE OR REPLACE FUNCTION sync._error_without_values(
    p_sqlstate text, p_message text, p_schema text, p_table text, p_constraint text,
    p_context text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH named AS (
        SELECT CASE WHEN coalesce(p_schema, '') <> '' AND coalesce(p_table, '') <> ''
                    THEN pg_catalog.to_regclass(pg_catalog.format('%I.%I', p_schema, p_table))
               END AS relation
    ),
    denied AS (
        -- PostgreSQL's own "permission denied for <kind> <name>", when the name is one
        SELECT pg_catalog.substring(p_message, '^permission denied for ([a-z ]+ [A-Za-z0-9_."]+)$')
                   AS object,
               pg_catalog.substring(p_message, '^permission denied for [a-z ]+ ([A-Za-z0-9_."]+)$')
                   AS name,
               -- PostgreSQL's own refusal by a table's row-level security (no policy lets
               -- the role write the row), naming the table by its bare name
               pg_catalog.substring(p_message,
                                    '^new row violates row-level security policy '
                                    '(?:"[^"]*" )?for table "([^"]+)"$') AS guarded
    )
    SELECT CASE
        WHEN pg_catalog.left(p_sqlstate, 2) IN ('08', '25', '40', '53', '55', '57', '58', 'XX')
            THEN NULL
        WHEN sync._own_refusal(p_sqlstate, p_message, p_context) IS NOT NULL
            THEN p_message
        ELSE pg_catalog.format(
            '%s (SQLSTATE %s)%s%s',
            CASE
                WHEN p_sqlstate = '23505' THEN 'unique violation'
                WHEN p_sqlstate = '23503' THEN 'foreign key violation'
                WHEN p_sqlstate = '23514' THEN 'check violation'
                WHEN p_sqlstate = '23502' THEN 'not-null violation'
                WHEN p_sqlstate = '23P01' THEN 'exclusion violation'
                WHEN p_sqlstate LIKE '23%' THEN 'integrity violation'
                WHEN p_sqlstate = '22001' THEN 'value too long for its column'
                WHEN p_sqlstate LIKE '22%' THEN 'a value does not fit its column'
                WHEN p_sqlstate = '54000' THEN 'a value too large (an index row, say)'
                WHEN p_sqlstate LIKE '54%' THEN 'a program limit exceeded'
                WHEN p_sqlstate = '42501' THEN 'permission denied'
                WHEN p_sqlstate = '428C9'
                    THEN 'a generated column, or an identity column GENERATED ALWAYS, written'
                WHEN p_sqlstate = 'P0001' OR p_sqlstate LIKE 'SY%'
                    THEN 'raised by a trigger or function'
                ELSE 'error'
            END,
            p_sqlstate,
            CASE
                WHEN n.relation IS NOT NULL THEN ' on ' || n.relation::text
                WHEN p_sqlstate = '42501' AND d.name IS NOT NULL
                     AND (EXISTS (SELECT FROM pg_catalog.pg_class AS c
                                  WHERE c.relname = pg_catalog.btrim(d.name, '"'))
                          OR EXISTS (SELECT FROM pg_catalog.pg_namespace AS s
                                     WHERE s.nspname = pg_catalog.btrim(d.name, '"')))
                    THEN ' for ' || d.object
                WHEN p_sqlstate = '42501' AND d.guarded IS NOT NULL
                     AND EXISTS (SELECT FROM pg_catalog.pg_class AS c
                                 WHERE c.relname = d.guarded AND c.relrowsecurity)
                    THEN pg_catalog.format(' by the row-level security of table %s', d.guarded)
                ELSE ''
            END,
            CASE
                WHEN coalesce(p_constraint, '') <> ''
                     AND (EXISTS (SELECT FROM pg_catalog.pg_constraint AS k
                                  WHERE k.conrelid = n.relation AND k.conname = p_constraint)
                          OR EXISTS (SELECT FROM pg_catalog.pg_index AS x
                                     JOIN pg_catalog.pg_class AS i ON i.oid = x.indexrelid
                                     WHERE x.indrelid = n.relation AND i.relname = p_constraint))
                    THEN pg_catalog.format(', constraint or index %s', p_constraint)
                ELSE ''
            END)
    END
    FROM named AS n CROSS JOIN denied AS d
$$;

-- Why the shop's tables refused a write the engine made (a trigger's RAISE, a constraint, an
-- index, a value that does not fit, a missing privilege), in names only
-- (sync._error_without_values); NULL for an error that is to go out as it is: a transient
-- one, or one of the engine's own refusals.
CREATE OR REPLACE FUNCTION sync._shop_refusal(
    p_sqlstate text, p_message text, p_schema text, p_table text, p_constraint text,
    p_context text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN sync._own_refusal(p_sqlstate, p_message, p_context) IS NULL
                THEN sync._error_without_values(p_sqlstate, p_message, p_schema, p_table,
                                                p_constraint, p_context)
           END
$$;

-- In an exception handler of a function the shop or an operator calls: raise a refusal of the
-- shop's tables again with its SQLSTATE and a message of names only (sync._shop_refusal;
-- another's SY code as P0001, class SY being the engine's), or return when the error is to go
-- out as it is: the handler then re-raises it with RAISE.
-- Example (in an exception handler):
--   GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
--       schema_name = SCHEMA_NAME, table_name = TABLE_NAME, constraint_ = CONSTRAINT_NAME,
--       context = PG_EXCEPTION_CONTEXT;
--   PERFORM sync._raise_without_values(state, message, schema_name, table_name, constraint_,
--                                      context);
--   RAISE;
CREATE OR REPLACE FUNCTION sync._raise_without_values(
    p_sqlstate text, p_message text, p_schema text, p_table text, p_constraint text,
    p_context text)
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    why text := sync._shop_refusal(p_sqlstate, p_message, p_schema, p_table, p_constraint,
                                   p_context);
BEGIN
    IF why IS NULL THEN
        RETURN;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = CASE WHEN p_sqlstate LIKE 'SY%' THEN 'P0001' ELSE p_sqlstate END,
        MESSAGE = why;
END
$$;
