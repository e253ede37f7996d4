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
SELECT id, tritonx_version FROM shop.customer WHERE customer_number = %(customer_number)s;

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

-- name: apply_outcomes
SELECT outcome || ':' || coalesce(reason, ''), count(*) FROM sync.audit GROUP BY 1 ORDER BY 1;

-- name: customers
SELECT count(*) FROM shop.customer;

-- name: apply_upserts_body
-- the statement the inbox trigger runs for a batch of upserts, to EXPLAIN it by itself
SELECT p.prosrc FROM pg_catalog.pg_proc AS p
WHERE p.oid = 'sync._apply_upserts(bigint, bigint, bigint[])'::pg_catalog.regprocedure;

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
SELECT qualified_name, columns, is_json, rows_sql FROM gdpr._residue_scopes(%(id)s);

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
