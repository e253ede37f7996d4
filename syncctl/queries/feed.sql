-- The change feed: the cursor, staging a page through the session's page into sync.inbox
-- (sql/31_feed_page.sql; the inbox trigger applies it, sql/30_sync_apply.sql), and dropping
-- applied snapshots after their retention.

-- name: cursor_read
-- the cursor's position in a source's feed (no row: never pulled)
SELECT position FROM sync.cursor WHERE source = %(source)s;

-- name: cursor_ensure
-- a cursor row for the source, so there is a row to lock
INSERT INTO sync.cursor (source) VALUES (%(source)s) ON CONFLICT (source) DO NOTHING;

-- name: cursor_lock
-- the cursor's position, locked until the page's transaction ends
SELECT position FROM sync.cursor WHERE source = %(source)s FOR UPDATE;

-- name: cursor_advance
-- move the cursor past a staged page, keeping the last seq and event time when it had none
-- greatest, not the page's own: a page may hold only an older event delivered again, which
-- must not make status count the feed's newest events as behind (greatest skips NULLs)
UPDATE sync.cursor
SET position = %(position)s,
    last_seq = greatest(%(last_seq)s, last_seq),
    last_occurred_at = greatest(%(last_occurred_at)s, last_occurred_at),
    pages = pages + 1,
    updated_at = now()
WHERE source = %(source)s;

-- name: open_page
-- the session's page (pg_temp.syncctl_page), made when missing (sql/31_feed_page.sql)
SELECT sync.open_page();

-- name: copy_page
-- a page's readable records into the session's page
COPY pg_temp.syncctl_page (source, seq, event_id, event_type, customer_number, version,
                           occurred_at, payload)
FROM STDIN (FORMAT BINARY);

-- name: copy_page_raw
-- a page's records jsonb cannot hold (U+0000): their JSON text as received, no payload
COPY pg_temp.syncctl_page (source, seq, event_id, event_type, customer_number, version,
                           occurred_at, raw)
FROM STDIN (FORMAT BINARY);

-- name: stage_page
-- the session's page into sync.inbox, applied; what became of it (JSON: outcome -> events).
-- keep_payloads false: the inbox keeps the records of dead letters only; feed: the page is the
-- feed's (each record must carry its seq), not a login-time refresh's
SELECT sync.stage_page(%(keep_payloads)s, %(feed)s);

-- name: show_feed_state
-- on the leader's session: pg_stat_activity (and so `syncctl status`) shows the feed's state
SELECT pg_catalog.set_config('application_name', 'syncctl run: feed ' || %(state)s, false);

-- name: drop_payloads
-- drop tritonX's snapshot from applied inbox rows received before a time, a batch at a time
SELECT sync.drop_payloads(%(older_than)s, %(limit)s);
