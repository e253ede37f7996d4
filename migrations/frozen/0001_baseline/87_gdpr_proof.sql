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

-- The tables of the active mapping that hold tritonX's fields for a customer, as the proof
-- reads them for one customer row `c` of the mapped table: the customer (alias c, ord 0) and
-- each [[related]] table (alias r<n>, n its place in the mapping) with the join that reaches
-- its row: the row the customer points to (via.customer_column), or the row that points to the
-- customer (via.column, of the kind when via.kind names one). At most one row each.
CREATE OR REPLACE FUNCTION gdpr._identifying_tables()
RETURNS TABLE (alias text, ord bigint, columns jsonb, join_sql text)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'c', 0::bigint, v.document #> '{customer,columns}', ''
    FROM sync.mapping_version AS v WHERE v.active
    UNION ALL
    SELECT 'r' || e.ord, e.ord, e.item -> 'columns',
           pg_catalog.format(' LEFT JOIN %s AS %I ON ', r.relation, 'r' || e.ord)
           || CASE WHEN e.item -> 'via' ? 'customer_column'
                   THEN pg_catalog.format('%I.%I = c.%I', 'r' || e.ord, e.item ->> 'key',
                                          e.item #>> '{via,customer_column}')
                   ELSE pg_catalog.format('%I.%I = c.%I', 'r' || e.ord,
                                          e.item #>> '{via,column}', m.key_column)
                        || CASE WHEN e.item #> '{via,kind}' ? 'column'
                                THEN pg_catalog.format(' AND %I.%I::text = %L', 'r' || e.ord,
                                                       e.item #>> '{via,kind,column}',
                                                       e.item #>> '{via,kind,value}')
                                ELSE '' END
              END
    FROM sync.mapping_version AS v
    CROSS JOIN sync.mapped_customer() AS m
    CROSS JOIN LATERAL pg_catalog.jsonb_array_elements(
        CASE WHEN pg_catalog.jsonb_typeof(v.document -> 'related') = 'array'
             THEN v.document -> 'related' ELSE '[]' END) WITH ORDINALITY AS e (item, ord)
    CROSS JOIN LATERAL (
        SELECT pg_catalog.to_regclass(pg_catalog.format('%I.%I', e.item ->> 'schema',
                                                        e.item ->> 'table')) AS relation
    ) AS r
    WHERE v.active AND r.relation IS NOT NULL
      AND (e.item -> 'via' ? 'customer_column' OR e.item -> 'via' ? 'column')
$$;

-- The mapped columns of the tables gdpr._identifying_tables() names, each as a text expression
-- over its alias, with the tritonX fields its source reads and whether it holds one field as it
-- is (no codes, format or true/false).
CREATE OR REPLACE FUNCTION gdpr._identifying_columns()
RETURNS TABLE (expression text, ord bigint, key text, fields text[], as_is boolean)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH owned AS (
        SELECT pg_catalog.format('%I.%I::text', t.alias, o.key) AS expression, o.value AS spec,
               t.ord, o.key
        FROM gdpr._identifying_tables() AS t
        CROSS JOIN LATERAL pg_catalog.jsonb_each(
            CASE WHEN pg_catalog.jsonb_typeof(t.columns) = 'object' THEN t.columns
                 ELSE '{}' END) AS o
    ),
    classified AS (
        SELECT w.expression, w.ord, w.key,
               CASE WHEN pg_catalog.jsonb_typeof(w.spec) = 'string' THEN ARRAY[w.spec #>> '{}']
                    WHEN w.spec ? 'field' THEN ARRAY[w.spec ->> 'field']
                    ELSE ARRAY(SELECT pg_catalog.jsonb_array_elements_text(
                                   coalesce(w.spec -> 'join', w.spec -> 'first_of', '[]')))
               END AS fields,
               pg_catalog.jsonb_typeof(w.spec) = 'string'
                   OR (w.spec ? 'field' AND NOT (w.spec ?| ARRAY['codes', 'format', 'true',
                                                                 'false'])) AS as_is
        FROM owned AS w
    )
    SELECT * FROM classified
$$;

-- Where the mapped customer's identifying values are, from the active mapping: an expression
-- per value over the customer row `c` and its related rows (`r1`, `r2`, ...:
-- gdpr._identifying_tables()), and the joins that reach those rows. A value is a column whose
-- source is the e-mail, phone, mobile or loyalty card, or a join or first_of of fields one of
-- which identifies (a full-name column, a street column with the house number, phone2 = first
-- of mobile and phone); names kept in columns of their own (first_name, infix, last_name) are
-- combined first + last and first + infix + last, an address kept in columns of its own
-- postcode + house number (+ addition), wherever the columns are (customer or related row).
CREATE OR REPLACE FUNCTION gdpr._identifying_sql(OUT expressions text[], OUT joins text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped record;
    plain  jsonb := '{}';  -- field -> expression of the first column holding it as it is
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    joins := '';
    expressions := '{}';
    IF mapped.relation IS NULL THEN
        RETURN;
    END IF;
    SELECT coalesce(pg_catalog.string_agg(t.join_sql, '' ORDER BY t.ord), '')
    INTO joins
    FROM gdpr._identifying_tables() AS t;
    SELECT coalesce(pg_catalog.jsonb_object_agg(f.field, f.expression), '{}')
    INTO plain
    FROM (SELECT DISTINCT ON (k.fields[1]) k.fields[1] AS field, k.expression
          FROM gdpr._identifying_columns() AS k WHERE k.as_is
          ORDER BY k.fields[1], k.ord, k.key) AS f;
    expressions := ARRAY(
        SELECT k.expression FROM gdpr._identifying_columns() AS k
        WHERE k.fields && ARRAY['email', 'phone', 'mobile', 'loyalty_card']
           OR (NOT k.as_is AND k.fields && ARRAY['first_name', 'infix', 'last_name', 'postcode',
                                                 'house_number', 'house_number_addition'])
        ORDER BY k.ord, k.key);
    IF plain ? 'first_name' AND plain ? 'last_name' THEN
        expressions := expressions
            || pg_catalog.format('pg_catalog.concat(%s, %s)', plain ->> 'first_name',
                                 plain ->> 'last_name')
            || pg_catalog.format('pg_catalog.concat(%s, %s, %s)', plain ->> 'first_name',
                                 coalesce(plain ->> 'infix', 'NULL'), plain ->> 'last_name');
    END IF;
    IF plain ? 'postcode' AND plain ? 'house_number' THEN
        expressions := expressions
            || pg_catalog.format('pg_catalog.concat(%s, %s)', plain ->> 'postcode',
                                 plain ->> 'house_number')
            || pg_catalog.format('pg_catalog.concat(%s, %s, %s)', plain ->> 'postcode',
                                 plain ->> 'house_number',
                                 coalesce(plain ->> 'house_number_addition', 'NULL'));
    END IF;
END
$$;

-- The digests of the identifying values of the mapped customer p_customer_key (its key as text)
-- where the mapping places them (gdpr._identifying_sql): its customer row and its related rows
-- (the address it points to, a row of the customer's that points to it). Empty for a key of
-- nobody. Runs as the owner, who alone reads the key.
DROP FUNCTION IF EXISTS gdpr._subject_digests(bigint);
CREATE OR REPLACE FUNCTION gdpr._subject_digests(p_customer_key text)
RETURNS text[]
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mapped record;
    found  text[];
    pads   record;
    place  record := gdpr._identifying_sql();
BEGIN
    SELECT * INTO mapped FROM sync.mapped_customer();
    IF mapped.relation IS NULL OR pg_catalog.cardinality(place.expressions) = 0 THEN
        RETURN '{}';
    END IF;
    SELECT k.inner_pad, k.outer_pad INTO pads FROM gdpr.proof_key AS k;
    EXECUTE pg_catalog.format('SELECT ARRAY[%s] FROM %s AS c%s WHERE c.%I = $1::%s',
                              pg_catalog.array_to_string(place.expressions, ', '),
                              mapped.relation, place.joins, mapped.key_column, mapped.key_type)
        INTO found USING p_customer_key;
    RETURN ARRAY(
        SELECT DISTINCT gdpr._hmac(pads.inner_pad, pads.outer_pad, gdpr._normalised(v))
        FROM pg_catalog.unnest(found) AS v
        WHERE pg_catalog.length(gdpr._normalised(v)) >= 6
        ORDER BY 1);
END
$$;
REVOKE ALL ON FUNCTION gdpr._subject_digests(text) FROM PUBLIC;

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
