-- Erasure requests: received -> verified -> scheduled -> done | failed, or cancelled before it
-- is done (during a grace period, say). Verification captures the person's identifying values
-- as HMAC-SHA256 digests of their normalised forms under a per-install key (gdpr.proof_key; a
-- stolen digest of a short value cannot be looked up in a dictionary without it), never the
-- values themselves. Execution
-- anonymises the customer with sync.anonymise_from_backoffice (tombstone; the outbound event
-- for tritonX is queued in the same transaction), then searches every text and JSON column of
-- every table of the database for those digests, in every row but those of other customers
-- (gdpr._residue_scopes): the proof of erasure is the number of columns searched and hits
-- (zero, or counts per column), kept in the request; the digests are
-- cleared when the request is done or cancelled. A failure is recorded (attempts, last_error:
-- an SQLSTATE and a reason without data) and can be retried. Audit actor: erasure:<actor>.
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
-- Public API
-- ---------------------------------------------------------------------------------------------

-- Where the residue search looks, a row per table with text or JSON columns: the columns, and a
-- statement selecting them from the rows that may hold the subject's data. A row that belongs
-- to another customer is that customer's data, whatever it shares with the subject (people
-- share names, a household shares an address): the other rows of shop.customer, rows of a
-- customer-linked table whose customer columns point at other customers, and rows of a table
-- with a customer_number column naming another customer or a number merged into one. Searched
-- are the subject's rows, rows of no customer (a guest order, a dead letter whose number did
-- not parse, an unknown number) and every row of any other table. With p_customer_id NULL,
-- every row of every table. Example:
-- SELECT qualified_name, rows_sql FROM gdpr._residue_scopes(42);
CREATE OR REPLACE FUNCTION gdpr._residue_scopes(p_customer_id bigint)
RETURNS TABLE (qualified_name text, columns name[], is_json boolean[], rows_sql text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    own_numbers text[];
BEGIN
    -- the subject's number and the numbers merged into it
    SELECT ARRAY(
        SELECT c.customer_number FROM shop.customer AS c
        WHERE c.id = p_customer_id AND c.customer_number IS NOT NULL
        UNION
        SELECT r.old_number FROM sync.redirect AS r
        JOIN shop.customer AS c ON c.customer_number = r.survivor_number
        WHERE c.id = p_customer_id)
    INTO own_numbers;
    RETURN QUERY
    WITH searched AS (
        SELECT r.oid AS relid,
               pg_catalog.concat_ws('.', n.nspname, r.relname) AS table_name,
               pg_catalog.array_agg(a.attname ORDER BY a.attnum) AS names,
               pg_catalog.array_agg(a.atttypid IN ('json'::pg_catalog.regtype,
                                                   'jsonb'::pg_catalog.regtype)
                                    ORDER BY a.attnum) AS json_flags
        FROM pg_catalog.pg_class AS r
        JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
        JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE r.relkind IN ('r', 'p', 'm')
          AND NOT r.relispartition  -- read through its partitioned parent, each row once
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_(toast|temp)'
          -- what this role may read; and never a table of another owner under row-level
          -- security: its policies would run with this role's rights
          AND pg_catalog.has_table_privilege(r.oid, 'SELECT')
          AND NOT (r.relrowsecurity AND r.relowner <> (SELECT u.oid FROM pg_catalog.pg_roles AS u
                                                        WHERE u.rolname = current_user))
          AND a.atttypid IN ('text'::pg_catalog.regtype, 'varchar'::pg_catalog.regtype,
                             'bpchar'::pg_catalog.regtype, 'json'::pg_catalog.regtype,
                             'jsonb'::pg_catalog.regtype)
        GROUP BY r.oid, n.nspname, r.relname
    ),
    linked AS (
        SELECT l.relation::pg_catalog.oid AS relid,
               pg_catalog.string_agg(pg_catalog.format('t.%I = %s', l.fk_column, p_customer_id),
                                     ' OR ' ORDER BY l.fk_column) AS theirs_or_subjects,
               pg_catalog.string_agg(pg_catalog.format('t.%I IS NULL', l.fk_column),
                                     ' AND ' ORDER BY l.fk_column) AS nobodys
        FROM sync.customer_links() AS l
        GROUP BY l.relation
    ),
    numbered AS (
        SELECT a.attrelid AS relid FROM pg_catalog.pg_attribute AS a
        WHERE a.attname = 'customer_number' AND a.attnum > 0 AND NOT a.attisdropped
          AND a.atttypid IN ('text'::pg_catalog.regtype, 'varchar'::pg_catalog.regtype)
    )
    SELECT s.table_name, s.names, s.json_flags,
           CASE
               WHEN p_customer_id IS NULL THEN pick.cols
               WHEN s.relid = 'shop.customer'::pg_catalog.regclass
                   THEN pg_catalog.format('%s WHERE t.id = %s', pick.cols, p_customer_id)
               WHEN l.relid IS NOT NULL
                   THEN pg_catalog.format('%s WHERE %s OR (%s)', pick.cols,
                                          l.theirs_or_subjects, l.nobodys)
               -- no number, the subject's numbers, numbers of nobody here (each part can take
               -- an index on customer_number; the last reads only the distinct numbers)
               WHEN u.relid IS NOT NULL
                   THEN pg_catalog.format(
                       '%1$s WHERE t.customer_number IS NULL'
                       ' UNION ALL %1$s WHERE t.customer_number = ANY (%3$L::text[])'
                       ' UNION ALL %1$s WHERE t.customer_number IN ('
                       '  SELECT d.n FROM (SELECT DISTINCT u.customer_number AS n FROM %2$s AS u) AS d'
                       '  WHERE d.n <> ALL (%3$L::text[])'
                       '  AND NOT EXISTS (SELECT FROM shop.customer AS o WHERE o.customer_number = d.n)'
                       '  AND NOT EXISTS (SELECT FROM sync.redirect AS r WHERE r.old_number = d.n))',
                       pick.cols, s.relid::pg_catalog.regclass, own_numbers)
               ELSE pick.cols
           END
    FROM searched AS s
    LEFT JOIN linked AS l ON l.relid = s.relid
    LEFT JOIN numbered AS u ON u.relid = s.relid
    CROSS JOIN LATERAL (
        SELECT pg_catalog.format('SELECT %s FROM %s AS t',
                                 pg_catalog.string_agg(pg_catalog.format('t.%I', x.c), ', '
                                                       ORDER BY x.k),
                                 s.relid::pg_catalog.regclass)
        FROM pg_catalog.unnest(s.names) WITH ORDINALITY AS x (c, k)) AS pick (cols)
    ORDER BY s.table_name;
