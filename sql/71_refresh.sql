-- Refresh requests: the queue of customers to fetch from tritonX now (a login, a repaired
-- link), which the controller claims under a lease, applies, and releases or requeues with a
-- backoff. One row a customer number; numbers only, never personal data. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------

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
