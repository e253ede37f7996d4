-- Login linking, link conflicts and link repair. The shop calls sync.login() when a person logs
-- in with their tritonX number: it always answers with a local customer id and a status, never
-- raises for a known situation, records what an operator should look at in sync.link_conflict
-- (numbers, ids and a kind; never the email), and asks the controller to refresh that customer
-- from tritonX. Re-runnable.

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

-- Login and refresh requests: one row a customer number while a refresh is wanted.
CREATE TABLE IF NOT EXISTS sync.refresh_request (
    customer_number       text PRIMARY KEY,
    requested_at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    attempts              integer NOT NULL DEFAULT 0,
    last_error            text
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

CREATE INDEX IF NOT EXISTS customer_login_email ON shop.customer (sync.normalise_email(email));
CREATE INDEX IF NOT EXISTS refresh_request_requested_at ON sync.refresh_request (requested_at);

-- Queue a customer for an immediate fetch from tritonX and wake the controller
-- (NOTIFY syncctl_refresh). A number already queued keeps its place.
-- Example: SELECT sync.request_refresh('TX00012345');
CREATE OR REPLACE FUNCTION sync.request_refresh(p_customer_number text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO sync.refresh_request (customer_number) VALUES (p_customer_number)
    ON CONFLICT (customer_number) DO NOTHING;
    PERFORM pg_catalog.pg_notify('syncctl_refresh', p_customer_number);
END
$$;

-- Take up to p_limit queued refreshes (oldest first); concurrent controllers skip each other's.
-- A fetch that fails puts the number back with sync.requeue_refresh.
CREATE OR REPLACE FUNCTION sync.claim_refresh_requests(p_limit integer)
RETURNS TABLE (customer_number text, requested_at timestamptz, attempts integer)
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    DELETE FROM sync.refresh_request AS r
    WHERE r.customer_number IN (
        SELECT q.customer_number FROM sync.refresh_request AS q
        ORDER BY q.requested_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED)
    RETURNING r.customer_number, r.requested_at, r.attempts
$$;

CREATE OR REPLACE FUNCTION sync.requeue_refresh(
    p_customer_number text, p_attempts integer, p_error text)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO sync.refresh_request (customer_number, attempts, last_error)
    VALUES (p_customer_number, p_attempts + 1, p_error)
    ON CONFLICT (customer_number) DO UPDATE
        SET attempts = excluded.attempts, last_error = excluded.last_error
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

-- The local customer for a person logging in with tritonX number p_customer_number and the
-- email they typed. Never raises for a known situation; status is one of
--   linked      the number is linked to a local customer
--   redirected  the number was merged away; customer_number is the survivor's
--   adopted     an unlinked local customer with the same email (exactly one) is now linked
--   created     no local customer yet: one was created (its data comes with the refresh)
--   ambiguous   several unlinked local customers have that email: a new one was created and
--               a link conflict recorded for an operator (`syncctl links repair`)
--   conflict    the email belongs to another linked customer: created, conflict recorded
--   erased      the customer was anonymised or deleted: customer_id is NULL (one open
--               'erased' link conflict a number records that someone tried)
--   invalid     not a tritonX number: customer_id is NULL
--   unavailable no local customer, and none could be written (a constraint, index or
--               trigger of the shop's refused the row; the feed's dead letter for the number
--               names it): customer_id is NULL
-- and a refresh of the customer is requested.
-- Example: SELECT * FROM sync.login('TX00012345', 'anna@example.nl');
CREATE OR REPLACE FUNCTION sync.login(p_customer_number text, p_email text)
RETURNS TABLE (customer_id bigint, status text, customer_number text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    number     text;
    found_id   bigint;
    wanted     text := sync.normalise_email(p_email);
BEGIN
    IF p_customer_number IS NULL OR pg_catalog.length(p_customer_number) > 32
       OR p_customer_number !~ '^[A-Za-z0-9]+$' THEN
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
    IF found_id IS NOT NULL THEN
        RETURN QUERY SELECT found_id,
            CASE WHEN number = p_customer_number THEN 'linked' ELSE 'redirected' END, number;
        RETURN;
    END IF;

    BEGIN
        RETURN QUERY SELECT * FROM sync._link_new_login(number, p_email, wanted);
    EXCEPTION WHEN OTHERS THEN
        -- the feed (or a refresh) created this customer between our look-up and our write
        SELECT c.id INTO found_id FROM shop.customer AS c WHERE c.customer_number = number;
        IF found_id IS NOT NULL THEN
            RETURN QUERY SELECT found_id, 'linked'::text, number;
            RETURN;
        END IF;
        IF pg_catalog.left(SQLSTATE, 2) NOT IN ('22', '23', '42', '54', 'P0') THEN
            RAISE;
        END IF;
        -- The row could not be written (a unique index, check or trigger of the shop's own
        -- refused it: the feed dead-letters the same customer for the same reason). No id to
        -- give; the error's detail may quote the e-mail, so it is not passed on.
        RETURN QUERY SELECT NULL::bigint, 'unavailable'::text, number;
    END;
END
$$;

-- The part of sync.login for a number with no local customer yet: adopt, or create.
CREATE OR REPLACE FUNCTION sync._link_new_login(p_number text, p_email text, p_wanted text)
RETURNS TABLE (customer_id bigint, status text, customer_number text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    number     text := p_number;
    wanted     text := p_wanted;
    found_id   bigint;
    candidates bigint[];
    taken      boolean;
BEGIN
    SELECT pg_catalog.array_agg(c.id ORDER BY c.id) INTO candidates
    FROM shop.customer AS c
    WHERE sync.normalise_email(c.email) = wanted AND c.customer_number IS NULL;
    IF pg_catalog.cardinality(candidates) = 1 THEN
        UPDATE shop.customer AS c SET customer_number = number
        WHERE c.id = candidates[1]
        RETURNING c.id INTO found_id;
        RETURN QUERY SELECT found_id, 'adopted'::text, number;
        RETURN;
    END IF;

    taken := EXISTS (SELECT FROM shop.customer AS c
                     WHERE sync.normalise_email(c.email) = wanted
                       AND c.customer_number IS NOT NULL);
    INSERT INTO shop.customer (customer_number, email) VALUES (number, p_email)
    RETURNING id INTO found_id;
    IF pg_catalog.cardinality(candidates) > 1 THEN
        PERFORM sync._record_link_conflict('ambiguous_email', number, found_id, candidates);
        RETURN QUERY SELECT found_id, 'ambiguous'::text, number;
    ELSIF taken THEN
        PERFORM sync._record_link_conflict('email_taken', number, found_id, NULL);
        RETURN QUERY SELECT found_id, 'conflict'::text, number;
    ELSE
        RETURN QUERY SELECT found_id, 'created'::text, number;
    END IF;
END
$$;

-- Move an unlinked local customer (its orders, favourites, ...) into a linked one, as a merge
-- does, and audit it. Used by link repair and bootstrap reconciliation.
-- Example: SELECT sync.adopt_local_customer(42, 4711, 'ops:links-repair');
CREATE OR REPLACE FUNCTION sync.adopt_local_customer(
    p_local_id bigint, p_linked_id bigint, p_actor text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started timestamptz := pg_catalog.clock_timestamp();
    number  text;
    moved   record;
BEGIN
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
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    started     timestamptz := pg_catalog.clock_timestamp();
    survivor    text := sync.resolve_customer_number(p_customer_number);
    old_id      bigint;
    survivor_id bigint;
    erased_as   text;
    counts      jsonb := '{}';
    outcome     text := 'applied';
    why         text;
BEGIN
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

-- Unlinked local customers that exactly one linked customer matches by email: what
-- `syncctl links repair` (and bootstrap) adopt.
CREATE OR REPLACE VIEW sync.adoptable_customer AS
SELECT local.id AS local_id, pg_catalog.min(linked.id) AS linked_id,
       pg_catalog.min(linked.customer_number) AS customer_number
FROM shop.customer AS local
JOIN shop.customer AS linked
  ON sync.normalise_email(linked.email) = sync.normalise_email(local.email)
 AND linked.customer_number IS NOT NULL
WHERE local.customer_number IS NULL
GROUP BY local.id
HAVING count(*) = 1;
