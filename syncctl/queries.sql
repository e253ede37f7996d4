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

-- name: audit_effects
SELECT action, outcome, CASE WHEN action = 'customer.upserted' THEN reason END AS reason,
       count(*) AS events
FROM sync.audit
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
