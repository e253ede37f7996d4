-- Delivering sync.outbox to tritonX: the controller claims due rows, sends them with their
-- idempotency key, and records the result. Per customer, rows go in order: a row waits while
-- an older one of the same customer is pending. A permanent refusal makes a row 'dead' (an
-- operator retries it with sync.retry_outbox). Errors recorded are status codes and classes,
-- never personal data. Re-runnable.

-- Due rows, oldest first, at most p_limit, skipping rows another controller holds.
CREATE OR REPLACE FUNCTION sync.claim_outbox(p_limit integer)
RETURNS SETOF sync.outbox
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT o.*
    FROM sync.outbox AS o
    WHERE o.state = 'pending'
      AND o.next_attempt_at <= pg_catalog.now()
      AND NOT EXISTS (SELECT FROM sync.outbox AS e
                      WHERE e.customer_number = o.customer_number
                        AND e.state IN ('pending', 'dead') AND e.id < o.id)
    ORDER BY o.id
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED
$$;

CREATE OR REPLACE FUNCTION sync.outbox_delivered(p_id bigint)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE sync.outbox AS o
    SET state = 'delivered', delivered_at = pg_catalog.now(), attempts = o.attempts + 1,
        last_error = NULL
    WHERE o.id = p_id
$$;

-- A failed attempt: retried after p_retry_in, or dead when p_permanent.
CREATE OR REPLACE FUNCTION sync.outbox_failed(
    p_id bigint, p_error text, p_permanent boolean, p_retry_in interval)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE sync.outbox AS o
    SET attempts = o.attempts + 1,
        last_error = p_error,
        state = CASE WHEN p_permanent THEN 'dead' ELSE 'pending' END,
        next_attempt_at = pg_catalog.now() + p_retry_in
    WHERE o.id = p_id
$$;

-- Send a dead (or waiting) outbox row again now. Returns false when there is no such row or
-- it was delivered already.
-- Example: SELECT sync.retry_outbox(17);
CREATE OR REPLACE FUNCTION sync.retry_outbox(p_id bigint)
RETURNS boolean
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH retried AS (
        UPDATE sync.outbox AS o
        SET state = 'pending', next_attempt_at = pg_catalog.now()
        WHERE o.id = p_id AND o.state IN ('pending', 'dead')
        RETURNING o.id
    )
    SELECT EXISTS (SELECT FROM retried)
$$;
