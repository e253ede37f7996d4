-- The SQL the benchmark runs besides syncctl's own (syncctl/queries.sql), in named blocks
-- ("-- name: <name>"). The baselines live here: a bare set-based upsert from a staging table
-- and the statements of a per-event client.

-- name: staging_create
-- the inbox's shape without its trigger: what a bare bulk loader would stage into
CREATE TABLE public.staged_inbox (LIKE sync.inbox INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES);

-- name: staging_copy
COPY public.staged_inbox (source, seq, event_id, event_type, customer_number, version, occurred_at, payload)
FROM STDIN (FORMAT BINARY);

-- name: bare_upsert
-- baseline (a): no validation, no dedupe, no version guard, no tombstone/redirect check, no audit
INSERT INTO shop.customer AS c (
    customer_number, email, first_name, infix, last_name, gender, birth_date, phone, mobile,
    street, house_number, house_number_addition, postcode, city, country_code, loyalty_card,
    home_store, customer_group, newsletter_opt_in, blocked, tritonx_updated_at, tritonx_version)
SELECT s.customer_number, p.email, p.first_name, p.infix, p.last_name, p.gender, p.birth_date,
       p.phone, p.mobile, p.street, p.house_number, p.house_number_addition, p.postcode, p.city,
       p.country_code, p.loyalty_card, p.home_store, p.customer_group,
       coalesce(p.newsletter_opt_in, false), coalesce(p.blocked, false), p.updated_at, s.version
FROM public.staged_inbox AS s
CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(
    NULL::sync.customer_snapshot, s.payload -> 'customer') AS p
WHERE s.id BETWEEN %(first)s AND %(last)s
ON CONFLICT (customer_number) DO UPDATE SET
    email = excluded.email, first_name = excluded.first_name, infix = excluded.infix,
    last_name = excluded.last_name, gender = excluded.gender, birth_date = excluded.birth_date,
    phone = excluded.phone, mobile = excluded.mobile, street = excluded.street,
    house_number = excluded.house_number, house_number_addition = excluded.house_number_addition,
    postcode = excluded.postcode, city = excluded.city, country_code = excluded.country_code,
    loyalty_card = excluded.loyalty_card, home_store = excluded.home_store,
    customer_group = excluded.customer_group, newsletter_opt_in = excluded.newsletter_opt_in,
    blocked = excluded.blocked, tritonx_updated_at = excluded.tritonx_updated_at,
    tritonx_version = excluded.tritonx_version;

-- name: client_select
SELECT id, tritonx_version AS version FROM shop.customer WHERE customer_number = %(customer_number)s;

-- name: client_update
UPDATE shop.customer SET
    email = %(email)s, first_name = %(first_name)s, infix = %(infix)s, last_name = %(last_name)s,
    gender = %(gender)s, birth_date = %(birth_date)s, phone = %(phone)s, mobile = %(mobile)s,
    street = %(street)s, house_number = %(house_number)s,
    house_number_addition = %(house_number_addition)s, postcode = %(postcode)s,
    city = %(city)s, country_code = %(country_code)s, loyalty_card = %(loyalty_card)s,
    home_store = %(home_store)s, customer_group = %(customer_group)s,
    newsletter_opt_in = %(newsletter_opt_in)s, blocked = %(blocked)s,
    tritonx_updated_at = %(updated_at)s, tritonx_version = %(version)s
WHERE id = %(id)s;

-- name: client_insert
INSERT INTO shop.customer (
    customer_number, email, first_name, infix, last_name, gender, birth_date, phone, mobile,
    street, house_number, house_number_addition, postcode, city, country_code, loyalty_card,
    home_store, customer_group, newsletter_opt_in, blocked, tritonx_updated_at, tritonx_version)
VALUES (
    %(customer_number)s, %(email)s, %(first_name)s, %(infix)s, %(last_name)s, %(gender)s,
    %(birth_date)s, %(phone)s, %(mobile)s, %(street)s, %(house_number)s,
    %(house_number_addition)s, %(postcode)s, %(city)s, %(country_code)s, %(loyalty_card)s,
    %(home_store)s, %(customer_group)s, %(newsletter_opt_in)s, %(blocked)s, %(updated_at)s,
    %(version)s);

-- The boutique's baselines (tests/shops/boutique.sql, mapped by tests/shops/boutique.toml): the
-- same work on crm.customer and the crm."CustomerAddress" row it points to, with the mapping's
-- transforms written inline. The boutique keeps no version column (its mapping keeps the version
-- in sync.customer_link), so neither the bare upsert nor the client has a version to read or
-- write.