END
$$;

-- Every text and JSON column of every table in the database searched for the digests, in the
-- rows gdpr._residue_scopes(p_customer_id) names (all rows with p_customer_id NULL): (column,
-- rows with a hit), hits only. One scan a table. The digests must be made with the install's
-- key (gdpr._digest, as verification makes them). Example:
-- SELECT * FROM gdpr.residue_search(ARRAY[gdpr._digest('anna@example.nl')], 42);
DROP FUNCTION IF EXISTS gdpr.residue_search(text[]);  -- before it took the customer
CREATE OR REPLACE FUNCTION gdpr.residue_search(p_digests text[], p_customer_id bigint DEFAULT NULL)
RETURNS TABLE (column_name text, hits bigint)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- whether the text $v reveals one of the digests; a text without separators is one word,
    -- whose own digest is all gdpr._text_digests would give (the cheap test most values take)
    reveals text := 'pg_catalog.length($v) >= 6 AND CASE'
        ' WHEN $v OPERATOR(pg_catalog.~) ''[[:space:],;:/|()<>"]'''
        ' THEN EXISTS (SELECT FROM gdpr._text_digests($v, $2, $3) AS d (digest)'
        ' WHERE d.digest = ANY ($1))'
        ' ELSE gdpr._hmac($2, $3, gdpr._normalised($v)) = ANY ($1) END';
    scope  record;
    tests  text;
    counts bigint[];
    pads   record;
