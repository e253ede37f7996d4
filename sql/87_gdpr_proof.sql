-- The erasure proof's key and fingerprints (private). A person's identifying values are kept
-- only as HMAC-SHA256 digests of their normalised forms under a per-install key
-- (gdpr.proof_key; a stolen digest of a short value cannot be looked up in a dictionary without
-- it), never the values themselves: verification captures them (sql/89_gdpr_erasure.sql), the
-- residue search looks for them (sql/88_gdpr_residue.sql). Only SECURITY DEFINER functions
-- read the key; gdpr.rotate_proof_key replaces it. SQLSTATE: SY088 rotation refused.
-- Re-runnable.

-- ---------------------------------------------------------------------------------------------
-- The proof key (private): digests are HMAC-SHA256 under a per-install secret
-- ---------------------------------------------------------------------------------------------

-- The install's secret, one row: the HMAC key (32 random bytes, zero-padded to sha256's 64-byte
-- block) stored as its inner and outer pads (key XOR 0x36.., key XOR 0x5c..), which is all
-- HMAC needs. Made when the schema is installed; no role but the owner reads it (no grants);
-- only SECURITY DEFINER functions use it. gdpr.rotate_proof_key replaces it.
CREATE TABLE IF NOT EXISTS gdpr.proof_key (
    id                    boolean PRIMARY KEY DEFAULT true CHECK (id),
    inner_pad             bytea NOT NULL CHECK (pg_catalog.octet_length(inner_pad) = 64),
    outer_pad             bytea NOT NULL CHECK (pg_catalog.octet_length(outer_pad) = 64),
    created_at            timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON gdpr.proof_key FROM PUBLIC;

-- A new key's pads: 32 bytes from two random UUIDs (244 random bits; gen_random_uuid draws
-- from the server's strong random source), zero-padded to 64.
CREATE OR REPLACE FUNCTION gdpr._new_proof_key(OUT inner_pad bytea, OUT outer_pad bytea)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key bytea := pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                 || pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                 || pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex');
BEGIN
    inner_pad := key;
    outer_pad := key;
    FOR i IN 0 .. 63 LOOP
        inner_pad := pg_catalog.set_byte(inner_pad, i, pg_catalog.get_byte(key, i) # 54);
        outer_pad := pg_catalog.set_byte(outer_pad, i, pg_catalog.get_byte(key, i) # 92);
    END LOOP;
END
$$;

INSERT INTO gdpr.proof_key (inner_pad, outer_pad)
SELECT k.inner_pad, k.outer_pad FROM gdpr._new_proof_key() AS k
ON CONFLICT (id) DO NOTHING;

-- The key's pads, for gdpr.residue_search (which passes them to the digest functions once a
-- statement instead of reading the key a row). Runs as the owner; nobody else may call it.
CREATE OR REPLACE FUNCTION gdpr._proof_pads(OUT inner_pad bytea, OUT outer_pad bytea)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k.inner_pad, k.outer_pad FROM gdpr.proof_key AS k
$$;
REVOKE ALL ON FUNCTION gdpr._proof_pads() FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Fingerprints (private)
-- ---------------------------------------------------------------------------------------------

-- A value's comparable form: lower case, letters and digits only ("1015 CJ" = "1015cj",
-- "+31 6 1234 5678" = "31612345678").
CREATE OR REPLACE FUNCTION gdpr._normalised(p_value text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.regexp_replace(pg_catalog.lower(p_value), '[^[:alnum:]]+', '', 'g')
$$;

-- HMAC-SHA256 (RFC 2104) of a normalised value under the key whose pads are given, in hex:
-- sha256(outer_pad || sha256(inner_pad || value)).
CREATE OR REPLACE FUNCTION gdpr._hmac(p_inner bytea, p_outer bytea, p_normalised text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.encode(pg_catalog.sha256(
        p_outer || pg_catalog.sha256(p_inner || pg_catalog.convert_to(p_normalised, 'UTF8'))),
        'hex')
$$;

-- A value's digest under the install's key (what verification stores). Runs as the owner, who
-- alone reads the key; nobody else may call it (it would be a dictionary oracle).
-- Example: SELECT gdpr._digest('anna@example.nl');
CREATE OR REPLACE FUNCTION gdpr._digest(p_value text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT gdpr._hmac(k.inner_pad, k.outer_pad, gdpr._normalised(p_value))
    FROM gdpr.proof_key AS k
$$;
REVOKE ALL ON FUNCTION gdpr._digest(text) FROM PUBLIC;

-- The digests a stored text may reveal a value by: the whole text and every run of one to four
-- consecutive words ("cadeau voor Anna van Berg" reveals "annavanberg"), each at least six
-- characters once normalised (shorter ones would match other people's data by chance).
CREATE OR REPLACE FUNCTION gdpr._text_digests(p_text text, p_inner bytea, p_outer bytea)
RETURNS SETOF text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH words AS (
        SELECT pg_catalog.regexp_split_to_array(pg_catalog.btrim(p_text),
                                                '[[:space:],;:/|()<>"]+') AS w
    ),
    candidates AS (
        SELECT gdpr._normalised(p_text) AS v
        UNION
        SELECT gdpr._normalised(pg_catalog.array_to_string(words.w[s:s + n - 1], ''))
        FROM words,
             pg_catalog.generate_series(1, pg_catalog.cardinality(words.w)) AS s,
             pg_catalog.generate_series(1, 4) AS n
        WHERE s + n - 1 <= pg_catalog.cardinality(words.w)
    )
    SELECT gdpr._hmac(p_inner, p_outer, c.v)
    FROM candidates AS c
    WHERE pg_catalog.length(c.v) >= 6
$$;

-- The digests of the customer's identifying values: e-mail, phone, mobile, full names (with
-- and without infix), postcode + house number (+ addition), from the customer row and its
-- addresses. Runs as the owner, who alone reads the key.
CREATE OR REPLACE FUNCTION gdpr._subject_digests(p_customer_id bigint)
RETURNS text[]
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY(
        SELECT DISTINCT gdpr._hmac(k.inner_pad, k.outer_pad, gdpr._normalised(v.value))
        FROM gdpr.proof_key AS k, (
            SELECT c.email, c.phone, c.mobile,
                   pg_catalog.concat(c.first_name, c.last_name),
                   pg_catalog.concat(c.first_name, c.infix, c.last_name),
                   pg_catalog.concat(c.postcode, c.house_number),
                   pg_catalog.concat(c.postcode, c.house_number, c.house_number_addition),
                   c.loyalty_card
            FROM shop.customer AS c WHERE c.id = p_customer_id
            UNION ALL
            SELECT a.recipient_name, NULL, NULL, NULL, NULL,
                   pg_catalog.concat(a.postcode, a.house_number),
                   pg_catalog.concat(a.postcode, a.house_number, a.house_number_addition), NULL
            FROM shop.address AS a WHERE a.customer_id = p_customer_id
        ) AS s (email, phone, mobile, name, full_name, address, full_address, card)
        CROSS JOIN LATERAL (VALUES (s.email), (s.phone), (s.mobile), (s.name), (s.full_name),
                                   (s.address), (s.full_address), (s.card)) AS v (value)
        WHERE pg_catalog.length(gdpr._normalised(v.value)) >= 6
        ORDER BY 1)
$$;

-- ---------------------------------------------------------------------------------------------
-- Key rotation (owner)
-- ---------------------------------------------------------------------------------------------

-- Replace the install's proof key with a new random one; audited as proof_key.rotated (the
-- actor, never the key). A proof already made is unaffected: it holds counts, not digests.
-- The digests of an open request (verified, scheduled or failed) were made with the old key
-- and would find nothing under the new one, so the rotation is refused (SY088) while any
-- request holds digests: execute or cancel them first (a cancelled request can be received
-- and verified again). Returns the new key's creation time.
-- Example: SELECT gdpr.rotate_proof_key('dba:op-3');
CREATE OR REPLACE FUNCTION gdpr.rotate_proof_key(p_actor text)
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    holding bigint;
    made    timestamptz;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    -- waits for verifications in flight, and keeps new ones out until the new key is in
    LOCK TABLE gdpr.erasure_request IN SHARE MODE;
    SELECT count(*) INTO holding FROM gdpr.erasure_request AS e WHERE e.digests IS NOT NULL;
    IF holding > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'SY088',
            MESSAGE = pg_catalog.format('proof key rotation refused: %s erasure request(s) hold '
                                        'digests made with the current key', holding),
            HINT = 'execute or cancel them first';
    END IF;
    UPDATE gdpr.proof_key AS k
    SET inner_pad = n.inner_pad, outer_pad = n.outer_pad, created_at = pg_catalog.now()
    FROM gdpr._new_proof_key() AS n
    RETURNING k.created_at INTO made;
    PERFORM gdpr._audit(p_actor, 'proof_key.rotated', NULL, NULL, 'erasure proof key rotated');
    RETURN made;
END
$$;
REVOKE ALL ON FUNCTION gdpr.rotate_proof_key(text) FROM PUBLIC;