-- name: boutique_bare_upsert
-- baseline (a): no validation, no dedupe, no version guard or link row, no tombstone/redirect
-- check, no audit; an existing customer's address updated in place, a new one's created
WITH src AS (
    SELECT s.customer_number AS number, p.email,
           coalesce(NULLIF(concat_ws(' ', NULLIF(btrim(p.first_name), ''),
                                     NULLIF(btrim(p.infix), ''), NULLIF(btrim(p.last_name), '')),
                           ''), '(unknown)') AS full_name,
           CASE WHEN p.gender IS NULL THEN NULL WHEN p.gender = 'M' THEN 'm'
                WHEN p.gender = 'F' THEN 'f' ELSE 'u' END AS sex,
           p.birth_date AS birthday, coalesce(p.mobile, p.phone) AS phone,
           CASE WHEN p.blocked THEN 1 ELSE 0 END AS is_blocked,
           CASE WHEN p.newsletter_opt_in THEN 'J' ELSE 'N' END AS newsletter,
           NULLIF(concat_ws(' ', NULLIF(btrim(p.street), ''), p.house_number,
                            NULLIF(btrim(p.house_number_addition), '')), '') AS street,
           p.postcode AS zip, p.city, p.country_code AS country
    FROM public.staged_inbox AS s
    CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(
        NULL::sync.customer_snapshot, s.payload -> 'customer') AS p
    WHERE s.id BETWEEN %(first)s AND %(last)s
), cur AS MATERIALIZED (
    SELECT src.*, c.address_id,
           CASE WHEN c.customer_uuid IS NULL
                THEN nextval('crm."CustomerAddress_id_seq"'::regclass) END AS new_address
    FROM src LEFT JOIN crm.customer AS c ON c.tx_ref = src.number
), address_updated AS (
    UPDATE crm."CustomerAddress" AS a
       SET street = cur.street, zip = cur.zip, city = cur.city, country = cur.country
      FROM cur WHERE a.id = cur.address_id
), address_created AS (
    INSERT INTO crm."CustomerAddress" (id, street, zip, city, country, created_by)
    OVERRIDING SYSTEM VALUE
    SELECT cur.new_address, cur.street, cur.zip, cur.city, cur.country, 'syncctl'
    FROM cur WHERE cur.new_address IS NOT NULL
)
INSERT INTO crm.customer AS c (
    customer_uuid, tx_ref, full_name, email, sex, birthday, phone, is_blocked, newsletter,
    segment, shop_id, address_id)
SELECT gen_random_uuid(), cur.number, cur.full_name, cur.email, cur.sex, cur.birthday, cur.phone,
       cur.is_blocked, cur.newsletter, 'retail', 1, cur.new_address
FROM cur
ON CONFLICT (tx_ref) DO UPDATE SET
    full_name = excluded.full_name, email = excluded.email, sex = excluded.sex,
    birthday = excluded.birthday, phone = excluded.phone, is_blocked = excluded.is_blocked,
    newsletter = excluded.newsletter;

-- name: boutique_client_select
SELECT customer_uuid AS id, NULL::integer AS version, address_id
FROM crm.customer WHERE tx_ref = %(customer_number)s;

-- name: boutique_client_update
WITH address_updated AS (
    UPDATE crm."CustomerAddress" SET
        street = NULLIF(concat_ws(' ', NULLIF(btrim(%(street)s::text), ''), %(house_number)s::int,
                                  NULLIF(btrim(%(house_number_addition)s::text), '')), ''),
        zip = %(postcode)s, city = %(city)s, country = %(country_code)s
    WHERE id = %(address_id)s
)
UPDATE crm.customer SET
    full_name = coalesce(NULLIF(concat_ws(' ', NULLIF(btrim(%(first_name)s::text), ''),
                                          NULLIF(btrim(%(infix)s::text), ''),
                                          NULLIF(btrim(%(last_name)s::text), '')), ''),
                         '(unknown)'),
    email = %(email)s,
    sex = CASE WHEN %(gender)s::text IS NULL THEN NULL WHEN %(gender)s::text = 'M' THEN 'm'
               WHEN %(gender)s::text = 'F' THEN 'f' ELSE 'u' END,
    birthday = %(birth_date)s, phone = coalesce(%(mobile)s::text, %(phone)s::text),
    is_blocked = CASE WHEN %(blocked)s::boolean THEN 1 ELSE 0 END,
    newsletter = CASE WHEN %(newsletter_opt_in)s::boolean THEN 'J' ELSE 'N' END
