-- Redirects: the number a customer number stands for today. A merge (sql/50_merge.sql) records
-- a permanent redirect old -> survivor in sync.redirect, kept flat, so every lookup here is one
-- step; login, link repair and the shop (retrying an insert whose customer was merged away)
-- follow it. Public. Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- Redirects (public)
-- ---------------------------------------------------------------------------------------------

-- The number a customer number stands for today: its survivor when it was merged away, else
-- itself. One step: redirects are kept flat.
CREATE OR REPLACE FUNCTION sync.resolve_customer_number(p_number text)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- a number is at most 32 bytes: a longer argument is refused before any look-up (SY025)
    SELECT coalesce(
        (SELECT r.survivor_number FROM sync.redirect AS r
         WHERE r.old_number = sync._checked_length(p_number, 32, 'customer number')),
        p_number)
$$;

-- The local customer id a customer number stands for today (following its redirect), or NULL.
-- A shop whose insert failed with a foreign-key violation because a merge removed the old
-- customer retries with this id.
CREATE OR REPLACE FUNCTION sync.resolve_customer(p_number text)
RETURNS bigint
LANGUAGE sql
STABLE
PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.id FROM shop.customer AS c
    WHERE c.customer_number = sync.resolve_customer_number(p_number)
$$;
