-- The grammar of what callers hand the SQL API, written once: identifiers (actors, reason codes),
-- tritonX event ids and customer numbers, length limits and times. syncctl/grammar.py states
-- the same grammar for Python (tests/migration/test_grammar.py compares the two, and the feed's
-- inline checks in sync.event_defect). The shop's input is untrusted: every check
-- here refuses before any work (a length is tested on octet_length, which reads only the
-- value's header, before a regular expression reads the value), and a refusal's message names
-- the argument, never its value. SQLSTATEs: SY023 not an identifier, SY025 longer than its
-- limit, SY026 a time in the future beyond the clock skew, SY027 not a tritonX customer number.
-- Re-runnable.

-- Whether p_value is 1 to p_limit ASCII letters, digits and . _ : - : an identifier's and an
-- event id's characters (the length is tested first, on the value's header).
CREATE OR REPLACE FUNCTION sync._is_word(p_value text, p_limit integer)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_value IS NOT NULL
       AND pg_catalog.octet_length(p_value) BETWEEN 1 AND p_limit
       AND p_value OPERATOR(pg_catalog.~) '^[A-Za-z0-9._:-]+$'
$$;

-- Whether p_value is an identifier: 1 to 64 ASCII letters, digits and . _ : - (an operator id
-- `backoffice:op-17`, a job name `retention`, a reason code `AVG`). No '@', no spaces: an
-- e-mail address or free text is no identifier, so the audit never holds one.
-- Example: SELECT sync.is_identifier('backoffice:op-17');  -- true
CREATE OR REPLACE FUNCTION sync.is_identifier(p_value text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync._is_word(p_value, 64)
$$;

-- Whether p_value is a tritonX customer number as the feed accepts one: 1 to 32 ASCII letters
-- and digits.
-- Example: SELECT sync.is_customer_number('TX00012345');  -- true
CREATE OR REPLACE FUNCTION sync.is_customer_number(p_value text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_value IS NOT NULL
       AND pg_catalog.octet_length(p_value) BETWEEN 1 AND 32
       AND p_value OPERATOR(pg_catalog.~) '^[A-Za-z0-9]+$'
$$;

-- Whether p_value is a tritonX event id as the feed accepts one: 1 to 100 ASCII letters, digits
-- and . _ : - (a UUID, say). What the audit keeps of a malformed record's id.
-- Example: SELECT sync.is_event_id('6f1c2a4e-0d5b-4c1e-9a7f-3b2d1e0c9a8b');  -- true
CREATE OR REPLACE FUNCTION sync.is_event_id(p_value text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync._is_word(p_value, 100)
$$;

-- p_value when it is an identifier; raises SY023 naming p_what otherwise.
CREATE OR REPLACE FUNCTION sync._checked_identifier(p_value text, p_what text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT sync.is_identifier(p_value) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY023',
            MESSAGE = pg_catalog.format('%s must be an identifier of 1 to 64 characters '
                                        '(letters, digits, . _ : -)', p_what);
    END IF;
    RETURN p_value;
END
$$;

-- p_value when it is a tritonX customer number; raises SY027 naming p_what otherwise.
CREATE OR REPLACE FUNCTION sync._checked_customer_number(p_value text, p_what text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT sync.is_customer_number(p_value) THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY027',
            MESSAGE = pg_catalog.format('%s must be a tritonX customer number '
                                        '(1 to 32 letters and digits)', p_what);
    END IF;
    RETURN p_value;
END
$$;

-- p_value when it is NULL or at most p_limit bytes (UTF-8); raises SY025 naming p_what
-- otherwise. octet_length reads the length word only, so a 10 MB value costs nothing here.
CREATE OR REPLACE FUNCTION sync._checked_length(p_value text, p_limit integer, p_what text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.octet_length(p_value) > p_limit THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY025',
            MESSAGE = pg_catalog.format('%s is longer than %s bytes', p_what, p_limit);
    END IF;
    RETURN p_value;
END
$$;

-- The longest customer key, in bytes, that the engine's functions take and its tables keep
-- (consents, erasure requests): 2,704, the largest value a btree index holds, so every key a
-- unique index of the shop's customer table can hold. A longer argument is refused (SY025).
CREATE OR REPLACE FUNCTION sync._key_limit()
RETURNS integer
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 2704
$$;

-- The clock skew a caller-given time may have: a time up to this far ahead of the database's
-- clock is taken as given, one further ahead is refused.
CREATE OR REPLACE FUNCTION sync._clock_skew()
RETURNS interval
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT interval '5 minutes'
$$;

-- p_at when it is not later than the database's clock plus sync._clock_skew(); raises SY026
-- naming p_what otherwise (a consent granted "in 2099" would outlive every withdrawal) and when
-- it is NULL: a NULL time would pass every comparison and reach a NOT NULL or CHECK constraint
-- of the engine's tables, whose error's DETAIL quotes the whole row (a customer key, the
-- erasure digests) to a caller who may not read it.
CREATE OR REPLACE FUNCTION sync._checked_time(p_at timestamptz, p_what text)
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_at IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY026',
            MESSAGE = pg_catalog.format('%s is missing (NULL): pass the time', p_what);
    END IF;
    IF p_at > pg_catalog.clock_timestamp() + sync._clock_skew() THEN
        RAISE EXCEPTION USING
            ERRCODE = 'SY026',
            MESSAGE = pg_catalog.format('%s lies in the future (more than %s ahead of the '
                                        'database''s clock)', p_what, sync._clock_skew());
    END IF;
    RETURN p_at;
END
$$;

-- The moment a job the controller may start (retention, due erasures) takes as "now": p_now as
-- given for a DBA (a member of the owner role may run a job as of any time, as tests and
-- catch-up runs do), and for anyone else only when it is not beyond sync._clock_skew() ahead:
-- a controller must not make tomorrow's erasures and retention happen today. Raises SY026.
CREATE OR REPLACE FUNCTION sync._checked_job_time(p_now timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_now IS NOT NULL
       AND pg_catalog.pg_has_role(session_user, sync.role_name('owner'), 'USAGE') THEN
        RETURN p_now;
    END IF;
    RETURN sync._checked_time(p_now, 'now');
END
$$;
