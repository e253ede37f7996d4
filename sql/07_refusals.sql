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