WHERE customer_uuid = %(id)s;

-- name: boutique_client_insert
WITH address AS (
    INSERT INTO crm."CustomerAddress" (street, zip, city, country, created_by)
    VALUES (NULLIF(concat_ws(' ', NULLIF(btrim(%(street)s::text), ''), %(house_number)s::int,
                             NULLIF(btrim(%(house_number_addition)s::text), '')), ''),
            %(postcode)s, %(city)s, %(country_code)s, 'syncctl')
    RETURNING id
)
INSERT INTO crm.customer (
    customer_uuid, tx_ref, full_name, email, sex, birthday, phone, is_blocked, newsletter,
    segment, shop_id, address_id)
SELECT gen_random_uuid(), %(customer_number)s,
       coalesce(NULLIF(concat_ws(' ', NULLIF(btrim(%(first_name)s::text), ''),
                                 NULLIF(btrim(%(infix)s::text), ''),
                                 NULLIF(btrim(%(last_name)s::text), '')), ''), '(unknown)'),
       %(email)s,
       CASE WHEN %(gender)s::text IS NULL THEN NULL WHEN %(gender)s::text = 'M' THEN 'm'
            WHEN %(gender)s::text = 'F' THEN 'f' ELSE 'u' END,
       %(birth_date)s, coalesce(%(mobile)s::text, %(phone)s::text),
       CASE WHEN %(blocked)s::boolean THEN 1 ELSE 0 END,
       CASE WHEN %(newsletter_opt_in)s::boolean THEN 'J' ELSE 'N' END,
       'retail', 1, address.id
FROM address;

-- name: apply_outcomes
SELECT outcome || ':' || coalesce(reason, ''), count(*) FROM sync.audit GROUP BY 1 ORDER BY 1;

-- name: customers
SELECT count(*) FROM shop.customer;

-- name: apply_upserts_body
-- the statement the inbox trigger runs for a batch of upserts, to EXPLAIN it by itself
SELECT p.prosrc FROM pg_catalog.pg_proc AS p
WHERE p.oid = 'sync._apply_upserts(bigint, bigint, bigint[])'::pg_catalog.regprocedure;

-- name: write_customers_body
-- the write generated from the active mapping, to EXPLAIN its statement by itself
SELECT p.prosrc FROM pg_catalog.pg_proc AS p
WHERE p.oid = 'syncmap.write_customers(text[], integer[], jsonb[], boolean[])'::pg_catalog.regprocedure;

-- name: write_customers_arrays
-- the arrays sync._apply_upserts passes it for a page of upserts (as array literals)
SELECT pg_catalog.array_agg(i.customer_number ORDER BY i.id)::text,
       pg_catalog.array_agg(i.version ORDER BY i.id)::text,
       pg_catalog.array_agg(i.payload -> 'customer' ORDER BY i.id)::text,
       pg_catalog.array_agg(m.customer_key IS NULL ORDER BY i.id)::text
FROM sync.inbox AS i
LEFT JOIN syncmap.customer_map AS m ON m.customer_number = i.customer_number
WHERE i.id BETWEEN %(first)s AND %(last)s;

-- name: retention_customers
-- N customers; every other one last logged in long ago (its wish list has expired under
-- 'wishes'), the rest recently.
INSERT INTO shop.customer (customer_number, email, first_name, last_name, postcode, city,
                           created_at, last_login_at)
SELECT 'TX' || lpad(g::text, 8, '0'), 'c' || g || '@example.nl', 'Anna', 'Berg', '1015CJ',
       'Amsterdam', %(long_ago)s, CASE WHEN g %% 2 = 0 THEN %(long_ago)s ELSE %(recently)s END
FROM generate_series(1, %(customers)s) AS g;

-- name: retention_orders
INSERT INTO shop.orders (customer_id, order_number, placed_at, delivery_name, contact_email)
SELECT c.id, 'O-' || c.id || '-' || k, %(long_ago)s, 'Anna Berg', c.email
FROM shop.customer AS c, generate_series(1, 2) AS k;

-- name: retention_wishlists
INSERT INTO shop.wishlist (customer_id, sku, note)
SELECT c.id, 'SKU-' || k, 'voor Anna'
FROM shop.customer AS c, generate_series(1, 2) AS k;

