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

-- The local customer id a customer number stands for today (following its redirect), or NULL;
-- NULL also when the mapped customer key is not an integer (sync.resolve_customer_key gives the
-- key of any type). A shop whose insert failed with a foreign-key violation because a merge
-- removed the old customer retries with this id.
CREATE OR REPLACE FUNCTION sync.resolve_customer(p_number text)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT m.customer_id FROM syncmap.customer_map AS m
            WHERE m.customer_number = sync.resolve_customer_number(p_number));
END
$$;

-- The key (as text, the key's own text form) of the local customer a customer number stands for
-- today (following its redirect), or NULL: sync.resolve_customer for a key of any type (uuid,
-- text, integer).
CREATE OR REPLACE FUNCTION sync.resolve_customer_key(p_number text)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN syncmap.key_of(sync.resolve_customer_number(p_number));
END
$$;
