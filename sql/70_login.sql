-- Login linking and link conflicts. The shop calls sync.login() when a person logs in with
-- their tritonX number: it always answers with a local customer id and a status, never raises
-- for a known situation, records what an operator should look at in sync.link_conflict
-- (numbers, ids and a kind; never the email), and asks the controller to refresh that customer
-- from tritonX (sql/71_refresh.sql). An unlinked local customer is adopted
-- (sql/72_link_repair.sql) only on tritonX's own e-mail for the number (what its snapshot
-- wrote), never on what the person typed. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS sync.link_conflict (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                    timestamptz NOT NULL DEFAULT now(),
    kind                  text NOT NULL CHECK (kind IN ('ambiguous_email', 'email_taken',
                                                         'erased', 'invalid_number')),
    customer_number       text,
    customer_id           bigint,
    candidate_ids         bigint[] NOT NULL DEFAULT '{}',
    resolved_at           timestamptz,
    -- the customers' keys as text, for any key type (customer_id and candidate_ids hold them
    -- only when the mapped key is an integer)
    customer_key          text,
    candidate_keys        text[] NOT NULL DEFAULT '{}'
);
ALTER TABLE sync.link_conflict ADD COLUMN IF NOT EXISTS customer_key text;
ALTER TABLE sync.link_conflict ADD COLUMN IF NOT EXISTS candidate_keys text[] NOT NULL DEFAULT '{}';

-- ---------------------------------------------------------------------------------------------
-- Functions
-- ---------------------------------------------------------------------------------------------

-- An email as login compares it: Unicode NFC, trimmed, lower case.
CREATE OR REPLACE FUNCTION sync.normalise_email(p_email text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.lower(pg_catalog.btrim(pg_catalog.normalize(p_email, 'NFC')))
$$;

-- The mapped customer key's type is an integer type: its keys are also bigint customer ids.
CREATE OR REPLACE FUNCTION sync._integer_key()
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT m.key_type IN ('pg_catalog.int2'::pg_catalog.regtype,
                                           'pg_catalog.int4'::pg_catalog.regtype,
                                           'pg_catalog.int8'::pg_catalog.regtype)
                     FROM sync.mapped_customer() AS m), false)
$$;