-- name: retention_policies
-- 'wishes' covers wish lists and orders for 30 days; 'bookkeeping' keeps the orders for 7 years,
-- so only the wish lists of the expired half go (a category shared by two policies).
SELECT gdpr.create_policy('wishes', 'Wishes', 'Wish lists', 'contract', '30 days',
                          'last_activity', ARRAY['shop.wishlist', 'shop.orders'], 'all', NULL,
                          NULL, 'most_restrictive', 'bench'),
       gdpr.create_policy('bookkeeping', 'Bookkeeping', 'Orders', 'legal_obligation',
                          '7 years', 'last_order', ARRAY['shop.orders'], 'all', NULL, NULL,
                          'most_restrictive', 'bench'),
       gdpr.activate_policy('wishes', 'bench', %(long_ago)s),
       gdpr.activate_policy('bookkeeping', 'bench', %(long_ago)s);

-- name: retention_bare_batch
-- The same batch of customers, by hand: delete the expired wish lists, nothing else.
WITH window_ AS (
    SELECT c.id, c.created_at, c.last_login_at FROM shop.customer AS c
    WHERE c.id > %(after)s ORDER BY c.id LIMIT %(limit)s
), gone AS (
    DELETE FROM shop.wishlist AS w USING window_ AS c
    WHERE w.customer_id = c.id
      AND coalesce(c.last_login_at, c.created_at) + interval '30 days' <= %(now)s
    RETURNING w.customer_id
)
SELECT (SELECT max(id) FROM window_), (SELECT count(DISTINCT customer_id) FROM gone);

-- name: retention_client_customer
SELECT created_at, last_login_at FROM shop.customer WHERE id = %(id)s;

-- name: retention_client_delete
DELETE FROM shop.wishlist WHERE customer_id = %(id)s;

-- name: retention_client_audit
INSERT INTO sync.audit (actor, action, outcome, customer_id, counts)
VALUES ('bench', 'gdpr.retention_purge', 'applied', %(id)s,
        jsonb_build_object('shop.wishlist', %(rows)s::int));

-- name: erasure_orders
-- Two orders a customer, delivered to and confirmed at the customer's own name and e-mail.
INSERT INTO shop.orders (customer_id, order_number, placed_at, delivery_name, contact_email)
SELECT c.id, 'O-' || c.id || '-' || k, now() - interval '30 days',
       concat_ws(' ', c.first_name, c.infix, c.last_name), c.email
FROM shop.customer AS c, generate_series(1, 2) AS k;

-- name: erasure_subjects
-- The sample: evenly spread over the customers.
SELECT c.id FROM shop.customer AS c
WHERE c.id %% greatest(%(customers)s / %(sample)s, 1) = 0
ORDER BY c.id LIMIT %(sample)s;

-- name: erasure_anonymise
SELECT sync.anonymise_from_backoffice(%(id)s, 'ERASURE', 'bench');

-- name: erasure_digests
SELECT digests FROM gdpr.erasure_request WHERE id = %(request)s;

-- name: erasure_proof_key
-- the install's HMAC key as its inner pad (the benchmark runs as the owner)
SELECT inner_pad FROM gdpr.proof_key;

-- name: erasure_scopes
SELECT qualified_name, columns, is_json, rows_sql FROM gdpr._residue_scopes(%(id)s::text);

-- name: payloads_age
-- every staged event received eight days ago, so all of them are due under a 7-day retention
UPDATE sync.inbox SET received_at = received_at - interval '8 days';

-- name: payloads_bare_batch
-- The same work by hand: NULL the payloads of the next id range, no check that the event was
-- decided or is a dead letter.
WITH window_ AS (
    SELECT i.id FROM sync.inbox AS i
    WHERE i.id > %(after)s AND i.payload IS NOT NULL
    ORDER BY i.id LIMIT %(limit)s
), dropped AS (
    UPDATE sync.inbox AS i SET payload = NULL FROM window_ WHERE i.id = window_.id
    RETURNING i.id
)
SELECT max(id), count(*) FROM dropped;

-- name: payloads_client_candidates
SELECT id, event_id FROM sync.inbox
WHERE payload IS NOT NULL AND received_at < now() - interval '7 days'
ORDER BY received_at LIMIT %(limit)s;

-- name: payloads_client_decided
SELECT EXISTS (SELECT FROM sync.audit WHERE event_id = %(event_id)s OR inbox_id = %(id)s)
   AND NOT EXISTS (SELECT FROM sync.dead_letter WHERE inbox_id = %(id)s);

-- name: payloads_client_drop
UPDATE sync.inbox SET payload = NULL WHERE id = %(id)s;