BEGIN
    IF p_digests IS NULL OR pg_catalog.cardinality(p_digests) = 0 THEN
        RETURN;
    END IF;
    pads := gdpr._proof_pads();
    FOR scope IN SELECT * FROM gdpr._residue_scopes(p_customer_id) LOOP
        SELECT pg_catalog.string_agg(CASE
            WHEN x.j THEN pg_catalog.format(
                'count(*) FILTER (WHERE EXISTS ('
                ' SELECT FROM pg_catalog.jsonb_path_query(t.%I::jsonb,'
                '   ''strict $.** ? (@.type() == "string")'') AS s (v) WHERE %s))',
                x.c, pg_catalog.replace(reveals, '$v', '(s.v #>> ''{}'')'))
            ELSE pg_catalog.format(
                'count(*) FILTER (WHERE %s)',
                pg_catalog.replace(reveals, '$v', pg_catalog.format('t.%I::text', x.c)))
            END, ', ' ORDER BY x.k)
        INTO tests
        FROM ROWS FROM (pg_catalog.unnest(scope.columns), pg_catalog.unnest(scope.is_json))
            WITH ORDINALITY AS x (c, j, k);
        EXECUTE pg_catalog.format('SELECT ARRAY[%s] FROM (%s) AS t', tests, scope.rows_sql)
            INTO counts USING p_digests, pads.inner_pad, pads.outer_pad;
        RETURN QUERY
            SELECT scope.qualified_name || '.' || x.c, x.n
            FROM ROWS FROM (pg_catalog.unnest(scope.columns), pg_catalog.unnest(counts)) AS x (c, n)
            WHERE x.n > 0;
    END LOOP;
END
$$;

-- The number of columns gdpr.residue_search looks at.
CREATE OR REPLACE FUNCTION gdpr._searchable_columns()
RETURNS integer
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(sum(pg_catalog.cardinality(s.columns)), 0)::integer
    FROM gdpr._residue_scopes(NULL) AS s
$$;

-- Tables holding text or JSON columns that the residue search leaves out, as schema.table: the
-- ones the searching role may not read, and tables of another owner under row-level security
-- (their policies would run with the searching role's rights). The proof names them, so a DBA
-- can grant SELECT to the owner role or search them by hand.
CREATE OR REPLACE FUNCTION gdpr.unsearched_tables()
RETURNS text[]
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.array_agg(DISTINCT pg_catalog.concat_ws('.', n.nspname, r.relname)
                                         ORDER BY pg_catalog.concat_ws('.', n.nspname, r.relname)),
                    '{}')
    FROM pg_catalog.pg_class AS r
    JOIN pg_catalog.pg_namespace AS n ON n.oid = r.relnamespace
    JOIN pg_catalog.pg_attribute AS a
        ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE r.relkind IN ('r', 'p', 'm')
      AND NOT r.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname !~ '^pg_(toast|temp)'
      AND a.atttypid IN ('text'::pg_catalog.regtype, 'varchar'::pg_catalog.regtype,
                         'bpchar'::pg_catalog.regtype, 'json'::pg_catalog.regtype,
                         'jsonb'::pg_catalog.regtype)
      AND (NOT pg_catalog.has_table_privilege(r.oid, 'SELECT')
           OR (r.relrowsecurity AND r.relowner <> (SELECT u.oid FROM pg_catalog.pg_roles AS u
                                                   WHERE u.rolname = current_user)))
$$;

-- Other customers with the subject's e-mail address (normalised as login compares it): the same
-- person under a second customer (a duplicate never merged), or a household sharing an address.
-- Their rows are theirs; the proof of erasure lists their ids so an operator can decide.
CREATE OR REPLACE FUNCTION gdpr._same_email_customers(p_customer_id bigint)
RETURNS bigint[]
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(pg_catalog.array_agg(o.id ORDER BY o.id), '{}')
    FROM shop.customer AS c
    JOIN shop.customer AS o
        ON pg_catalog.lower(pg_catalog.btrim(o.email)) = pg_catalog.lower(pg_catalog.btrim(c.email))
    WHERE c.id = p_customer_id AND o.id <> c.id