-- A customer's key as audit rows and reports may show it: the key itself when the mapped key is
-- an integer or a uuid (an opaque id), NULL for a text key (it may be anything, an e-mail address
-- too: those rows name the customer by its tritonX number only).
CREATE OR REPLACE FUNCTION sync._shown_key(p_key text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN m.key_type IN ('pg_catalog.int2'::pg_catalog.regtype,
                                    'pg_catalog.int4'::pg_catalog.regtype,
                                    'pg_catalog.int8'::pg_catalog.regtype,
                                    'pg_catalog.uuid'::pg_catalog.regtype)
                THEN p_key END
    FROM sync.mapped_customer() AS m
$$;

-- Whether the mapped customer key may be shown (sync._shown_key): an integer or a uuid.
CREATE OR REPLACE FUNCTION sync._key_shown()
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync._shown_key('') IS NOT NULL
$$;

-- The same for the operator's tools (`syncctl links repair --dry-run` prints local keys with
-- it): the key when the mapped key is an integer or a uuid, else NULL. Reveals nothing but the
-- key type.
-- Example: SELECT sync.shown_key('42');
CREATE OR REPLACE FUNCTION sync.shown_key(p_key text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT sync._shown_key(p_key)
$$;

-- A bigint form's guard: its ids are keys of an integer-keyed customer table only (SY020,
-- naming the function and the key's type; the form by key as text serves every type).
CREATE OR REPLACE FUNCTION sync._integer_keys_only(p_function text)
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key_type pg_catalog.regtype := (SELECT m.key_type FROM sync.mapped_customer() AS m);
BEGIN
    IF key_type IS NOT NULL AND NOT sync._integer_key() THEN
        RAISE EXCEPTION USING ERRCODE = 'SY020', MESSAGE = pg_catalog.format(
            '%s with bigint ids needs an integer customer key; the mapped key is %s: pass '
            'keys as text', p_function, key_type);
    END IF;
END
$$;

-- A key as text as a bigint customer id: the key itself when the mapped key is an integer type,
-- else NULL (a uuid or text key has no id). Not inlined: a cast of a uuid to bigint is never
-- even planned.
CREATE OR REPLACE FUNCTION sync._key_ids(p_keys text[])
RETURNS bigint[]
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF sync._integer_key() THEN
        RETURN p_keys::bigint[];
    END IF;
    RETURN NULL;
END
$$;

-- Record a link conflict; keys as text (customer_id and candidate_ids hold them as well when the
-- mapped key is an integer).
DROP FUNCTION IF EXISTS sync._record_link_conflict(text, text, bigint, bigint[]);
CREATE OR REPLACE FUNCTION sync._record_link_conflict(
    p_kind text, p_number text, p_customer_key text, p_candidates text[])
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO sync.link_conflict (kind, customer_number, customer_id, candidate_ids,
                                    customer_key, candidate_keys)
    VALUES (p_kind, p_number, (sync._key_ids(ARRAY[p_customer_key]))[1],
            coalesce(sync._key_ids(p_candidates), '{}'), p_customer_key,
            coalesce(p_candidates, '{}'))
$$;

-- The mapped customer table's column holding tritonX's own e-mail: the column of
-- customer.columns whose source is the plain field "email" ("email" or { field = "email" }
-- without another transform; the first by name). NULL when there is none: nobody is adopted.
CREATE OR REPLACE FUNCTION sync._email_column()
RETURNS name
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT o.key::name
    FROM sync.mapping_version AS v
    CROSS JOIN LATERAL pg_catalog.jsonb_each(
        CASE WHEN pg_catalog.jsonb_typeof(v.document #> '{customer,columns}') = 'object'
             THEN v.document #> '{customer,columns}' ELSE '{}' END) AS o
    WHERE v.active
      AND (o.value = '"email"'::jsonb OR o.value = '{"field": "email"}'::jsonb)
    ORDER BY o.key
    LIMIT 1
$$;

-- What adopting unlinked local customers into the linked customer p_linked_key (its key as
-- text; NULL: every linked customer) would take, on tritonX's own e-mail for it (the mapped
-- e-mail column, sync._email_column): the unlinked local customers (rows of the mapped table not
-- in syncmap.customer_map) with that normalised e-mail (local_keys, in key order) and whether
-- another linked customer has it too (shared). A linked customer is listed only when a tritonX
-- snapshot (feed or refresh) wrote its e-mail (its version is set) and an unlinked local customer
-- has it: an e-mail a person typed, or one the shop wrote into a row tritonX never answered for,
-- adopts nobody; nor does anything when the mapping has no e-mail column. Login, link repair and
-- bootstrap all decide by this: exactly one local and no other linked customer adopts; several
-- locals (or another linked customer) are a link conflict.
DROP FUNCTION IF EXISTS sync._adoption_match(bigint);
CREATE OR REPLACE FUNCTION sync._adoption_match(p_linked_key text)
RETURNS TABLE (linked_key text, customer_number text, local_keys text[], shared boolean)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped record;
    email  name := sync._email_column();
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    IF email IS NULL OR mapped.relation IS NULL THEN
        RETURN;
    END IF;
    -- planned for the call's own argument: one key walks the key's index
    RETURN QUERY EXECUTE pg_catalog.format(
        'SELECT linked.key::text, linked.customer_number, '
        '       ARRAY(SELECT l.%2$I::text FROM %1$s AS l '
        '             WHERE sync.normalise_email(l.%3$I::text) = linked.email '
        '               AND NOT EXISTS (SELECT FROM syncmap.customer_map AS m '
        '                               WHERE m.customer_key = l.%2$I) '
        '             ORDER BY l.%2$I), '
        '       EXISTS (SELECT FROM %1$s AS o JOIN syncmap.customer_map AS m '
        '                 ON m.customer_key = o.%2$I '
        '               WHERE sync.normalise_email(o.%3$I::text) = linked.email '
        '                 AND o.%2$I <> linked.key) '
        'FROM (SELECT c.%2$I AS key, m.customer_number, '
        '             sync.normalise_email(c.%3$I::text) AS email '
        '      FROM %1$s AS c JOIN syncmap.customer_map AS m ON m.customer_key = c.%2$I '
        '      WHERE ($1 IS NULL OR c.%2$I = $1::%4$s) AND m.version IS NOT NULL) AS linked '
        'WHERE linked.email <> %5$L '
        '  AND linked.email IN (SELECT sync.normalise_email(l.%3$I::text) FROM %1$s AS l '
        '                       WHERE l.%3$I IS NOT NULL AND NOT EXISTS ('
        '                           SELECT FROM syncmap.customer_map AS m '
        '                           WHERE m.customer_key = l.%2$I))',
        mapped.relation, mapped.key_column, email, mapped.key_type, '')
        USING p_linked_key;
END
$$;

-- One open 'ambiguous_email' link conflict a linked customer whose tritonX e-mail matches
-- several unlinked local customers (or another linked customer as well): however often the
-- person logs in or an operator runs `links repair`, one row until it is resolved. Returns
-- whether a row was recorded now.
DROP FUNCTION IF EXISTS sync._record_ambiguous_adoption(text, bigint, bigint[]);
CREATE OR REPLACE FUNCTION sync._record_ambiguous_adoption(
    p_number text, p_linked_key text, p_local_keys text[])
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT FROM sync.link_conflict AS l
               WHERE l.kind = 'ambiguous_email' AND l.customer_number = p_number
                 AND l.resolved_at IS NULL) THEN
        RETURN false;
    END IF;
    PERFORM sync._record_link_conflict('ambiguous_email', p_number, p_linked_key, p_local_keys);
    RETURN true;
END
$$;

-- The local customer for a person logging in with tritonX number p_customer_number, on the
-- mapped customer table (any key type): its key as text. Never raises for a known situation;
-- status is one of
--   linked      the number is linked to a local customer
--   redirected  the number was merged away; customer_number is the survivor's
--   adopted     tritonX's own e-mail for the number (from its snapshot) matches exactly one
--               unlinked local customer and no other linked one: that customer is linked and
--               keeps its key, and the row the number had arrived on is absorbed into it
--               (audited customer.adopted)
--   created     no local customer yet: a stub was created (syncmap.create_stub: the key, the
--               number, no version, the mapping's create literals, its columns of an empty
--               snapshot and the related rows it points to); its data, and any adoption, come
--               with the refresh and a later login or `links repair`
--   ambiguous   tritonX's e-mail matches several unlinked local customers (or another linked
--               one as well): none adopted, a link conflict recorded for an operator
--   erased      the customer was anonymised or deleted: customer_key is NULL (one open
--               'erased' link conflict a number records that someone tried)
--   invalid     not a tritonX number: customer_key is NULL
--   unavailable no local customer, and none could be written (a constraint, index or
--               trigger of the shop's refused the row; the feed's dead letter for the number
--               names it): customer_key is NULL
-- and a refresh of the customer is requested. p_email, what the person typed, proves nothing
-- and is neither stored nor compared: it is only checked for length (SY025 above 320 bytes).
-- Example: SELECT * FROM sync.login_key('TX00012345', 'anna@example.nl');
CREATE OR REPLACE FUNCTION sync.login_key(p_customer_number text, p_email text)
RETURNS TABLE (customer_key text, status text, customer_number text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    number      text;
    found_key   text;
    match       record;
    state       text;
    message     text;
    schema_name text;
    table_name  text;
    constraint_ text;
    context     text;
BEGIN
    PERFORM sync._checked_length(p_email, 320, 'email');
    IF NOT sync.is_customer_number(p_customer_number) THEN
        PERFORM sync._record_link_conflict('invalid_number', NULL, NULL, NULL);
        RETURN QUERY SELECT NULL::text, 'invalid'::text, NULL::text;
        RETURN;
    END IF;
    number := sync.resolve_customer_number(p_customer_number);
    IF EXISTS (SELECT FROM sync.tombstone AS t WHERE t.customer_number = number) THEN
        -- one open conflict a number, however often the person tries
        IF NOT EXISTS (SELECT FROM sync.link_conflict AS l
                       WHERE l.kind = 'erased' AND l.customer_number = number
                         AND l.resolved_at IS NULL) THEN
            PERFORM sync._record_link_conflict('erased', number, NULL, NULL);
        END IF;
        RETURN QUERY SELECT NULL::text, 'erased'::text, number;
        RETURN;
    END IF;
    -- two logins for the same new number at once create one customer
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('syncctl.login:' || number));
    PERFORM sync.request_refresh(number);

    found_key := syncmap.key_of(number);
    IF found_key IS NULL THEN
        BEGIN
            -- the number only: tritonX-owned columns are tritonX's to fill
            found_key := syncmap.create_stub(number);
        EXCEPTION WHEN OTHERS THEN
            -- the feed created the customer between our look-up and our write (found below),
            -- or a constraint, index or trigger of the shop's refused the row, whatever
            -- SQLSTATE it raised (the feed dead-letters the same customer for the same
            -- reason); the error's detail may quote a value, so it is not passed on. A
            -- transient error and the engine's own refusals go out as they are.
            GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                                    schema_name = SCHEMA_NAME, table_name = TABLE_NAME,
                                    constraint_ = CONSTRAINT_NAME,
                                    context = PG_EXCEPTION_CONTEXT;
            IF sync._shop_refusal(state, message, schema_name, table_name, constraint_,
                                  context) IS NULL THEN
                RAISE;
            END IF;
        END;
        IF found_key IS NOT NULL THEN
            RETURN QUERY SELECT found_key, 'created'::text, number;
            RETURN;
        END IF;
        -- the feed (or a refresh) created this customer meanwhile
        found_key := syncmap.key_of(number);
        IF found_key IS NULL THEN
            RETURN QUERY SELECT NULL::text, 'unavailable'::text, number;
            RETURN;
        END IF;
    END IF;

    SELECT * INTO match FROM sync._adoption_match(found_key);
    IF pg_catalog.cardinality(match.local_keys) = 1 AND NOT match.shared THEN
        BEGIN
            PERFORM sync.adopt_local_customer_key(match.local_keys[1], found_key, 'login');
            -- the shop's key survives: the answer is the local customer's key
            RETURN QUERY SELECT match.local_keys[1], 'adopted'::text, number;
        -- a shop trigger refusing the adoption comes out of it by SQLSTATE and names only
        EXCEPTION WHEN SQLSTATE 'SY050' THEN
            -- `links repair` (or another login) adopted it first
            RETURN QUERY SELECT syncmap.key_of(number),
                CASE WHEN number = p_customer_number THEN 'linked' ELSE 'redirected' END,
                number;
        END;
    ELSIF pg_catalog.cardinality(match.local_keys) > 0 THEN
        PERFORM sync._record_ambiguous_adoption(number, found_key, match.local_keys);
        RETURN QUERY SELECT found_key, 'ambiguous'::text, number;
    ELSE
        RETURN QUERY SELECT found_key,
            CASE WHEN number = p_customer_number THEN 'linked' ELSE 'redirected' END, number;
    END IF;
END
$$;

-- sync.login_key with the key as a bigint customer id: the key itself when the mapped key is an
-- integer type (syncmap.customer_map.customer_id), NULL for another key type (uuid, text: use
-- sync.login_key). Same statuses, same refresh request.
-- Example: SELECT * FROM sync.login('TX00012345', 'anna@example.nl');
CREATE OR REPLACE FUNCTION sync.login(p_customer_number text, p_email text)
RETURNS TABLE (customer_id bigint, status text, customer_number text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    answer record;
BEGIN
    SELECT * INTO answer FROM sync.login_key(p_customer_number, p_email);
    -- a statement of its own: it sees what login_key wrote (a stub, an adoption)
    RETURN QUERY
    SELECT CASE WHEN answer.customer_key IS NOT NULL
                THEN (SELECT m.customer_id FROM syncmap.customer_map AS m
                      WHERE m.customer_number = answer.customer_number) END,
           answer.status, answer.customer_number;
END
$$;
