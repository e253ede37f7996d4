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
    resolved_at           timestamptz
);

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

-- shop.customer's login index: here, not in sql/10_shop.sql, as it needs the function above
CREATE INDEX IF NOT EXISTS customer_login_email ON shop.customer (sync.normalise_email(email));

CREATE OR REPLACE FUNCTION sync._record_link_conflict(
    p_kind text, p_number text, p_customer_id bigint, p_candidates bigint[])
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO sync.link_conflict (kind, customer_number, customer_id, candidate_ids)
    VALUES (p_kind, p_number, p_customer_id, coalesce(p_candidates, '{}'))
$$;

-- What adopting unlinked local customers into the linked customer p_linked_id would take, on
-- tritonX's own e-mail for it: the unlinked local customers with that normalised e-mail
-- (local_ids, in id order) and whether another linked customer has it too (shared). Empty
-- unless the customer is linked and a tritonX snapshot (feed or refresh) wrote its e-mail: an
-- e-mail a person typed, or one the shop wrote into a row tritonX never answered for, adopts
-- nobody. Login, link repair and bootstrap all decide by this: exactly one local and no other
-- linked customer adopts; several locals (or another linked customer) are a link conflict.
CREATE OR REPLACE FUNCTION sync._adoption_match(p_linked_id bigint)
RETURNS TABLE (linked_id bigint, customer_number text, local_ids bigint[], shared boolean)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT linked.id, linked.customer_number,
           ARRAY(SELECT l.id FROM shop.customer AS l
                 WHERE sync.normalise_email(l.email) = sync.normalise_email(linked.email)
                   AND l.customer_number IS NULL
                 ORDER BY l.id),
           EXISTS (SELECT FROM shop.customer AS o
                   WHERE sync.normalise_email(o.email) = sync.normalise_email(linked.email)
                     AND o.customer_number IS NOT NULL AND o.id <> linked.id)
    FROM shop.customer AS linked
    WHERE linked.id = p_linked_id
      AND linked.customer_number IS NOT NULL
      AND linked.tritonx_version IS NOT NULL
      AND sync.normalise_email(linked.email) <> ''
$$;

-- One open 'ambiguous_email' link conflict a linked customer whose tritonX e-mail matches
-- several unlinked local customers (or another linked customer as well): however often the
-- person logs in or an operator runs `links repair`, one row until it is resolved. Returns
-- whether a row was recorded now.
CREATE OR REPLACE FUNCTION sync._record_ambiguous_adoption(
    p_number text, p_linked_id bigint, p_local_ids bigint[])
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
    PERFORM sync._record_link_conflict('ambiguous_email', p_number, p_linked_id, p_local_ids);
    RETURN true;
END
$$;

-- The local customer for a person logging in with tritonX number p_customer_number. Never
-- raises for a known situation; status is one of
--   linked      the number is linked to a local customer
--   redirected  the number was merged away; customer_number is the survivor's
--   adopted     tritonX's own e-mail for the number (from its snapshot) matches exactly one
--               unlinked local customer and no other linked one: that customer is linked and
--               keeps its id, and the row the number had arrived on is absorbed into it
--               (audited customer.adopted)
--   created     no local customer yet: one was created with the number only (its data, and
--               any adoption, come with the refresh and a later login or `links repair`)
--   ambiguous   tritonX's e-mail matches several unlinked local customers (or another linked
--               one as well): none adopted, a link conflict recorded for an operator
--   erased      the customer was anonymised or deleted: customer_id is NULL (one open
--               'erased' link conflict a number records that someone tried)
--   invalid     not a tritonX number: customer_id is NULL
--   unavailable no local customer, and none could be written (a constraint, index or
--               trigger of the shop's refused the row; the feed's dead letter for the number
--               names it): customer_id is NULL
-- and a refresh of the customer is requested. p_email, what the person typed, proves nothing
-- and is neither stored nor compared: it is only checked for length (SY025 above 320 bytes).
-- Example: SELECT * FROM sync.login('TX00012345', 'anna@example.nl');
CREATE OR REPLACE FUNCTION sync.login(p_customer_number text, p_email text)
RETURNS TABLE (customer_id bigint, status text, customer_number text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    number     text;
    found_id   bigint;
    match      record;
BEGIN
    PERFORM sync._checked_length(p_email, 320, 'email');
    IF NOT sync.is_customer_number(p_customer_number) THEN
        PERFORM sync._record_link_conflict('invalid_number', NULL, NULL, NULL);
        RETURN QUERY SELECT NULL::bigint, 'invalid'::text, NULL::text;
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
        RETURN QUERY SELECT NULL::bigint, 'erased'::text, number;
        RETURN;
    END IF;
    -- two logins for the same new number at once create one customer
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('syncctl.login:' || number));
    PERFORM sync.request_refresh(number);

    SELECT c.id INTO found_id FROM shop.customer AS c WHERE c.customer_number = number;
    IF found_id IS NULL THEN
        BEGIN
            -- the number only: tritonX-owned columns are tritonX's to fill
            INSERT INTO shop.customer (customer_number) VALUES (number) RETURNING id INTO found_id;
            RETURN QUERY SELECT found_id, 'created'::text, number;
            RETURN;
        EXCEPTION WHEN OTHERS THEN
            -- the feed (or a refresh) created this customer between our look-up and our write
            SELECT c.id INTO found_id FROM shop.customer AS c WHERE c.customer_number = number;
            IF found_id IS NULL THEN
                IF pg_catalog.left(SQLSTATE, 2) NOT IN ('22', '23', '42', '54', 'P0') THEN
                    RAISE;
                END IF;
                -- The row could not be written (a constraint, index or trigger of the shop's
                -- own refused it: the feed dead-letters the same customer for the same reason).
                -- No id to give; the error's detail may quote a value, so it is not passed on.
                RETURN QUERY SELECT NULL::bigint, 'unavailable'::text, number;
                RETURN;
            END IF;
        END;
    END IF;

    SELECT * INTO match FROM sync._adoption_match(found_id);
    IF pg_catalog.cardinality(match.local_ids) = 1 AND NOT match.shared THEN
        BEGIN
            PERFORM sync.adopt_local_customer(match.local_ids[1], found_id, 'login');
            -- the shop's key survives: the answer is the local customer's id
            RETURN QUERY SELECT match.local_ids[1], 'adopted'::text, number;
        EXCEPTION WHEN SQLSTATE 'SY050' THEN
            -- `links repair` (or another login) adopted it first
            RETURN QUERY SELECT found_id,
                CASE WHEN number = p_customer_number THEN 'linked' ELSE 'redirected' END, number;
        END;
    ELSIF pg_catalog.cardinality(match.local_ids) > 0 THEN
        PERFORM sync._record_ambiguous_adoption(number, found_id, match.local_ids);
        RETURN QUERY SELECT found_id, 'ambiguous'::text, number;
    ELSE
        RETURN QUERY SELECT found_id,
            CASE WHEN number = p_customer_number THEN 'linked' ELSE 'redirected' END, number;
    END IF;
END
$$;