$$;

-- Erasure requests without the digests.
CREATE OR REPLACE VIEW gdpr.erasure_overview AS
SELECT e.id, e.customer_id, c.customer_number, e.state, e.received_at, e.verified_at,
       e.scheduled_for, e.finished_at, e.actor, e.attempts, e.last_error, e.residue_hits,
       e.columns_searched, e.residue
FROM gdpr.erasure_request AS e
LEFT JOIN shop.customer AS c ON c.id = e.customer_id;

-- The request, locked; raises SY086 when there is none and SY087 when its state is not one
-- of p_states.
CREATE OR REPLACE FUNCTION gdpr._erasure_request(p_request_id bigint, p_states text[])
RETURNS gdpr.erasure_request
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    request gdpr.erasure_request;
BEGIN
    SELECT * INTO request FROM gdpr.erasure_request AS e WHERE e.id = p_request_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SY086',
            MESSAGE = pg_catalog.format('no erasure request %s', p_request_id);
    END IF;
    IF NOT (request.state = ANY (p_states)) THEN
        RAISE EXCEPTION USING ERRCODE = 'SY087',
            MESSAGE = pg_catalog.format('erasure request %s is %s (needs %s)', p_request_id,
                                        request.state,
                                        pg_catalog.array_to_string(p_states, ' or '));
    END IF;
    RETURN request;
END
$$;

CREATE OR REPLACE FUNCTION gdpr._erasure_actor(p_actor text)
RETURNS text
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.left('erasure:' || gdpr._checked_actor(p_actor), 100)
$$;

