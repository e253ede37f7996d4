-- Login linking, link conflicts and link repair. The shop calls sync.login() when a person logs
-- in with their tritonX number: it always answers with a local customer id and a status, never
-- raises for a known situation, records what an operator should look at in sync.link_conflict
-- (numbers, ids and a kind; never the email), and asks the controller to refresh that customer
-- from tritonX. An unlinked local customer is adopted only on tritonX's own e-mail for the
-- number (what its snapshot wrote), never on what the person typed. Re-runnable.

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

-- Login and refresh requests: one row a customer number while a refresh is wanted. A claimed
-- row stays until its refresh is applied (sync.refresh_done); a controller that dies holding it
-- leaves a lease that runs out (claimed_until), and the request is claimed again.
CREATE TABLE IF NOT EXISTS sync.refresh_request (
    customer_number       text PRIMARY KEY,
    requested_at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    attempts              integer NOT NULL DEFAULT 0,
    last_error            text,
    claimed_until         timestamptz
);
CREATE INDEX IF NOT EXISTS refresh_request_requested_at ON sync.refresh_request (requested_at);

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

-- Queue a customer for an immediate fetch from tritonX and wake the controller
-- (NOTIFY syncctl_refresh, with an empty payload: any role may LISTEN, so the notification
-- names no one; the controller reads the queue). A number already queued keeps its place.
-- Raises SY027 for anything but a tritonX customer number.
-- Example: SELECT sync.request_refresh('TX00012345');
CREATE OR REPLACE FUNCTION sync.request_refresh(p_customer_number text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM sync._checked_customer_number(p_customer_number, 'customer number');
    -- a number already queued keeps its place; one being refreshed now is asked for again
    -- (the refresh under way may have fetched before this request)
    INSERT INTO sync.refresh_request AS r (customer_number) VALUES (p_customer_number)
    ON CONFLICT (customer_number) DO UPDATE
        SET requested_at = pg_catalog.clock_timestamp()
        WHERE r.claimed_until IS NOT NULL;
    PERFORM pg_catalog.pg_notify('syncctl_refresh', '');
END
$$;

-- Take up to p_limit queued refreshes (oldest first) under a lease of p_lease: concurrent
-- controllers skip each other's, and a controller that dies before sync.refresh_done leaves its
-- requests to be claimed again when the lease runs out. A fetch that fails puts the number back
-- with sync.requeue_refresh.
CREATE OR REPLACE FUNCTION sync.claim_refresh_requests(
    p_limit integer, p_lease interval DEFAULT '5 minutes')
RETURNS TABLE (customer_number text, requested_at timestamptz, attempts integer)
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE sync.refresh_request AS r
    SET claimed_until = pg_catalog.clock_timestamp()
                        + LEAST(GREATEST(p_lease, interval '1 second'),
                                           interval '1 hour')
    WHERE r.customer_number IN (
        SELECT q.customer_number FROM sync.refresh_request AS q
        WHERE q.claimed_until IS NULL OR q.claimed_until < pg_catalog.clock_timestamp()
        ORDER BY q.requested_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED)
    RETURNING r.customer_number, r.requested_at, r.attempts
$$;

-- A claimed refresh was applied: the request goes, unless the number was asked for again after
-- the claim (p_requested_at is what the claim returned).
CREATE OR REPLACE FUNCTION sync.refresh_done(p_customer_number text, p_requested_at timestamptz)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM sync.refresh_request AS r
    WHERE r.customer_number = p_customer_number AND r.requested_at <= p_requested_at
$$;

-- Claimed refreshes nobody tried (their controller stopped first) are free again at once.
CREATE OR REPLACE FUNCTION sync.release_refresh(p_customer_numbers text[])
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE sync.refresh_request AS r SET claimed_until = NULL
    WHERE r.customer_number = ANY (p_customer_numbers)
$$;

-- A refresh that failed goes back in the queue with its attempts counted and a backoff.
CREATE OR REPLACE FUNCTION sync.requeue_refresh(
    p_customer_number text, p_attempts integer, p_error text)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- not before a backoff that doubles with every attempt (1 s, 2 s, 4 s, ... at most an hour):
    -- a number tritonX never answers does not cost a request every cycle for ever
    INSERT INTO sync.refresh_request AS r (customer_number, attempts, last_error, claimed_until)
    VALUES (p_customer_number, p_attempts + 1, p_error,
            pg_catalog.clock_timestamp()
            + pg_catalog.make_interval(secs => LEAST(3600, 2 ^ LEAST(GREATEST(p_attempts, 0), 12))))
    ON CONFLICT (customer_number) DO UPDATE
        SET attempts = excluded.attempts, last_error = excluded.last_error,
            claimed_until = excluded.claimed_until
$$;

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
--               unlinked local customer and no other linked one: that customer's orders,
--               favourites, ... moved into the linked customer (audited customer.adopted)
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
            RETURN QUERY SELECT found_id, 'adopted'::text, number;
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

-- Move an unlinked local customer (its orders, favourites, ...) into a linked one, as a merge
-- does, and audit it. Used by login, link repair and bootstrap; only for the pair
-- sync._adoption_match names (tritonX's own e-mail matches exactly this local customer).
-- Example: SELECT sync.adopt_local_customer(42, 4711, 'ops:links-repair');
CREATE OR REPLACE FUNCTION sync.adopt_local_customer(
    p_local_id bigint, p_linked_id bigint, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started timestamptz := pg_catalog.clock_timestamp();
    number  text;
    moved   record;
BEGIN
    PERFORM sync._checked_identifier(p_actor, 'actor');
    PERFORM FROM shop.customer AS c WHERE c.id IN (p_local_id, p_linked_id)
    ORDER BY c.id FOR UPDATE;
    IF NOT EXISTS (SELECT FROM shop.customer AS c
                   WHERE c.id = p_local_id AND c.customer_number IS NULL) THEN
        RAISE EXCEPTION 'customer % is not an unlinked local customer', p_local_id
            USING ERRCODE = 'SY050';
    END IF;
    SELECT c.customer_number INTO number FROM shop.customer AS c WHERE c.id = p_linked_id;
    IF number IS NULL THEN
        RAISE EXCEPTION 'customer % is not linked to tritonX', p_linked_id
            USING ERRCODE = 'SY051';
    END IF;
    -- only the pair tritonX's own e-mail names: nobody moves a stranger's orders by ids alone
    IF NOT EXISTS (SELECT FROM sync._adoption_match(p_linked_id) AS m
                   WHERE m.local_ids = ARRAY[p_local_id] AND NOT m.shared) THEN
        RAISE EXCEPTION 'customer % is not the one local customer tritonX''s e-mail of customer '
                        '% matches', p_local_id, p_linked_id
            USING ERRCODE = 'SY052';
    END IF;
    SELECT * INTO moved FROM sync._move_customer(p_local_id, p_linked_id);
    UPDATE sync.link_conflict AS l SET resolved_at = pg_catalog.now()
    WHERE p_local_id = ANY (l.candidate_ids) AND l.resolved_at IS NULL;
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts,
                            reason, duration_ms)
    VALUES (p_actor, 'customer.adopted', 'applied', number, p_linked_id, moved.counts,
            pg_catalog.format('local customer %s adopted', p_local_id),
            EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000);
    RETURN moved.counts;
END
$$;

-- Repair a local customer still linked to a merged-away number (the shop linked it before
-- syncctl knew of the merge): its rows move into the survivor's local customer as a merge moves
-- them, or, when the survivor has no local customer yet, the link moves to the survivor's number
-- (its tritonX version is forgotten so the survivor's next snapshot applies, and a refresh is
-- requested). A survivor that was anonymised or deleted is left alone: outcome 'skipped', as a
-- merge into an erased customer is refused. Audited as 'customer.relinked' (customer_number the
-- old number, related_number the survivor). Returns {"outcome", "reason", "counts"}.
-- Example: SELECT sync.repair_redirected_link('TX00000001', 'ops:alice');
CREATE OR REPLACE FUNCTION sync.repair_redirected_link(p_customer_number text, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started     timestamptz := pg_catalog.clock_timestamp();
    survivor    text := sync.resolve_customer_number(
                            sync._checked_length(p_customer_number, 32, 'customer number'));
    old_id      bigint;
    survivor_id bigint;
    erased_as   text;
    counts      jsonb := '{}';
    outcome     text := 'applied';
    why         text;
BEGIN
    PERFORM sync._checked_identifier(p_actor, 'actor');
    -- the lock order every merge, anonymisation and concurrent shop write agrees on
    PERFORM FROM shop.customer AS c
    WHERE c.customer_number IN (p_customer_number, survivor)
    ORDER BY c.id
    FOR UPDATE;
    SELECT c.id INTO old_id FROM shop.customer AS c WHERE c.customer_number = p_customer_number;
    SELECT c.id INTO survivor_id FROM shop.customer AS c WHERE c.customer_number = survivor;
    SELECT t.kind INTO erased_as FROM sync.tombstone AS t WHERE t.customer_number = survivor;
    IF old_id IS NULL OR survivor = p_customer_number THEN
        outcome := 'skipped';
        why := 'not linked to a merged-away number';
    ELSIF erased_as IS NOT NULL THEN
        outcome := 'skipped';
        why := pg_catalog.format('survivor %s is %s', survivor, erased_as);
    ELSIF survivor_id IS NULL THEN
        UPDATE shop.customer AS c
        SET customer_number = survivor, tritonx_version = NULL, tritonx_updated_at = NULL
        WHERE c.id = old_id;
        survivor_id := old_id;
        counts := '{"shop.customer": 1}';
        why := 'link moved to the survivor';
        PERFORM sync.request_refresh(survivor);
    ELSE
        SELECT m.counts, m.reason INTO counts, why
        FROM sync._move_customer(old_id, survivor_id) AS m;
    END IF;
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts,
                            reason, duration_ms, related_number)
    VALUES (p_actor, 'customer.relinked', outcome, p_customer_number,
            coalesce(survivor_id, old_id), counts, why,
            EXTRACT(epoch FROM pg_catalog.clock_timestamp() - started) * 1000, survivor);
    RETURN pg_catalog.jsonb_build_object('outcome', outcome, 'reason', why, 'counts', counts);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------------------------

-- What `syncctl links check` reports: one row an anomaly kind, with a count.
CREATE OR REPLACE VIEW sync.link_anomaly AS
SELECT 'several local customers with one email' AS anomaly, count(*) AS customers
FROM (SELECT sync.normalise_email(c.email) FROM shop.customer AS c
      WHERE c.email IS NOT NULL
      GROUP BY 1 HAVING count(*) > 1) AS g
UNION ALL
SELECT 'linked to a merged-away number', count(*)
FROM shop.customer AS c JOIN sync.redirect AS r ON r.old_number = c.customer_number
UNION ALL
SELECT 'local customer without a tritonX number', count(*)
FROM shop.customer AS c WHERE c.customer_number IS NULL
UNION ALL
SELECT 'open link conflicts', count(*)
FROM sync.link_conflict AS l WHERE l.resolved_at IS NULL;

-- Linked customers whose tritonX e-mail (from a snapshot) matches unlinked local customers,
-- as sync._adoption_match decides it: linked_id, customer_number, local_ids, shared.
CREATE OR REPLACE VIEW sync.adoption_match AS
SELECT m.linked_id, m.customer_number, m.local_ids, m.shared
FROM shop.customer AS linked
CROSS JOIN LATERAL sync._adoption_match(linked.id) AS m
WHERE linked.customer_number IS NOT NULL
  AND linked.tritonx_version IS NOT NULL
  AND sync.normalise_email(linked.email) IN (
      SELECT sync.normalise_email(l.email) FROM shop.customer AS l
      WHERE l.customer_number IS NULL AND l.email IS NOT NULL);

-- What `syncctl links repair` (and bootstrap) adopt: the unlinked local customer that is the
-- only one with a linked customer's tritonX e-mail, when no other linked customer has it.
-- Two unlinked local customers with one e-mail adopt neither (a link conflict, as at login).
CREATE OR REPLACE VIEW sync.adoptable_customer AS
SELECT m.local_ids[1] AS local_id, m.linked_id, m.customer_number
FROM sync.adoption_match AS m
WHERE pg_catalog.cardinality(m.local_ids) = 1 AND NOT m.shared;

-- Record a link conflict for every linked customer whose tritonX e-mail matches several
-- unlinked local customers (or another linked customer as well), one open conflict a
-- customer (what `links repair` and bootstrap do before they adopt). Returns how many were
-- recorded now.
-- Example: SELECT sync.record_adoption_conflicts();
CREATE OR REPLACE FUNCTION sync.record_adoption_conflicts()
RETURNS integer
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FILTER (WHERE sync._record_ambiguous_adoption(m.customer_number, m.linked_id,
                                                                  m.local_ids))::integer
    FROM sync.adoption_match AS m
    WHERE pg_catalog.cardinality(m.local_ids) > 1 OR m.shared
$$;
