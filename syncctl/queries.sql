-- The SQL the Python side runs, in named blocks ("-- name: <name>"). Parameters are psycopg
-- placeholders. Logic lives in the database; these are thin calls into it.

-- name: cursor_read
SELECT position FROM sync.cursor WHERE source = %(source)s;

-- name: cursor_ensure
INSERT INTO sync.cursor (source) VALUES (%(source)s) ON CONFLICT (source) DO NOTHING;

-- name: cursor_lock
SELECT position FROM sync.cursor WHERE source = %(source)s FOR UPDATE;

-- name: cursor_advance
UPDATE sync.cursor
SET position = %(position)s,
    last_seq = coalesce(%(last_seq)s, last_seq),
    last_occurred_at = coalesce(%(last_occurred_at)s, last_occurred_at),
    pages = pages + 1,
    updated_at = now()
WHERE source = %(source)s;

-- name: copy_inbox
COPY sync.inbox (source, seq, event_id, event_type, customer_number, version, occurred_at, payload)
FROM STDIN (FORMAT BINARY);

-- name: copy_inbox_raw
-- records jsonb cannot hold (U+0000): their JSON text as received, no payload
COPY sync.inbox (source, seq, event_id, event_type, customer_number, version, occurred_at, raw)
FROM STDIN (FORMAT BINARY);

-- name: last_apply
SELECT current_setting('syncctl.last_apply', true);

-- name: reset_last_apply
SELECT set_config('syncctl.last_apply', '', true);

-- name: status_cursors
SELECT source, position, last_seq, last_occurred_at, updated_at,
       extract(epoch FROM now() - last_occurred_at)::float8 AS lag_seconds
FROM sync.cursor ORDER BY source;

-- name: status_counts
SELECT
    (SELECT count(*) FROM shop.customer WHERE customer_number IS NOT NULL) AS linked_customers,
    (SELECT count(*) FROM sync.dead_letter) AS dead_letters,
    (SELECT count(*) FROM sync.inbox_status WHERE state = 'pending') AS pending;

-- name: status_payloads
-- the inbox rows that still hold tritonX's snapshot (sync.inbox_payload_held covers them)
SELECT payloads, oldest_received_at FROM sync.payload_holding;

-- name: audit_effects
SELECT action, outcome, CASE WHEN action = 'customer.upserted' THEN reason END AS reason,
       count(*) AS events
FROM sync.audit
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;

-- name: claim_refresh_requests
SELECT customer_number, requested_at, attempts FROM sync.claim_refresh_requests(%(limit)s);

-- name: refresh_done
SELECT sync.refresh_done(%(number)s, %(requested_at)s);

-- name: release_refresh
SELECT sync.release_refresh(%(number)s);

-- name: requeue_refresh
SELECT sync.requeue_refresh(%(number)s, %(attempts)s, %(error)s);

-- name: claim_outbox
SELECT id, customer_number, event_type, idempotency_key, payload, attempts
FROM sync.claim_outbox(%(limit)s);

-- name: outbox_delivered
SELECT sync.outbox_delivered(%(id)s);

-- name: outbox_failed
SELECT sync.outbox_failed(%(id)s, %(error)s, %(permanent)s, make_interval(secs => %(retry_in)s));

-- name: outbox_list
SELECT id, customer_number, event_type, state, attempts, next_attempt_at, last_error, created_at,
       delivered_at
FROM sync.outbox
WHERE %(state)s::text IS NULL OR state = %(state)s
ORDER BY id DESC
LIMIT %(limit)s;

-- name: outbox_retry
SELECT sync.retry_outbox(%(id)s);

-- name: leader_try
SELECT pg_try_advisory_lock(7343, 1);

-- name: leader_release
SELECT pg_advisory_unlock(7343, 1);

-- name: show_feed_state
-- on the leader's session: pg_stat_activity (and so `syncctl status`) shows the feed's state
SELECT pg_catalog.set_config('application_name', 'syncctl run: feed ' || %(state)s, false);

-- name: leader_info
SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.classid = 7343 AND l.objid = 1 AND l.granted;

-- name: status_queues
SELECT
    (SELECT count(*) FROM sync.outbox WHERE state = 'pending') AS outbox_pending,
    (SELECT count(*) FROM sync.outbox WHERE state = 'dead') AS outbox_dead,
    (SELECT count(*) FROM sync.refresh_request) AS refresh_queue,
    (SELECT max(updated_at) FROM sync.cursor) AS last_pull;

-- name: link_anomalies
SELECT anomaly, customers FROM sync.link_anomaly;

-- name: adoptable
SELECT local_id, linked_id, customer_number FROM sync.adoptable_customer ORDER BY local_id;

-- name: record_adoption_conflicts
SELECT sync.record_adoption_conflicts();

-- name: adopt
SELECT sync.adopt_local_customer(%(local_id)s, %(linked_id)s, %(actor)s);

-- name: misdirected_links
SELECT c.customer_number, r.survivor_number
FROM shop.customer c JOIN sync.redirect r ON r.old_number = c.customer_number
ORDER BY c.id;

-- name: repair_redirected_link
SELECT sync.repair_redirected_link(%(old)s, %(actor)s) ->> 'outcome';

-- name: login
SELECT customer_id, status, customer_number FROM sync.login(%(number)s, %(email)s);

-- name: bootstrap_counts
SELECT count(*) FILTER (WHERE customer_number IS NOT NULL) AS linked,
       count(*) FILTER (WHERE customer_number IS NULL) AS unlinked,
       (SELECT count(*) FROM sync.link_conflict WHERE resolved_at IS NULL) AS conflicts
FROM shop.customer;

-- name: sample_linked_numbers
SELECT customer_number FROM shop.customer
WHERE customer_number IS NOT NULL
ORDER BY random()
LIMIT %(limit)s;

-- name: drop_payloads
SELECT sync.drop_payloads(%(older_than)s, %(limit)s);