-- Receive a request of customer p_customer_id. Returns the request id; SY087 when the
-- customer has an open request already. The shop's erasure functions check the actor (SY023)
-- and p_now (SY026: at most sync._clock_skew() ahead of the database's clock) first.
-- Example: SELECT gdpr.receive_erasure(42, 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.receive_erasure(
    p_customer_id bigint, p_actor text, p_now timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    open_id bigint;
    new_id  bigint;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_time(p_now, 'p_now');
    PERFORM FROM shop.customer AS c WHERE c.id = p_customer_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'SY020',
            MESSAGE = pg_catalog.format('customer id %s does not exist', p_customer_id);
    END IF;
    SELECT e.id INTO open_id FROM gdpr.erasure_request AS e
    WHERE e.customer_id = p_customer_id
      AND e.state IN ('received', 'verified', 'scheduled', 'failed');
    IF open_id IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'SY087',
            MESSAGE = pg_catalog.format('customer id %s has open erasure request %s',
                                        p_customer_id, open_id);
    END IF;
    INSERT INTO gdpr.erasure_request (customer_id, received_at, actor)
    VALUES (p_customer_id, p_now, p_actor)
    RETURNING id INTO new_id;
    PERFORM gdpr._audit(gdpr._erasure_actor(p_actor), 'erasure.received', p_customer_id, NULL,
                        pg_catalog.format('request %s', new_id));
    RETURN new_id;
END
$$;

-- The person's identity was checked: capture the digests of their values.
-- Example: SELECT gdpr.verify_erasure(7, 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.verify_erasure(
    p_request_id bigint, p_actor text, p_now timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    request gdpr.erasure_request;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_time(p_now, 'p_now');
    request := gdpr._erasure_request(p_request_id, ARRAY['received']);
    UPDATE gdpr.erasure_request AS e
    SET state = 'verified', verified_at = p_now,
        digests = gdpr._subject_digests(request.customer_id)
    WHERE e.id = p_request_id;
    PERFORM gdpr._audit(gdpr._erasure_actor(p_actor), 'erasure.verified', request.customer_id,
                        NULL, pg_catalog.format('request %s', p_request_id));
END
$$;

-- Schedule a verified request for p_now + p_grace (a cancellation window).
-- Example: SELECT gdpr.schedule_erasure(7, 'backoffice:op-17', '14 days');
CREATE OR REPLACE FUNCTION gdpr.schedule_erasure(
    p_request_id bigint, p_actor text, p_grace interval DEFAULT '0',
    p_now timestamptz DEFAULT now())
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    request gdpr.erasure_request;
    due     timestamptz := p_now + coalesce(p_grace, '0');
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_time(p_now, 'p_now');
    request := gdpr._erasure_request(p_request_id, ARRAY['verified']);
    UPDATE gdpr.erasure_request AS e SET state = 'scheduled', scheduled_for = due
    WHERE e.id = p_request_id;
    PERFORM gdpr._audit(gdpr._erasure_actor(p_actor), 'erasure.scheduled', request.customer_id,
                        NULL, pg_catalog.format('request %s due %s', p_request_id, due));
    RETURN due;
END
$$;

-- Cancel a request that is not done; its digests go.
-- Example: SELECT gdpr.cancel_erasure(7, 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.cancel_erasure(
    p_request_id bigint, p_actor text, p_now timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    request gdpr.erasure_request;
BEGIN
    PERFORM gdpr._checked_actor(p_actor);
    PERFORM sync._checked_time(p_now, 'p_now');
    request := gdpr._erasure_request(
        p_request_id, ARRAY['received', 'verified', 'scheduled', 'failed']);
    UPDATE gdpr.erasure_request AS e
    SET state = 'cancelled', finished_at = p_now, digests = NULL
    WHERE e.id = p_request_id;
    PERFORM gdpr._audit(gdpr._erasure_actor(p_actor), 'erasure.cancelled', request.customer_id,
                        NULL, pg_catalog.format('request %s', p_request_id));
END
$$;

-- Execute a scheduled request that is due (or retry a failed one): anonymise, then search for
-- residue in the rows that may hold the subject's data (gdpr._residue_scopes). Returns the
-- proof: {"request", "state", "residue_hits", "columns_searched", "residue": {column: rows},
-- "counts", "outbox_id", "same_email_customers": [ids of other customers with the same e-mail,
-- found before anonymising], "tables_not_searched": [tables this role could not search],
-- "error"}. A failure is recorded, not raised.
-- Example: SELECT gdpr.execute_erasure(7, 'backoffice:op-17');
CREATE OR REPLACE FUNCTION gdpr.execute_erasure(
    p_request_id bigint, p_actor text, p_now timestamptz DEFAULT now())
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    request  gdpr.erasure_request := gdpr._erasure_request(
        p_request_id, ARRAY['scheduled', 'failed']);
    actor    text := gdpr._erasure_actor(p_actor);
    number   text;
    scrubbed record;
    pending  boolean;
    result   jsonb := '{}';
    leftover jsonb;
    hits     bigint;
    searched integer;
    problem  text;
    sharing  bigint[] := '{}';
    skipped  text[] := gdpr.unsearched_tables();
BEGIN
    IF request.scheduled_for > p_now THEN
        RAISE EXCEPTION USING ERRCODE = 'SY087',
            MESSAGE = pg_catalog.format('erasure request %s is not due before %s',
                                        p_request_id, request.scheduled_for);
    END IF;
    BEGIN
        SELECT c.customer_number INTO number
        FROM shop.customer AS c WHERE c.id = request.customer_id FOR UPDATE;
        -- anonymised already (an earlier attempt, tritonX, the back office): search only
        scrubbed := sync._scrub_sql('shop.customer'::pg_catalog.regclass, 'id', NULL);
        EXECUTE pg_catalog.format('SELECT EXISTS (SELECT FROM shop.customer AS t '
                                  'WHERE t.id = $1 AND (%s))', scrubbed.differs)
            INTO pending USING request.customer_id;
        IF pending AND NOT EXISTS (SELECT FROM sync.tombstone AS t
                                   WHERE t.customer_number = number) THEN
            sharing := gdpr._same_email_customers(request.customer_id);
            PERFORM pg_catalog.set_config('gdpr.consent_source', 'erasure', true);
            result := sync.anonymise_from_backoffice(request.customer_id, 'ERASURE', actor);
            PERFORM pg_catalog.set_config('gdpr.consent_source', '', true);
        END IF;
        SELECT coalesce(pg_catalog.jsonb_object_agg(r.column_name, r.hits), '{}'),
               coalesce(sum(r.hits), 0)
        INTO leftover, hits
        FROM gdpr.residue_search(request.digests, request.customer_id) AS r;
        searched := gdpr._searchable_columns();
        IF hits > 0 THEN
            problem := pg_catalog.format('residue found in %s column(s): %s',
                (SELECT count(*) FROM pg_catalog.jsonb_object_keys(leftover)),
                (SELECT pg_catalog.string_agg(k, ', ' ORDER BY k)
                 FROM pg_catalog.jsonb_object_keys(leftover) AS k));
        END IF;
    EXCEPTION WHEN OTHERS THEN
        -- an SY reason holds ids and codes only; other messages may quote values
        problem := CASE WHEN SQLSTATE LIKE 'SY%' THEN SQLSTATE || ': ' || SQLERRM
                        ELSE 'SQLSTATE ' || SQLSTATE END;
        leftover := NULL;
        hits := NULL;
        searched := NULL;
        result := '{}';
    END;
    UPDATE gdpr.erasure_request AS e
    SET state = CASE WHEN problem IS NULL THEN 'done' ELSE 'failed' END,
        attempts = e.attempts + 1,
        last_error = pg_catalog.left(problem, 500),
        finished_at = CASE WHEN problem IS NULL THEN p_now END,
        digests = CASE WHEN problem IS NULL THEN NULL ELSE e.digests END,
        residue_hits = hits,
        residue = leftover,
        columns_searched = searched,
        outbox_id = coalesce((result ->> 'outbox_id')::bigint, e.outbox_id)
    WHERE e.id = p_request_id;
    INSERT INTO sync.audit (actor, action, outcome, customer_number, customer_id, counts, reason)
    VALUES (actor, 'erasure.executed', CASE WHEN problem IS NULL THEN 'applied' ELSE 'failed' END,
            number, request.customer_id,
            pg_catalog.jsonb_build_object('residue_hits', hits, 'columns_searched', searched,
                                          'same_email_customers',
                                          pg_catalog.cardinality(sharing)),
            coalesce(pg_catalog.left(problem, 500), pg_catalog.format('request %s', p_request_id)));
    RETURN pg_catalog.jsonb_build_object(
        'request', p_request_id,
        'state', CASE WHEN problem IS NULL THEN 'done' ELSE 'failed' END,
        'residue_hits', hits, 'columns_searched', searched, 'residue', leftover,
        'counts', coalesce(result -> 'counts', '{}'), 'outbox_id', result -> 'outbox_id',
        'same_email_customers', pg_catalog.to_jsonb(sharing),
        'tables_not_searched', pg_catalog.to_jsonb(skipped), 'error', problem);
END
$$;

-- Execute every scheduled request that is due at p_now (the daily job). Returns how many were
-- done and failed: {"done": n, "failed": n}.
-- Example: SELECT gdpr.execute_due_erasures('retention', now());
CREATE OR REPLACE FUNCTION gdpr.execute_due_erasures(
    p_actor text DEFAULT 'scheduler', p_now timestamptz DEFAULT now())
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    due     bigint;
    outcome jsonb;
    done    integer := 0;
    failed  integer := 0;
BEGIN
    PERFORM sync._checked_job_time(p_now);
    FOR due IN
        SELECT e.id FROM gdpr.erasure_request AS e
        WHERE e.state = 'scheduled' AND e.scheduled_for <= p_now
        ORDER BY e.scheduled_for, e.id
    LOOP
        outcome := gdpr.execute_erasure(due, p_actor, p_now);
        IF outcome ->> 'state' = 'done' THEN
            done := done + 1;
        ELSE
            failed := failed + 1;
        END IF;
    END LOOP;
    RETURN pg_catalog.jsonb_build_object('done', done, 'failed', failed);
END
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
